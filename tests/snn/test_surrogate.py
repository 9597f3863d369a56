"""Surrogate spike functions: forward Heaviside, backward = derivative of the smooth step."""

from __future__ import annotations

import math

import pytest
import torch

from spikerl.snn.surrogate import (
    SURROGATE_KINDS,
    UNIT_PEAK_KINDS,
    Surrogate,
    smooth_step,
    spike,
    surrogate_grad,
)

SLOPES = (0.5, 1.0, 2.0, 4.0)
SMOOTH_KINDS = tuple(k for k in SURROGATE_KINDS if k != "straight_through")
UNIT_AREA_KINDS = tuple(k for k in SMOOTH_KINDS if k not in UNIT_PEAK_KINDS)


def _kinks(kind: str, slope: float) -> list[float]:
    """Points where the surrogate is discontinuous or not differentiable."""
    if kind == "rectangular":
        return [-0.5 / slope, 0.5 / slope]
    if kind == "triangle":
        return [-1.0 / slope, 0.0, 1.0 / slope]
    if kind.startswith("fast_sigmoid"):
        return [0.0]
    return []


def _grid_away_from_kinks(kind: str, slope: float) -> torch.Tensor:
    x = torch.linspace(-3.0, 3.0, 1201, dtype=torch.float64)
    keep = torch.ones_like(x, dtype=torch.bool)
    for k in _kinks(kind, slope):
        keep &= (x - k).abs() > 1e-3
    return x[keep]


def test_kinds_listed():
    assert set(SURROGATE_KINDS) == {
        "rectangular",
        "sigmoid",
        "fast_sigmoid",
        "fast_sigmoid_normalized",
        "arctan",
        "triangle",
        "straight_through",
    }


