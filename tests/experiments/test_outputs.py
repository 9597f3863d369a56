"""Output paths are checked before the work that fills them: one line naming the option."""

from __future__ import annotations

import pytest

from spikerl.cli import main
from spikerl.errors import UsageError
from spikerl.experiments.outputs import check_output_file, check_output_folder


def test_a_file_path_may_have_missing_folders_and_the_check_leaves_nothing(tmp_path):
    check_output_file(tmp_path / "a" / "b" / "x.csv", "--csv")
    check_output_folder(tmp_path / "plots", "--plots-dir")
    assert list(tmp_path.iterdir()) == []  # no folder made, no probe left


@pytest.mark.parametrize(
    ("target", "check", "message"),
    [
        ("folder", check_output_file, "--x {p}: is a folder; give a file path"),
        ("file", check_output_folder, "--x {p}: is a file; give a folder"),
        ("file/x.csv", check_output_file, "{root}/file is a file, not a folder"),
        ("file/deeper/x", check_output_folder, "{root}/file is a file, not a folder"),
    ],
)
def test_paths_of_the_wrong_kind_are_refused(tmp_path, target, check, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("kept")
    path = tmp_path / target
    with pytest.raises(UsageError) as info:
        check(path, "--x")
    assert message.format(p=path, root=tmp_path) in str(info.value)
    assert (tmp_path / "file").read_text() == "kept"


def test_a_folder_that_takes_no_files_is_refused(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(UsageError, match=r"--csv .*: cannot write in .* \(Permission denied\)"):
        check_output_file(tmp_path / "x.csv", "--csv")


@pytest.fixture(scope="module")
def lif_run(tmp_path_factory):
    from tests.conftest import TINY

    root = tmp_path_factory.mktemp("runs")
    sets = [a for o in (*TINY, "actor.kind=lif", "run.total_steps=200", "run.name=r")
            for a in ("--set", o)]  # fmt: skip
    assert main(["train", *sets, "--runs-dir", str(root)]) == 0
    return root / "r"


@pytest.mark.parametrize(
    "argv",
    [
        ["energy", "RUN", "--json", "FILE/x.json"],
        ["energy", "RUN", "--csv", "FILE/x.csv"],
        ["export", "RUN", "-o", "FILE/x.npz"],
        ["export", "RUN", "--format", "c", "-o", "FILE"],
        ["bench", "--quick", "--sections", "quadrotor", "--json", "FILE/x.json"],
        ["bench", "--quick", "--sections", "quadrotor", "--plot", "FILE/x.png"],
    ],
)
def test_commands_refuse_a_bad_output_before_the_work(lif_run, tmp_path, capsys, argv, monkeypatch):
    import spikerl.bench.suite as suite
    import spikerl.experiments.energy_cli as energy_cli
    import spikerl.experiments.export_cli as export_cli

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr(energy_cli, "_measure_run", no_work)
    monkeypatch.setattr(export_cli, "_description", no_work)
    monkeypatch.setattr(suite, "run_suite", no_work)
    (tmp_path / "FILE").write_text("kept")
    argv = [{"RUN": str(lif_run)}.get(a, a.replace("FILE", str(tmp_path / "FILE"))) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "FILE" in err[0]
    assert (tmp_path / "FILE").read_text() == "kept"


@pytest.mark.parametrize(
    ("argv", "victim"),
    [
        (["evaluate", "RUN", "--episodes", "1", "--csv", "RUN/checkpoint.pt"], "checkpoint.pt"),
        (["evaluate", "RUN", "--episodes", "1", "--csv", "RUN/config.yaml"], "config.yaml"),
        (["export", "RUN", "-o", "RUN/checkpoint.pt"], "checkpoint.pt"),
        (["energy", "RUN", "--episodes", "1", "--csv", "RUN/config.yaml"], "config.yaml"),
        (["report", "RUNS", "--output", "RUN/metrics.csv"], "metrics.csv"),
        (["evaluate", "RUN", "--episodes", "1", "--csv", "RUN/best.pt"], "best.pt"),
    ],
)
def test_no_output_option_overwrites_the_files_a_run_keeps_its_state_in(
    lif_run, capsys, argv, victim
):
    before = (lif_run / victim).read_bytes()
    argv = [a.replace("RUNS", str(lif_run.parent)).replace("RUN", str(lif_run)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"is a file the run {lif_run} keeps its state in" in err[0]
    assert (lif_run / victim).read_bytes() == before


def test_kept_policies_and_a_sweep_manifest_are_refused_and_other_files_are_not(
    tmp_path, monkeypatch
):
    run = tmp_path / "run"
    (run / "policies").mkdir(parents=True)
    (run / "config.yaml").write_text("{}")
    (run / "policies" / "step-000000100.pt").write_text("kept")
    (run / "eval.csv").write_text("mine")
    (tmp_path / "sweep.json").write_text("{}")
    with pytest.raises(UsageError, match=f"the run {run} keeps its state in"):
        check_output_file(run / "policies" / "step-000000100.pt", "--csv")
    monkeypatch.chdir(run / "policies")  # a relative path names the same file
    with pytest.raises(UsageError, match=f"the run {run} keeps its state in"):
        check_output_file("step-000000100.pt", "--csv")
    with pytest.raises(UsageError, match=f"the run {run} keeps its state in"):
        check_output_file("../config.yaml", "--csv")
    check_output_file(tmp_path / "sweep.json", "--json")  # a user's own JSON of that name
    (tmp_path / "configs").mkdir()  # ... until it sits where a sweep keeps its manifest
    with pytest.raises(UsageError, match=f"the sweep {tmp_path} keeps its state in"):
        check_output_file(tmp_path / "sweep.json", "--json")
    check_output_file(run / "eval.csv", "--csv")  # a file of the user's own may be replaced
    check_output_file(run / "checkpoint.pt", "-o")  # not there yet: nothing to lose


def test_export_and_energy_create_missing_folders(lif_run, tmp_path):
    assert main(["export", str(lif_run), "-o", str(tmp_path / "new" / "p.npz")]) == 0
    assert main(["energy", str(lif_run), "--episodes", "1",
                 "--json", str(tmp_path / "more" / "e.json")]) == 0  # fmt: skip
    assert (tmp_path / "new" / "p.npz").is_file() and (tmp_path / "more" / "e.json").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--per", "layer"], "--per chooses the int8 weight scales; add --quantize int8"),
        (["--dt", "0.001"], "--dt: for --format nir only"),
        (["--format", "c", "--nir-readout", "host"], "--nir-readout: for --format nir only"),
    ],
)
def test_export_refuses_options_the_format_would_ignore(lif_run, tmp_path, capsys, extra, message):
    out = tmp_path / "c_out" if "c" in extra else tmp_path / "p.npz"
    assert main(["export", str(lif_run), "-o", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_no_command_replaces_the_policy_file_it_reads(lif_run, tmp_path, capsys):
    """evaluate --csv, energy --json/--csv (also of the --baseline) and export -o naming the very
    file read would leave no copy of the policy: refused, the file unchanged."""
    policy = tmp_path / "p.npz"
    assert main(["export", str(lif_run), "-o", str(policy)]) == 0
    before = policy.read_bytes()
    for argv in (
        ["evaluate", str(policy), "--episodes", "1", "--csv", str(policy)],
        ["energy", str(policy), "--episodes", "1", "--json", str(policy)],
        ["energy", str(lif_run), "--baseline", str(policy), "--csv", str(policy)],
        ["export", str(policy), "--quantize", "int8", "-o", str(tmp_path / "." / "p.npz")],
    ):
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert "which this command reads; give another path" in capsys.readouterr().err
        assert policy.read_bytes() == before
    assert main(["energy", str(lif_run), "--json", str(tmp_path / "e"),
                 "--csv", str(tmp_path / "e")]) == 2  # fmt: skip
    assert "--json and --csv name one file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-o", "notes.txt"], "--format numpy writes a .npz file; name it notes.npz"),
        (["-o", "p.nir"], "name it p.npz or add --format nir"),
        (["--format", "nir", "-o", "p.npz"], "name it p.nir or add --format numpy"),
        (["-o", "mine.npz"], "exists and is not a .npz policy; give a new file path"),
        (["--format", "nir", "-o", "mine.nir"], "exists and is not a .nir policy"),
        (["--format", "nir", "--quantize", "int8", "-o", "new/q.nir"],
         "--quantize int8: NIR stores float weights"),
        (["--format", "nir", "--dt", "1e308", "-o", "new/q.nir"],
         "--dt 1e+308: give (0, 1] seconds per tick"),
    ],
)  # fmt: skip
def test_export_writes_only_its_own_kind_of_file(lif_run, tmp_path, capsys, argv, message):
    """An export's file carries its format's suffix and replaces only a file of that format
    (an earlier export), never a user's other file; bad options leave no folder behind."""
    for name in ("notes.txt", "mine.npz", "mine.nir"):
        (tmp_path / name).write_text("my own notes")
    argv = [str(tmp_path / a) if a.endswith((".txt", ".npz", ".nir")) else a for a in argv]
    assert main(["export", str(lif_run), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert {p.read_text() for p in tmp_path.iterdir() if p.is_file()} == {"my own notes"}
    assert main(["export", str(lif_run), "-o", str(tmp_path / "p.npz")]) == 0
    assert main(["export", str(lif_run), "-o", str(tmp_path / "p.npz")]) == 0  # its own: replaced
