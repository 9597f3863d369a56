"""The learners' shared pieces: the fused Adam step against torch's."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from spikerl.algos.common import FusedAdam, adam


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))


def _pair(**options):
    """Two equal networks, one with torch's fused Adam and one with FusedAdam, two groups (the
    second with its own learning rate, as TD3's leak group)."""
    nets = _net(), _net()
    opts = []
    for net, cls in zip(nets, (torch.optim.Adam, FusedAdam), strict=True):
        groups = [{"params": net[0].parameters()}, {"params": net[2].parameters(), "lr": 1e-2}]
        opts.append(cls(groups, lr=3e-4, fused=True, **options))
    return nets, opts


def _train(net: nn.Module, opt: torch.optim.Optimizer, steps: int, skip_bias_at: int = -1) -> None:
    gen = torch.Generator().manual_seed(1)
    for i in range(steps):
        x = torch.randn(16, 5, generator=gen)
        loss = net(x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if i == skip_bias_at:  # a parameter without a gradient in this step
            net[2].bias.grad = None
        opt.step()


def _equal_params(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def _equal_states(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa["param_groups"] == sb["param_groups"] and all(
        torch.equal(sa["state"][i][k], sb["state"][i][k])
        for i in sa["state"]
        for k in ("step", "exp_avg", "exp_avg_sq")
    )


@pytest.mark.parametrize("options", [{}, {"weight_decay": 1e-3}, {"amsgrad": True}])
def test_fused_adam_steps_bit_for_bit_as_torchs_fused_adam(options):
    (net_a, net_b), (opt_a, opt_b) = _pair(**options)
    for net, opt in ((net_a, opt_a), (net_b, opt_b)):
        _train(net, opt, 12, skip_bias_at=5)
    assert _equal_params(net_a, net_b)
    assert _equal_states(opt_a, opt_b)
    assert set(opt_b.state_dict()) == {"state", "param_groups"}


def test_fused_adam_takes_the_direct_path_once_every_parameter_has_state():
    (_, net), (_, opt) = _pair()
    assert adam(net.parameters(), 1e-3).__class__ is FusedAdam
    net(torch.ones(2, 5)).sum().backward()
    assert opt._fused_groups() is None  # no state before the first step: torch's step makes it
    opt.step()
    groups = opt._fused_groups()
    assert groups is not None and [len(g[0]) for g in groups] == [2, 2]
    net[2].bias.grad = None  # parameters without a gradient are left out, as torch does
    assert [len(g[0]) for g in opt._fused_groups()] == [2, 1]
    opt.param_groups[0]["amsgrad"] = True
    assert opt._fused_groups() is None


def test_fused_adam_restores_a_torch_adam_state_dict_and_continues_identically():
    (net_a, net_b), (opt_a, opt_b) = _pair()
    _train(net_a, opt_a, 4)
    net_b.load_state_dict(net_a.state_dict())
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # a checkpoint's, not aliases
    _train(net_a, opt_a, 3)
    _train(net_b, opt_b, 3)
    assert _equal_params(net_a, net_b)
    assert _equal_states(opt_a, opt_b)


def test_fused_adam_runs_step_hooks_once_per_step_on_either_path():
    (_, net), (_, opt) = _pair()  # the pair built a torch Adam: its step is wrapped with hooks
    calls: list[str] = []
    opt.register_step_pre_hook(lambda *_: calls.append("pre"))
    opt.register_step_post_hook(lambda *_: calls.append("post"))
    _train(net, opt, 3)  # the first step is torch's (no state yet), the others direct
    assert calls == ["pre", "post"] * 3


def test_a_state_restored_from_a_non_fused_adam_steps_as_torch_does():
    torch.manual_seed(0)
    source = _net()
    plain = torch.optim.Adam(source.parameters(), lr=3e-4)  # fused=None: step counts on CPU
    _train(source, plain, 3)
    nets, opts = (_net(), _net()), []
    for net, cls in zip(nets, (torch.optim.Adam, FusedAdam), strict=True):
        net.load_state_dict(source.state_dict())
        opts.append(cls(net.parameters(), lr=3e-4, fused=True))
        opts[-1].load_state_dict(copy.deepcopy(plain.state_dict()))
    assert not opts[1].param_groups[0]["fused"] and opts[1]._fused_groups() is None
    for net, opt in zip(nets, opts, strict=True):
        _train(net, opt, 5)
    assert _equal_params(*nets) and _equal_states(*opts)
