"""Population encoder, direct encoder and decoders."""

from __future__ import annotations

import math

import pytest
import torch

from spikerl.snn.coding import DirectEncoder, PopulationDecoder, PopulationEncoder, rate_decode
from spikerl.snn.functional import if_step, unroll
from spikerl.snn.surrogate import Surrogate

F64 = torch.float64


def _encoder_with_constant_field(
    a: float, timesteps: int = 5
) -> tuple[PopulationEncoder, torch.Tensor]:
    """A 1x1 encoder (mu = 0) whose sigma gives receptive field A = a at input x = 0.5."""
    enc = PopulationEncoder(obs_dim=1, pop=1, timesteps=timesteps).double()
    x = 0.5
    with torch.no_grad():
        enc.sigma.fill_(x / math.sqrt(-2.0 * math.log(a)))
    return enc, torch.tensor([[x]], dtype=F64)


def test_constant_field_06_spike_train():
    enc, x = _encoder_with_constant_field(0.6)
    assert enc.receptive_fields(x).item() == pytest.approx(0.6, abs=1e-12)
    spikes = enc(x)
    assert spikes.shape == (5, 1, 1)
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]


def test_constant_field_via_if_path():
    # the spike generator: v <- v + A; o = H(v - 0.999); v <- v - 0.999 o
    sur = Surrogate("straight_through", 1.0)
    cur = torch.full((5, 1), 0.6, dtype=F64)
    spikes, _ = unroll(lambda j, st: if_step(j, st, sur, v_th=0.999, reset="soft"), cur)
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("a", [0.0, 0.1, 0.3, 0.5, 0.6, 0.95, 1.0])
def test_encoder_matches_reference_generator(a):
    # plain-python reference of the spec's generator for 8 ticks
    v, ref = 0.0, []
    for _ in range(8):
        v += a
        o = 1.0 if v - 0.999 > 0 else 0.0
        v -= 0.999 * o
        ref.append(o)
    if a == 0.0:
        enc = PopulationEncoder(1, 1, 8).double()
        x = torch.tensor([[50.0]], dtype=F64)  # far from mu = 0: A underflows to 0
    elif a == 1.0:
        enc = PopulationEncoder(1, 1, 8).double()
        x = torch.tensor([[0.0]], dtype=F64)  # at the centre: A = 1
    else:
        enc, x = _encoder_with_constant_field(a, timesteps=8)
    assert enc(x).flatten().tolist() == ref


def test_mu_sigma_init():
    n, p = 3, 10
    enc = PopulationEncoder(n, p)
    expected = torch.tensor([-1 + 2 * k / 9 for k in range(10)])
    assert expected[1].item() == pytest.approx(-7 / 9) and expected[-2].item() == pytest.approx(
        7 / 9
    )
    assert isinstance(enc.mu, torch.nn.Parameter) and isinstance(enc.sigma, torch.nn.Parameter)
    assert enc.mu.shape == (n, p) and enc.sigma.shape == (n, p)
    for i in range(n):
        torch.testing.assert_close(enc.mu[i].detach(), expected)
    torch.testing.assert_close(enc.sigma.detach(), torch.full((n, p), math.sqrt(0.05)))
    assert enc.sigma[0, 0].item() == pytest.approx(0.2236, abs=1e-4)
    assert enc.out_features == n * p
    assert enc.timesteps == 5 and enc.v_th == 0.999
    assert (enc.surrogate.kind, enc.surrogate.slope) == ("straight_through", 1.0)
    assert sum(p.numel() for p in enc.parameters()) == 2 * n * p
    # rows are independent parameters (not a broadcast view)
    with torch.no_grad():
        enc.mu[0, 0] = 5.0
    assert enc.mu[1, 0].item() == -1.0


def test_pop_one_and_custom_range():
    assert PopulationEncoder(2, 1).mu.detach().tolist() == [[0.0], [0.0]]
    enc = PopulationEncoder(1, 5, mu_range=(-2.0, 2.0))
    assert enc.mu.detach().tolist() == [[-2.0, -1.0, 0.0, 1.0, 2.0]]


def test_receptive_fields_formula_and_layout():
    n, p, b = 3, 4, 2
    enc = PopulationEncoder(n, p).double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        enc.mu.copy_(torch.randn(n, p, generator=gen, dtype=F64))
        enc.sigma.copy_(torch.rand(n, p, generator=gen, dtype=F64) + 0.1)
    x = torch.randn(b, n, generator=gen, dtype=F64)
    a = enc.receptive_fields(x)
    assert a.shape == (b, n * p)
    for bi in range(b):
        for i in range(n):
            for j in range(p):
                mu, sg = enc.mu[i, j].item(), enc.sigma[i, j].item()
                expected = math.exp(-((x[bi, i].item() - mu) ** 2) / (2 * sg**2))
                assert a[bi, i * p + j].item() == pytest.approx(expected, rel=1e-12)


def test_encoder_output_shape_binary_and_peak():
    enc = PopulationEncoder(4, 10, timesteps=7)
    x = torch.tanh(torch.randn(6, 4))
    spikes = enc(x)
    assert spikes.shape == (7, 6, 40)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    # the neuron centred on the input has A = 1 > 0.999: it fires on every tick
    enc5 = PopulationEncoder(1, 10)
    s = enc5(torch.tensor([[1.0]]))
    assert s[:, 0, 9].tolist() == [1.0] * 5
    assert s[:, 0, 0].tolist() == [0.0] * 5  # centre -1, far away


