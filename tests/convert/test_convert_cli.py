"""``spikerl convert``: a trained run or a state_dict in, an ordinary spikerl policy out."""

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
