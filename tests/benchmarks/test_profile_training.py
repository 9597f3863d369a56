"""``benchmarks/profile_training.py``: the groups cover the profiled wall time, the spiking
kernel's calls and the env's step are counted as theirs, and nothing stays patched."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from spikerl.snn import kernel

SCRIPT = "profile_training"


def test_shares_cover_the_wall_time_and_the_labels_are_undone(script, tmp_path):
    before = kernel._function
    out = tmp_path / "p.json"
    argv = ["--variants", "ANN-TD3", "spiking TD3 (LIF, Polyak target)", "--env", "Pendulum-v1",
            "--threads", "1", "--learning-starts", "300", "--warmup", "2", "--steps", "4",
            "--json", str(out)]  # fmt: skip
    assert script.main(argv) == 0
    variants = json.loads(out.read_text())["variants"]
    for name, result in variants.items():
        shares = result["shares"]
        assert list(shares) == list(script.GROUPS)
        assert sum(shares.values()) == pytest.approx(1.0, abs=0.02), name
        assert shares["matrix products"] > 0 and shares["env step"] > 0
        assert result["top"] and result["ms_per_step"] > 0
    spiking = variants["spiking TD3 (LIF, Polyak target)"]["shares"]["spiking kernel"]
    assert spiking > 0 if kernel.kernel_available() else spiking == 0
    assert variants["ANN-TD3"]["shares"]["spiking kernel"] == 0
    assert kernel._function is before


def test_stacked_seeds_are_profiled_per_iteration_and_per_env_step(script, tmp_path):
    out = tmp_path / "p.json"
    argv = ["--variants", "ANN-TD3", "--env", "Pendulum-v1", "--threads", "1", "--seeds", "3",
            "--learning-starts", "300", "--warmup", "2", "--steps", "4",
            "--json", str(out)]  # fmt: skip
    assert script.main(argv) == 0
    written = json.loads(out.read_text())
    assert written["environment"]["torch_threads"] == 1  # the threads it ran at
    result = written["variants"]["ANN-TD3"]
    assert sum(result["shares"].values()) == pytest.approx(1.0, abs=0.02)
    assert result["shares"]["env step"] > 0  # the steps of all three envs are labelled
    assert result["ms_per_env_step"] == pytest.approx(result["ms_per_step"] / 3)
    with pytest.raises(SystemExit):
        script.parse_args(["--seeds", "2", "--variants", script.SB3_VARIANT])


@pytest.mark.parametrize(
    ("event", "group"),
    [("aten::addmm", "matrix products"), ("spikerl::kernel::forward", "spiking kernel"),
     ("_KernelLIFBackward", "spiking kernel"), ("Optimizer.step#Adam.step", "optimiser"),
     ("aten::_fused_adam_", "optimiser"), ("aten::copy_", "copies"),
     ("env.step (MuJoCo)", "env step"), ("aten::mul", "other torch operations")],
)  # fmt: skip
def test_events_go_to_their_group(script, event, group):
    assert script.group_of(event) == group


def test_an_event_inside_the_optimiser_kernel_or_env_counts_to_it(script):
    def event(name, parent=None):
        return SimpleNamespace(name=name, cpu_parent=parent)

    adam = event("Optimizer.step#Adam.step")
    assert script.group_of_event(event("aten::add_", event("aten::mul", adam))) == "optimiser"
    backward = event("_KernelLIFBackward", event("autograd::engine::evaluate_function: x"))
    assert script.group_of_event(event("aten::clone", backward)) == "spiking kernel"
    assert script.group_of_event(event("aten::clone", event("aten::linear"))) == "copies"
    assert script.group_of_event(event("aten::copy_", event(script._ENV_EVENT))) == "env step"


def test_sb3_without_its_package_is_refused_before_any_profiling(script, monkeypatch, capsys):
    monkeypatch.setattr(script, "sb3_available", lambda: False)
    with pytest.raises(SystemExit):
        script.parse_args(["--variants", "ANN-TD3", script.SB3_VARIANT])
    assert "needs stable-baselines3" in capsys.readouterr().err