def test_encoder_deterministic_and_stateless():
    enc = PopulationEncoder(3, 10)
    x = torch.tanh(torch.randn(5, 3))
    assert torch.equal(enc(x), enc(x))
    # batch rows are independent
    assert torch.equal(enc(x[2:3]), enc(x)[:, 2:3])


def _expected_field_grad_factor(ticks: int, v_th: float = 0.999) -> float:
    """d(sum_t o_t)/dA through the straight-through generator with the autograd reset path.

    v_t = v_{t-1} - th o_{t-1} + A, do_t/dv_t = 1 -> d_t = d_{t-1} (1 - th) + 1.
    """
    d, total = 0.0, 0.0
    for _ in range(ticks):
        d = d * (1.0 - v_th) + 1.0
        total += d
    return total


def test_encoder_gradient_reaches_mu_sigma_straight_through():
    n, p, b, t = 2, 3, 4, 5
    enc = PopulationEncoder(n, p, timesteps=t).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.tanh(torch.randn(b, n, generator=gen, dtype=F64))
    enc(x).sum().backward()
    assert enc.mu.grad is not None and enc.sigma.grad is not None
    assert bool((enc.mu.grad != 0).any()) and bool((enc.sigma.grad != 0).any())
    # analytic: dL/dA = sum_t d_t (same for every neuron); dA/dmu = A (x - mu) / sigma^2,
    # dA/dsigma = A (x - mu)^2 / sigma^3
    k = _expected_field_grad_factor(t)
    assert k == pytest.approx(5.004003002001, abs=1e-9)  # 1 + 1.001 + 1.001001 + ... (reset path)
    mu, sg = enc.mu.detach(), enc.sigma.detach()
    diff = x.unsqueeze(-1) - mu  # [B, n, P]
    a = torch.exp(-(diff**2) / (2 * sg**2))
    torch.testing.assert_close(enc.mu.grad, (k * a * diff / sg**2).sum(0))
    torch.testing.assert_close(enc.sigma.grad, (k * a * diff**2 / sg**3).sum(0))


def test_encoder_gradient_is_not_surrogate_window():
    """Straight-through: a neuron far below threshold (A tiny, no spikes) still passes gradient."""
    enc = PopulationEncoder(1, 1).double()
    x = torch.tensor([[0.5]], dtype=F64, requires_grad=True)  # A = exp(-0.25 / 0.1) ~ 0.08
    spikes = enc(torch.tanh(x))
    assert spikes.sum().item() == 0.0
    spikes.sum().backward()
    assert x.grad.abs().item() > 0


def test_direct_encoder():
    enc = DirectEncoder(3, timesteps=4)
    x = torch.randn(2, 3)
    out = enc(x)
    assert out.shape == (4, 2, 3)
    assert enc.out_features == 3 and enc.timesteps == 4
    for t in range(4):
        assert torch.equal(out[t], x)
    assert list(enc.parameters()) == []
    xg = x.clone().requires_grad_(True)
    enc(xg).sum().backward()
    torch.testing.assert_close(xg.grad, torch.full_like(x, 4.0))


def test_rate_decode():
    spikes = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]], [[0.0, 0.0]], [[1.0, 0.0]]])
    assert rate_decode(spikes).tolist() == [[0.75, 0.25]]


def test_population_decoder_math():
    m, p, t, b = 3, 4, 5, 2
    dec = PopulationDecoder(m, p).double()
    gen = torch.Generator().manual_seed(2)
    spikes = (torch.rand(t, b, m * p, generator=gen, dtype=F64) > 0.5).to(F64)
    out = dec(spikes)
    assert out.shape == (b, m)
    for bi in range(b):
        for k in range(m):
            r = [spikes[:, bi, k * p + j].mean().item() for j in range(p)]
            expected = sum(dec.weight[k, j].item() * r[j] for j in range(p)) + dec.bias[k].item()
            assert out[bi, k].item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_population_decoder_init_and_params():
    m, p = 6, 10
    torch.manual_seed(0)
    dec = PopulationDecoder(m, p)
    bound = 1 / math.sqrt(p)
    assert dec.weight.shape == (m, p) and dec.bias.shape == (m,)
    assert sum(q.numel() for q in dec.parameters()) == m * p + m
    w, bias = dec.weight.detach(), dec.bias.detach()
    assert float(w.abs().max()) <= bound and float(bias.abs().max()) <= bound
    # actually spread over the interval (not constant / not a smaller range)
    assert float(w.abs().max()) > 0.7 * bound
    assert float(w.std()) > 0.3 * bound
    big = PopulationDecoder(50, 100).weight.detach()
    assert 0.09 < float(big.abs().max()) <= 0.1


def test_population_decoder_gradients():
    dec = PopulationDecoder(2, 3).double()
    spikes = torch.ones(5, 4, 6, dtype=F64, requires_grad=True)
    dec(spikes).sum().backward()
    torch.testing.assert_close(dec.weight.grad, torch.full((2, 3), 4.0, dtype=F64))
    torch.testing.assert_close(dec.bias.grad, torch.full((2,), 4.0, dtype=F64))
    # d/dS of the rate readout: w_kj / T
    expected = (dec.weight.detach().flatten() / 5).expand(5, 4, 6)
    torch.testing.assert_close(spikes.grad, expected)