@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("kind", SURROGATE_KINDS)
def test_grad_is_finite_difference_of_smooth_step(kind, slope):
    x = _grid_away_from_kinks(kind, slope)
    h = 1e-6
    fd = (smooth_step(x + h, kind, slope) - smooth_step(x - h, kind, slope)) / (2 * h)
    g = surrogate_grad(x, kind, slope)
    assert g.shape == x.shape and g.dtype == x.dtype
    torch.testing.assert_close(g, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("kind", SURROGATE_KINDS)
def test_grad_matches_autograd_of_smooth_step(kind, slope):
    x = _grid_away_from_kinks(kind, slope).requires_grad_(True)
    (g,) = torch.autograd.grad(smooth_step(x, kind, slope).sum(), x)
    torch.testing.assert_close(surrogate_grad(x.detach(), kind, slope), g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("kind", UNIT_AREA_KINDS)
def test_smooth_step_rises_from_zero_to_one(kind, slope):
    x = torch.tensor([-1e7, 0.0, 1e7], dtype=torch.float64)
    f = smooth_step(x, kind, slope)
    torch.testing.assert_close(
        f, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), atol=1e-6, rtol=0
    )
    xs = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    assert bool((smooth_step(xs, kind, slope).diff() >= 0).all())


@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("kind", UNIT_AREA_KINDS)
def test_surrogate_integrates_to_one(kind, slope):
    # sinh-spaced grid: fine near the threshold (dx ~ 5e-5), reaching |x| = 1e4 for heavy tails
    u = torch.linspace(-math.asinh(1e4), math.asinh(1e4), 400_001, dtype=torch.float64)
    x = torch.sinh(u)
    integral = torch.trapezoid(surrogate_grad(x, kind, slope), x)
    assert abs(float(integral) - 1.0) < 1e-3, (kind, slope, float(integral))


@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("kind", SURROGATE_KINDS)
def test_surrogate_nonnegative_symmetric_peak_at_zero(kind, slope):
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    g = surrogate_grad(x, kind, slope)
    assert bool((g >= 0).all())
    torch.testing.assert_close(g, g.flip(0))
    assert float(g.max()) == pytest.approx(
        float(surrogate_grad(torch.zeros(1, dtype=torch.float64), kind, slope))
    )


def test_straight_through_is_constant_slope():
    x = torch.tensor([-100.0, -1.0, 0.0, 0.3, 50.0], dtype=torch.float64)
    torch.testing.assert_close(surrogate_grad(x, "straight_through", 1.0), torch.ones_like(x))
    torch.testing.assert_close(surrogate_grad(x, "straight_through", 2.5), torch.full_like(x, 2.5))
    torch.testing.assert_close(smooth_step(x, "straight_through", 2.5), 2.5 * x)


def _g(kind: str, slope: float, *xs: float) -> list[float]:
    return surrogate_grad(torch.tensor(xs, dtype=torch.float64), kind, slope).tolist()


def test_hand_computed_values():
    # rectangular slope 1: the proxy-target window |V - 0.5| < 0.5, height 1
    assert _g("rectangular", 1.0, 0.0, 0.49, -0.49, 0.5, -0.5, 0.51, -0.7, 3.0) == [
        1.0,
        1.0,
        1.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    ]
    # rectangular slope 2: half-width 0.25, height 2
    assert _g("rectangular", 2.0, 0.0, 0.24, 0.26) == [2.0, 2.0, 0.0]
    assert _g("sigmoid", 4.0, 0.0)[0] == pytest.approx(1.0)
    assert _g("sigmoid", 1.0, 0.0)[0] == pytest.approx(0.25)
    s = 1.0 / (1.0 + math.exp(-2.0))
    assert _g("sigmoid", 2.0, 1.0)[0] == pytest.approx(2.0 * s * (1 - s))
    assert _g("arctan", 2.0, 0.0)[0] == pytest.approx(1.0)
    assert _g("arctan", 2.0, 1.0 / math.pi)[0] == pytest.approx(0.5)  # 1 / (1 + 1)
    for a in (0.5, 1.0, 3.0):
        assert _g("fast_sigmoid_normalized", a, 0.0)[0] == pytest.approx(a / 2)
    assert _g("fast_sigmoid_normalized", 1.0, 1.0)[0] == pytest.approx(0.125)  # 1 / (2 * 4)
    # arXiv 2510.24461 Sec. 2: dS/dU = 1 / (1 + k |U - theta|)^2, peak 1 for every k
    for k in (0.5, 1.0, 10.0, 100.0):
        assert _g("fast_sigmoid", k, 0.0)[0] == 1.0
    assert _g("fast_sigmoid", 1.0, 1.0, -1.0)[0] == pytest.approx(0.25)
    assert _g("fast_sigmoid", 3.0, 1.0)[0] == pytest.approx(1 / 16)
    assert _g("triangle", 1.0, 0.25, -0.25, 0.0, 1.0, 1.5) == pytest.approx(
        [0.75, 0.75, 1.0, 0.0, 0.0]
    )
    assert _g("triangle", 2.0, 0.25)[0] == pytest.approx(1.0)  # 2 * (1 - 0.5)


def test_smooth_step_hand_values():
    x = torch.tensor([-1.0, -0.25, 0.0, 0.25, 1.0], dtype=torch.float64)
    torch.testing.assert_close(
        smooth_step(x, "rectangular", 1.0),
        torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64),
    )
    torch.testing.assert_close(
        smooth_step(x, "triangle", 1.0),
        torch.tensor([0.0, 0.28125, 0.5, 0.71875, 1.0], dtype=torch.float64),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spike_forward_is_heaviside(dtype):
    x = torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 0.5, 3.0], dtype=dtype)
    expected = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], dtype=dtype)
    for kind in SURROGATE_KINDS:
        out = spike(x, kind, 1.0)
        assert out.dtype == dtype
        assert torch.equal(out, expected)
        xg = x.clone().requires_grad_(True)
        assert torch.equal(spike(xg, kind, 1.0).detach(), expected)
        assert torch.equal(Surrogate(kind, 2.0)(xg).detach(), expected)
    with torch.no_grad():
        assert torch.equal(spike(x.clone().requires_grad_(True)), expected)


