"""The proxy-target actor as a configuration of the composable core gives the actions,
gradients and parameter counts that the pre-refactor actor gave (fixture saved at commit f8b3aa1
by ``tests/fixtures/make_actor_fixture.py``), and old run folders still load.

Same machine, same results bit for bit; across CPUs, torch's kernels may sum in another order
(the fixture differs by about one float32 ulp on an AVX-512 machine), so values are compared to
a few units of rounding of their dtype, relative to the largest saved entry.

The actor runs its eager neuron loops here, the reference the fixture was saved from; the C
kernel that runs LIF, PLIF, CLIF and DN layers by default is tested against those loops in
``tests/snn/test_kernel.py`` (it sums a per-layer leak's gradient over ticks, rows and neurons
in another order, a few float64 ulps of the layer's terms off this fixture's bound)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spikerl.experiments.policy import load_policy
from spikerl.nets.spiking import SpikingActor
from spikerl.snn.layers import CLIF, DN, LIF

FIXTURES = Path(__file__).parents[1] / "fixtures"
SAVED = torch.load(FIXTURES / "proxy_target_actor.pt", weights_only=True)
CASES = sorted(SAVED["cases"])


ULPS = 8  # units of rounding allowed, relative to the largest saved magnitude


def assert_rounding_equal(got: torch.Tensor, saved: torch.Tensor, name: str = "actions") -> None:
    """``|got - saved| <= ULPS * eps(dtype) * max|saved|`` entrywise (dtype and shape equal)."""
    assert got.dtype == saved.dtype and got.shape == saved.shape, name
    bound = ULPS * torch.finfo(saved.dtype).eps * float(saved.abs().max())
    worst = float((got.detach() - saved).abs().max())
    assert worst <= bound, f"{name}: differs by {worst:.3g} > {bound:.3g}"


@pytest.mark.parametrize("case", CASES)
def test_actions_and_gradients_equal_the_saved_fixture(case, monkeypatch):
    monkeypatch.setattr(LIF, "kernel", False)
    monkeypatch.setattr(CLIF, "kernel", False)
    monkeypatch.setattr(DN, "kernel", False)
    saved, cfg = SAVED["cases"][case], SAVED["config"]
    kind, dtype = case.split("-")
    actor = SpikingActor(cfg["obs_dim"], cfg["act_dim"], kind, hidden=cfg["hidden"])
    actor = actor.to(getattr(torch, dtype))
    actor.load_state_dict(saved["state_dict"])  # same parameter names as before the refactor
    actions = actor(saved["obs"])
    assert_rounding_equal(actions, saved["actions"])
    (actions * saved["probe"]).sum().backward()
    grads = {n: p.grad for n, p in actor.named_parameters()}
    assert grads.keys() == saved["grads"].keys()
    for name, grad in grads.items():
        assert_rounding_equal(grad, saved["grads"][name], name)
    assert sum(p.numel() for p in actor.parameters()) == saved["n_params"]


def test_fixture_is_not_trivial():
    for case in CASES:
        saved = SAVED["cases"][case]
        assert saved["actions"].abs().min() > 0 and saved["actions"].std() > 0.01
        assert all(g.abs().sum() > 0 for g in saved["grads"].values())


def test_run_folder_from_before_the_refactor_loads_and_acts_the_same():
    actor, cfg, _ = load_policy(FIXTURES / "old_pt_lif")
    saved = torch.load(FIXTURES / "old_pt_lif_actions.pt", weights_only=True)
    with torch.no_grad():
        assert torch.equal(actor(saved["obs"]), saved["actions"])
    assert cfg.actor.kind == "lif" and cfg.algo.target == "proxy"


def test_resuming_a_run_from_before_the_random_streams_fails_with_a_clear_message(tmp_path, capsys):
    import shutil

    from spikerl.cli import main

    run = tmp_path / "old"
    shutil.copytree(FIXTURES / "old_pt_lif", run)
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: cannot resume from this checkpoint: the checkpoint was written by spikerl 0.1, "
        "before independent random streams; its policy can be evaluated, but the run cannot be "
        "resumed"
    ]
    assert main(["evaluate", str(run), "--episodes", "1"]) == 0
