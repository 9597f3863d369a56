"""``spikerl convert``: a trained run or a state_dict in, an ordinary spikerl policy out."""

import numpy as np
import pytest
import torch

from spikerl.cli import main
from spikerl.nets.ann import DeterministicActor
from tests.conftest import TINY


def sets(*overrides):
    return [a for o in (*TINY, *overrides) for a in ("--set", o)]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    args = ["train", *sets("run.total_steps=200", "run.name=src"), "--runs-dir", str(runs)]
    assert main(args) == 0
    return runs / "src"


def test_convert_a_run_then_evaluate_and_energy(tiny_run, tmp_path, capsys):
    out = tmp_path / "snn.pt"
    args = ["convert", str(tiny_run), "--neuron", "mt", "--timesteps", "4", "--crpi", "0.5",
            "--calibration-steps", "50", "--episodes", "1", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "zero thresholds: h0" in text and "SNN mt" in text and str(out) in text
    assert main(["evaluate", str(out), "--episodes", "1"]) == 0
    assert "src-mt-T4-a0.5" in capsys.readouterr().out
    assert main(["energy", str(out), "--episodes", "1"]) == 0
    assert "SOP" in capsys.readouterr().out


def test_a_normalised_run_converts_to_a_file_that_loads_with_its_normaliser(tmp_path, capsys):
    """The observation normaliser travels with the converted policy (it was once saved as
    NumPy arrays, which the weights-only load refuses: the file could not be read back)."""
    from spikerl.experiments.policy import load_policy

    args = ["train", *sets("run.total_steps=200", "run.name=n", "env.normalize_obs=true")]
    assert main([*args, "--runs-dir", str(tmp_path)]) == 0
    out = tmp_path / "snn.pt"
    args = ["convert", str(tmp_path / "n"), "--timesteps", "2", "--calibration-steps", "20"]
    assert main([*args, "-o", str(out)]) == 0
    assert main(["evaluate", str(out), "--episodes", "1"]) == 0
    _, _, run_norm = load_policy(tmp_path / "n")
    _, _, norm = load_policy(out)
    assert set(norm) == set(run_norm) == {"mean", "var", "count"}
    for key in ("mean", "var"):
        assert isinstance(norm[key], np.ndarray)
        np.testing.assert_array_equal(norm[key], run_norm[key])
    assert norm["count"] == run_norm["count"]


def test_default_output_goes_under_the_run(tiny_run, capsys):
    args = ["convert", str(tiny_run), "--timesteps", "2", "--calibration-steps", "20"]
    assert main(args) == 0
    assert (tiny_run / "converted" / "if-T2-a0-s0.pt").is_file()


def test_state_dict_needs_env_and_bad_flags_are_named(tmp_path, capsys):
    path = tmp_path / "actor.pt"
    torch.save(DeterministicActor(3, 1, (8, 8)).state_dict(), path)
    assert main(["convert", str(path), "--calibration-steps", "10"]) == 2
    assert "--env" in capsys.readouterr().err
    args = ["convert", str(path), "--env", "Pendulum-v1", "--calibration-steps", "10"]
    assert main(args) == 0
    assert (tmp_path / "actor-if-T32-a0-s0.pt").is_file()
    refusals = [
        (["--crpi", "1.5"], "a number in [0, 1]"),
        (["--neuron", "lif"], "invalid choice"),
        (["--timestep", "4"], "unrecognized arguments"),  # no prefix matching of flags
    ]
    for bad, message in refusals:
        with pytest.raises(SystemExit):
            main(["convert", str(path), *bad])
        assert message in capsys.readouterr().err
    assert main(["convert", str(path), "--env", "Hopper-v4", "--calibration-steps", "5"]) == 2
    assert "observation" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Bad values, outputs and idle options: one error line before any work, nothing written


def one_error_line(capsys, argv: list[str], *needles: str) -> str:
    """``argv`` exits 2 with exactly one ``error: ...`` line holding ``needles``."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def no_work(monkeypatch):
    """Calibration (the first step of every command's work) fails the test if it starts."""

    def started(*args, **kwargs):
        raise AssertionError("the work started before the input was refused")

    monkeypatch.setattr("spikerl.experiments.convert_cli.calibrate", started)
    monkeypatch.setattr("spikerl.convert.grid.calibrate", started)


REFUSALS = [
    (["convert-sweep", "--seeds", "-1"], ["--seeds -1", ">= 0"]),
    (["convert-sweep", "--neurons", ""], ["--neurons", "at least one value"]),
    (["convert-sweep", "--neurons", "if,lif"], ["--neurons", "unknown neuron 'lif'"]),
    (["convert-sweep", "--timesteps", "4,0"], ["--timesteps", "positive integer"]),
    (["convert-sweep", "--crpi", "0,0.0"], ["--crpi", "names 0.0 twice"]),
    (["convert-sweep", "--neurons", "if,dc", "--levels", "3"], ["--levels", "mt, mt_signed"]),
    (["convert-sweep", "--percentile", "50"], ["--percentile", "--statistic percentile"]),
    (["analyze-conversion", "--crpi", ""], ["--crpi", "at least one value"]),
    (["analyze-conversion", "--crpi", "0,3"], ["--crpi 0,3", "[0, 1], got 3"]),
    (["analyze-conversion", "--neuron", "snm", "--levels", "3"], ["--levels", "not to snm"]),
    (["convert", "--max-action", "2"], ["--max-action", "plain state_dict only"]),
    (["convert", "--levels", "3", "--neuron", "if"], ["--levels", "multi-threshold"]),
    (["convert", "--percentile", "50"], ["--percentile", "--statistic percentile"]),
]


@pytest.mark.parametrize(("argv", "needles"), REFUSALS, ids=[" ".join(a) for a, _ in REFUSALS])
def test_bad_values_and_idle_options_are_refused_up_front(
    tiny_run, tmp_path, capsys, no_work, argv, needles
):
    out = tmp_path / "out"
    one_error_line(capsys, [argv[0], str(tiny_run), *argv[1:], "-o", str(out)], *needles)
    assert not out.exists()


OUTPUTS = [
    ("convert-sweep", "/proc/grid", ["-o /proc/grid", "cannot write in /proc"]),
    ("convert-sweep", "{file}", ["is a file; give a folder"]),
    ("analyze-conversion", "/proc/ana", ["-o /proc/ana", "cannot write in /proc"]),
    ("analyze-conversion", "{file}", ["is a file; give a folder"]),
    ("convert", "{dir}", ["is a folder; give a file path such as", "if-T32-a0-s0.pt"]),
    ("convert", "{file}", ["exists and is not a converted policy"]),
    ("convert", "{file}/x.pt", ["is a file, not a folder"]),
    ("convert", "/proc/x/y.pt", ["cannot write in /proc"]),
]


@pytest.mark.parametrize(("command", "output", "needles"), OUTPUTS)
def test_unusable_outputs_are_refused_up_front(
    tiny_run, tmp_path, capsys, no_work, command, output, needles
):
    folder, file = tmp_path / "folder", tmp_path / "results.npz"
    folder.mkdir()
    file.write_text("kept")
    output = output.format(file=file, dir=folder)
    one_error_line(capsys, [command, str(tiny_run), "-o", output], *needles)
    assert file.read_text() == "kept" and not any(folder.iterdir())


def test_convert_creates_folders_and_replaces_only_a_converted_file(tiny_run, tmp_path, capsys):
    out = tmp_path / "new" / "sub" / "mt.pt"
    args = ["convert", str(tiny_run), "--neuron", "mt", "--levels", "4", "--timesteps", "2",
            "--calibration-steps", "20", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    assert main(args) == 0  # its own earlier file is replaced
    assert out.is_file() and "mt.pt" in capsys.readouterr().out


GRID = ["--neurons", "if", "--timesteps", "2", "--seeds", "0", "--episodes", "1",
        "--calibration-steps", "20"]  # fmt: skip


def test_a_grid_folder_holds_one_grid(tiny_run, tmp_path, capsys):
    out = tmp_path / "grid"
    grid = ["convert-sweep", str(tiny_run), *GRID, "-o", str(out)]
    assert main([*grid, "--crpi", "0,1"]) == 0
    results, summary = (out / "results.csv").read_bytes(), (out / "summary.txt").read_bytes()
    assert len(results.splitlines()) == 1 + 3  # header, the ANN and two alphas
    other = [*grid, "--crpi", "0", "--episodes", "2"]  # argparse: the last --episodes wins
    one_error_line(capsys, other, "other settings", "--crpi 0,1 (now 0)",
                   "--episodes 1 (now 2)", "give another -o")  # fmt: skip
    assert (out / "results.csv").read_bytes() == results
    assert (out / "summary.txt").read_bytes() == summary
    assert main([*grid, "--crpi", "1,0"]) == 0  # the same grid: resumed, nothing repeated
    assert "resuming" in capsys.readouterr().out
    assert (out / "results.csv").read_bytes() == results
    (out / "grid.json").unlink()  # a folder from before grid.json: its rows tell the settings
    one_error_line(capsys, [*grid, "--crpi", "0,1", "--neurons", "mt"], "--neurons if (now mt)")
    assert main([*grid, "--crpi", "0,1"]) == 0
    assert (out / "grid.json").is_file() and (out / "results.csv").read_bytes() == results


def test_a_damaged_results_file_is_named_and_left_as_it_is(tiny_run, tmp_path, capsys):
    """Resuming a grid whose results.csv was emptied, cut short or edited is one line naming
    the line at fault; nothing is appended to it."""
    out = tmp_path / "grid"
    grid = ["convert-sweep", str(tiny_run), *GRID, "-o", str(out)]
    assert main(grid) == 0
    good = (out / "results.csv").read_text()
    header, first = good.splitlines()[:2]
    timesteps = header.split(",").index("timesteps")
    bad_value = ",".join(v if i != timesteps else "x" for i, v in enumerate(first.split(",")))
    for damaged, needle in (
        ("", "not a convert-sweep table (empty, or other columns)"),
        (good[: len(header) + 40], "line 2: cut short"),
        (f"{header}\n{bad_value}\n", "line 2: timesteps 'x' is not a number"),
    ):
        (out / "results.csv").write_text(damaged)
        one_error_line(capsys, grid, needle, "give another -o")
        assert (out / "results.csv").read_text() == damaged


def test_a_grid_stopped_before_its_first_row_may_be_replaced(tiny_run, tmp_path, capsys):
    out = tmp_path / "grid"
    grid = ["convert-sweep", str(tiny_run), *GRID, "-o", str(out)]
    out.mkdir()
    (out / "grid.json").write_text('{"neurons": ["mt"], "crpi": [0.5], "episodes": 7}\n')
    assert main([*grid, "--crpi", "0"]) == 0  # no row was written: nothing to keep apart
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 2


def test_levels_of_an_old_if_grid_do_not_block_its_resume(tiny_run, tmp_path, capsys):
    from spikerl.experiments.convert_cli import _grid_changes

    old = {"neurons": ["if"], "levels": 4, "from_rows": True}
    assert _grid_changes(old, {"neurons": ["if"], "levels": 8}) == []
    assert _grid_changes({**old, "neurons": ["mt"]}, {"neurons": ["mt"], "levels": 8}) == [
        "--levels 4 (now 8)"
    ]


def test_every_option_states_its_default():
    from spikerl.cli import _parser

    sub = next(a for a in _parser()._actions if a.dest == "command")
    for name in ("convert", "convert-sweep", "analyze-conversion"):
        for action in sub.choices[name]._actions:
            if action.option_strings and action.dest != "help":
                assert "default" in (action.help or ""), (name, action.option_strings)


def test_a_folder_with_a_foreign_results_csv_is_refused(tiny_run, tmp_path, capsys, no_work):
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    argv = ["convert-sweep", str(tiny_run), *GRID, "-o", str(tmp_path)]
    one_error_line(capsys, argv, "not a convert-sweep table")
    assert (tmp_path / "results.csv").read_text() == "a,b\n1,2\n"