@pytest.mark.parametrize("slope", (0.5, 1.0, 3.0))
@pytest.mark.parametrize("kind", SURROGATE_KINDS)
def test_spike_backward_is_surrogate_grad(kind, slope):
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 7, generator=gen, dtype=torch.float64)).requires_grad_(True)
    w = torch.randn(4, 7, generator=gen, dtype=torch.float64)
    (spike(x, kind, slope) * w).sum().backward()
    torch.testing.assert_close(x.grad, w * surrogate_grad(x.detach(), kind, slope))
    # the same through a Surrogate object
    x2 = x.detach().clone().requires_grad_(True)
    (Surrogate(kind, slope)(x2) * w).sum().backward()
    torch.testing.assert_close(x2.grad, x.grad)


def test_default_spike_is_paper_rectangle():
    x = torch.tensor([-0.6, -0.4, 0.0, 0.4, 0.6], dtype=torch.float64, requires_grad=True)
    spike(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    sur = Surrogate()
    assert (sur.kind, sur.slope) == ("rectangular", 1.0)


def test_slope_change_between_calls_changes_gradient():
    sur = Surrogate("sigmoid", 1.0)
    x = torch.tensor([0.0, 0.3, -0.8], dtype=torch.float64)
    grads = []
    for slope in (1.0, 4.0, 0.5):
        sur.slope = slope
        xg = x.clone().requires_grad_(True)
        sur(xg).sum().backward()
        torch.testing.assert_close(xg.grad, surrogate_grad(x, "sigmoid", slope))
        grads.append(xg.grad)
    assert not torch.allclose(grads[0], grads[1])
    assert not torch.allclose(grads[0], grads[2])


def test_slope_read_at_forward_time():
    """A graph built before a slope change keeps the slope it was built with."""
    sur = Surrogate("rectangular", 1.0)
    x = torch.tensor([0.4], dtype=torch.float64, requires_grad=True)
    out = sur(x)
    sur.slope = 4.0  # window shrinks to |x| < 0.125: would give 0 at 0.4
    out.sum().backward()
    assert x.grad.tolist() == [1.0]


@pytest.mark.parametrize("bad", ["relu", "", "Rectangular"])
def test_invalid_kind_raises(bad):
    with pytest.raises(ValueError):
        Surrogate(bad)
    with pytest.raises(ValueError):
        surrogate_grad(torch.zeros(2), bad, 1.0)
    with pytest.raises(ValueError):
        smooth_step(torch.zeros(2), bad, 1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_invalid_slope_raises(bad):
    with pytest.raises(ValueError):
        Surrogate("sigmoid", bad)


def test_fast_sigmoid_forward_is_invariant_to_slope():
    x = torch.randn(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    outs = [spike(x.clone().requires_grad_(True), "fast_sigmoid", k) for k in (0.1, 1, 25, 1e4)]
    assert all(torch.equal(o.detach(), outs[0].detach()) for o in outs)


@pytest.mark.parametrize("kind", SURROGATE_KINDS)
def test_torch_func_grad_sees_the_surrogate(kind):
    x = torch.tensor([-0.7, -0.2, 0.0, 0.3, 1.2], dtype=torch.float64)
    grad = torch.func.grad(lambda v: spike(v, kind, 2.0).sum())(x)
    torch.testing.assert_close(grad, surrogate_grad(x, kind, 2.0))


def test_vmap_of_grad_equals_a_loop_of_backward_passes():
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(6, 4, dtype=torch.float64, generator=gen)
    xs = torch.randn(8, 6, dtype=torch.float64, generator=gen)
    sur = Surrogate("fast_sigmoid", 3.0)

    def loss(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (sur(x @ weight - 0.1) * torch.arange(1.0, 5.0, dtype=x.dtype)).sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(w, xs)
    for i, x in enumerate(xs):
        wi = w.clone().requires_grad_(True)
        loss(wi, x).backward()
        torch.testing.assert_close(per_sample[i], wi.grad)
    assert per_sample.abs().sum() > 0
