r"""Error-amplification analysis of a converted policy (spec ``conversion.md`` Sec. 7).

The paper's metric definitions are not public; these are spikerl's [project] definitions that
make its claims measurable. Actions are normalised to [-1, 1] per dimension (divided by the
action bound); :math:`e_k = \hat a_{SNN}(s_k) - \hat a_{ANN}(s_k)` at the same state, the SNN's
state advancing once per decision and reset per episode; the pre-tanh error is recorded too
(tanh saturation hides error). Every rollout of one analysis starts from the same states
(:func:`~spikerl.experiments.evaluation.episode_seeds` of the seed).

1. **Rollouts**: ``R_A`` executes the ANN and queries the SNN (SNN error without shift),
   ``R_S`` executes the SNN and queries the ANN.
2. **Amplification**: :math:`E_A = \mathrm{RMS}(e | R_A)`, :math:`E_S = \mathrm{RMS}(e | R_S)`,
   :math:`\kappa = E_S / E_A`, and :math:`|e_k|` against time in episode.
3. **Correlation**: :math:`\rho_\tau = \sum_k \langle e_k, e_{k+\tau}\rangle / \sum_k |e_k|^2`
   pooled over episodes (sums inside episodes), :math:`\tau = 1..20`; the centred
   :math:`\rho_1` (per-episode mean removed) and the bias share
   :math:`b = \sum_i K_i |\bar e_i|^2 / \sum_k |e_k|^2`; on both rollouts.
4. **Noise of equal RMS** injected into the ANN, :math:`\mathrm{clip}(\hat a_{ANN} + \sigma n_k)`:
   i.i.d. :math:`N(0, I)`; AR(1) :math:`n_{k+1} = \phi n_k + \sqrt{1-\phi^2}\,\varepsilon_k`
   with :math:`\phi` the SNN's :math:`\rho_1` on ``R_S`` clipped to [0, 0.99]; constant
   :math:`n_k = n_1` per episode. :math:`\sigma \in \{E_S, 0.02, 0.05, 0.1, 0.2\}`; the noise
   comes from the seed's ``noise`` stream, apart from the env's.
5. **State shift**, states standardised by ``R_A``'s mean and std (dimensions with std < 1e-8
   dropped): paired divergence :math:`d_k = |\tilde s_{S,k} - \tilde s_{A,k}| / \sqrt{dim}`
   between the i-th episodes up to the shorter length (curve, and its mean over the first
   H = 200 steps); unbiased MMD² with a Gaussian kernel of median-distance bandwidth on at most
   2,000 states per rollout, with its floor: the same statistic between two halves of
   ``R_A``'s episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..experiments.evaluation import episode_seeds, run_batched_episodes
from ..nets.policy import ActingPolicy
from ..nets.spiking import SpikingNetwork
from ..seeding import SeedStreams
from .source import SourcePolicy

__all__ = [
    "ConversionAnalysis",
    "NOISE_SIGMAS",
    "analyze",
    "autocorrelation",
    "bias_share",
    "mmd2",
    "plot_analysis",
]

NOISE_SIGMAS = (0.02, 0.05, 0.1, 0.2)
MAX_LAG = 20
HORIZON = 200
MMD_STATES = 2000


@dataclass
class Rollout:
    """A batched rollout: observations ``[K, B, n]``, alive mask ``[K, B]``, errors ``[K, B, m]``
    (normalised actions) and pre-tanh errors, returns ``[B]``."""

    observations: np.ndarray
    alive: np.ndarray
    errors: np.ndarray
    pre_errors: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray


@dataclass
class ConversionAnalysis:
    """Every number of the analysis for one converted setting (a row of the table) and the
    curves of the plots."""

    label: str
    row: dict[str, float]
    error_vs_time: dict[str, np.ndarray] = field(default_factory=dict)
    rho: dict[str, np.ndarray] = field(default_factory=dict)
    divergence: np.ndarray = field(default_factory=lambda: np.zeros(0))
    noise: list[dict[str, Any]] = field(default_factory=list)


def _episodes(x: np.ndarray, alive: np.ndarray) -> list[np.ndarray]:
    """Per batch row, the alive steps of ``x [K, B, ...]``."""
    return [x[alive[:, i], i] for i in range(alive.shape[1])]


def autocorrelation(errors: list[np.ndarray], max_lag: int = MAX_LAG) -> np.ndarray:
    r"""Uncentred pooled :math:`\rho_\tau`, ``tau = 1..max_lag`` (spec Sec. 7.3)."""
    energy = sum(float((e**2).sum()) for e in errors)
    out = np.zeros(max_lag)
    for tau in range(1, max_lag + 1):
        out[tau - 1] = sum(float((e[:-tau] * e[tau:]).sum()) for e in errors if len(e) > tau)
    return out / energy if energy > 0 else np.full(max_lag, np.nan)


def bias_share(errors: list[np.ndarray]) -> float:
    r""":math:`b = \sum_i K_i |\bar e_i|^2 / \sum_k |e_k|^2`."""
    energy = sum(float((e**2).sum()) for e in errors)
    bias = sum(len(e) * float((e.mean(axis=0) ** 2).sum()) for e in errors if len(e))
    return bias / energy if energy > 0 else float("nan")


def _rms(errors: list[np.ndarray]) -> float:
    stacked = np.concatenate([e.reshape(-1) for e in errors])
    return float(np.sqrt(np.mean(stacked**2))) if stacked.size else float("nan")


def mmd2(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
    """Unbiased MMD² between state sets ``x``, ``y`` with a Gaussian kernel whose bandwidth is
    the median pairwise distance of the pooled (subsampled) states."""
    x = x[rng.permutation(len(x))[:MMD_STATES]]
    y = y[rng.permutation(len(y))[:MMD_STATES]]
    pooled = np.concatenate([x, y])
    sq = (pooled**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    median = float(np.median(d2[np.triu_indices(len(pooled), 1)]))
    k = np.exp(-d2 / max(median, 1e-12))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    term_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    term_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean())


class _Pair:
    """Acts with one policy and queries the other at the same state, recording both."""

    def __init__(self, source: SourcePolicy, snn: SpikingNetwork, execute: str, bound: np.ndarray):
        self.source, self.snn, self.execute, self.bound = source, snn, execute, bound
        self.policy = ActingPolicy(snn)
        self.errors: list[np.ndarray] = []
        self.pre_errors: list[np.ndarray] = []

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(obs)
        ann_pre, _ = self.source.pre_activation(x)
        snn_pre = torch.as_tensor(self.policy(obs))  # the SNN built with activation None
        scale = self.source.max_action
        ann, snn = scale * torch.tanh(ann_pre), scale * torch.tanh(snn_pre)
        self.errors.append(((snn - ann).numpy()) / self.bound)
        self.pre_errors.append((snn_pre - ann_pre).numpy())
        return (ann if self.execute == "ann" else snn).numpy()


def _pre_activation_snn(snn: SpikingNetwork) -> SpikingNetwork:
    """The same network returning the readout before ``max_action * tanh``."""
    import copy

    clone = copy.deepcopy(snn)
    clone.activation, clone.max_action = None, 1.0
    return clone


def _rollout(source, snn, execute, seeds, bound) -> Rollout:
    pair = _Pair(source, _pre_activation_snn(snn), execute, bound)
    result = run_batched_episodes(source.env_id, seeds, pair, source.normalizer, record=True)
    return Rollout(
        result.observations, result.alive, np.stack(pair.errors), np.stack(pair.pre_errors),
        result.returns, result.lengths,
    )  # fmt: skip


def _noise_rollout(source, seeds, bound, sigma, kind, phi, rng) -> dict[str, Any]:
    """The ANN with injected normalised-action noise of one process and scale."""
    state = {"n": None}
    realised: list[np.ndarray] = []

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        a = source(torch.as_tensor(obs)).numpy() / bound
        fresh = rng.standard_normal(a.shape)
        n = state["n"]
        if n is None or kind == "iid":
            n = fresh
        elif kind == "ar1":
            n = phi * n + np.sqrt(1 - phi**2) * fresh
        state["n"] = n  # constant: n_1 kept for the whole episode
        noisy = np.clip(a + sigma * n, -1.0, 1.0)
        realised.append(noisy - a)
        return (noisy * bound).astype(np.float32)

    result = run_batched_episodes(source.env_id, seeds, act, source.normalizer, record=True)
    rms = _rms(_episodes(np.stack(realised), result.alive))
    return {"kind": kind, "sigma": sigma, "return": float(result.returns.mean()), "rms": rms}


def _standardised(ra: Rollout, rs: Rollout) -> tuple[list[np.ndarray], list[np.ndarray]]:
    states_a = _episodes(ra.observations, ra.alive)
    states_s = _episodes(rs.observations, rs.alive)
    pooled = np.concatenate(states_a)
    mean, std = pooled.mean(0), pooled.std(0)
    keep = std >= 1e-8
    norm = lambda s: (s[:, keep] - mean[keep]) / std[keep]  # noqa: E731
    return [norm(s) for s in states_a], [norm(s) for s in states_s]


def _state_shift(ra: Rollout, rs: Rollout, rng: np.random.Generator) -> dict[str, Any]:
    sa, ss = _standardised(ra, rs)
    dim = sa[0].shape[1]
    length = max(min(len(a), len(s)) for a, s in zip(sa, ss, strict=True))
    curves = np.full((len(sa), length), np.nan)
    for i, (a, s) in enumerate(zip(sa, ss, strict=True)):
        k = min(len(a), len(s))
        curves[i, :k] = np.linalg.norm(s[:k] - a[:k], axis=1) / np.sqrt(dim)
    divergence = np.nanmean(curves, axis=0)
    half = len(sa) // 2
    floor = mmd2(np.concatenate(sa[:half]), np.concatenate(sa[half:]), rng) if half else np.nan
    return {
        "divergence": divergence,
        "d_mean_h": float(np.nanmean(divergence[:HORIZON])),
        "mmd2": mmd2(np.concatenate(ss), np.concatenate(sa), rng),
        "mmd2_floor": float(floor),
    }


def analyze(
    source: SourcePolicy,
    snn: SpikingNetwork,
    seed: int,
    episodes: int = 10,
    label: str = "",
    sigmas: tuple[float, ...] = NOISE_SIGMAS,
) -> ConversionAnalysis:
    """The whole analysis of Sec. 7 for one converted network (module docstring)."""
    env_id = source.env_id
    seeds = episode_seeds(seed, episodes)
    from ..experiments.evaluation import make_frozen_env

    env = make_frozen_env(env_id, source.normalizer)
    bound = np.asarray(env.action_space.high, dtype=np.float32)
    env.close()
    ra = _rollout(source, snn, "ann", seeds, bound)
    rs = _rollout(source, snn, "snn", seeds, bound)
    err_a, err_s = _episodes(ra.errors, ra.alive), _episodes(rs.errors, rs.alive)
    e_a, e_s = _rms(err_a), _rms(err_s)
    rho_a, rho_s = autocorrelation(err_a), autocorrelation(err_s)
    centred = [e - e.mean(0) for e in err_s]
    rng = SeedStreams(seed).numpy("noise")
    shift = _state_shift(ra, rs, rng)
    phi = float(np.clip(rho_s[0], 0.0, 0.99)) if np.isfinite(rho_s[0]) else 0.9
    noise = [
        _noise_rollout(source, seeds, bound, sigma, kind, phi, rng)
        for sigma in (e_s, *sigmas)
        for kind in ("iid", "ar1", "constant")
    ]
    row = {
        "return_ann": float(ra.returns.mean()),
        "return_snn": float(rs.returns.mean()),
        "E_A": e_a,
        "E_S": e_s,
        "kappa": e_s / e_a if e_a > 0 else float("nan"),
        "E_A_pre": _rms(_episodes(ra.pre_errors, ra.alive)),
        "E_S_pre": _rms(_episodes(rs.pre_errors, rs.alive)),
        "rho1_S": float(rho_s[0]),
        "rho1_A": float(rho_a[0]),
        "rho1_centred_S": float(autocorrelation(centred, 1)[0]),
        "bias_S": bias_share(err_s),
        "bias_A": bias_share(err_a),
        "d_mean_200": shift["d_mean_h"],
        "mmd2": shift["mmd2"],
        "mmd2_floor": shift["mmd2_floor"],
    }
    for n in noise:
        if n["sigma"] == e_s:
            row[f"return_{n['kind']}_at_E_S"] = n["return"]
    return ConversionAnalysis(
        label,
        row,
        {"R_A": _mean_abs(ra), "R_S": _mean_abs(rs)},
        {"R_A": rho_a, "R_S": rho_s},
        shift["divergence"],
        noise,
    )


def _mean_abs(rollout: Rollout) -> np.ndarray:
    """Mean over episodes of :math:`|e_k|` (Euclidean over action dims) at each step."""
    norms = np.linalg.norm(rollout.errors, axis=-1)
    norms = np.where(rollout.alive, norms, np.nan)
    return np.nanmean(norms, axis=1)


ERROR_SMOOTHING = 25  # steps of the moving mean in the |e_k| panel


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean over the last ``window`` values (fewer at the start), same length as ``values``."""
    values = np.asarray(values, dtype=float)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def plot_analysis(analyses: list[ConversionAnalysis], path: Path, title: str) -> Path:
    """Four panels: |e| vs time, rho_tau, paired divergence d_k, return vs sigma per noise."""
    from ..experiments.report_plots import matplotlib_or_error

    mpl = matplotlib_or_error("conversion analysis plots")
    fig = mpl.figure.Figure(figsize=(12, 8.5), layout="constrained")
    mpl.backends.backend_agg.FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2).ravel()
    colors = mpl.colormaps["tab10"]
    for i, a in enumerate(analyses):
        c = colors(i % 10)
        for key, style in (("R_S", "-"), ("R_A", ":")):
            smooth = _moving_average(a.error_vs_time[key], ERROR_SMOOTHING)
            axes[0].plot(smooth, style, color=c, lw=1, label=f"{a.label} {key}")
            lags = np.arange(1, len(a.rho[key]) + 1)
            axes[1].plot(lags, a.rho[key], style, marker="o", ms=3, color=c)
        axes[2].plot(a.divergence, color=c, lw=1, label=a.label)
        for kind, marker in (("iid", "o"), ("ar1", "s"), ("constant", "^")):
            pts = sorted((n["sigma"], n["return"]) for n in a.noise if n["kind"] == kind)
            axes[3].plot(*zip(*pts, strict=True), marker=marker, color=c, lw=1,
                         label=f"{a.label} {kind}")  # fmt: skip
        axes[3].axhline(a.row["return_snn"], color=c, ls="--", lw=1)
        axes[3].axvline(a.row["E_S"], color=c, ls=":", lw=1)  # the SNN's own error RMS
    axes[3].axhline(analyses[0].row["return_ann"], color="k", lw=1, label="ANN")
    labels = [
        ("time in episode (step)", "|e_k| (normalised action)",
         f"SNN action error, {ERROR_SMOOTHING}-step mean (solid R_S, dotted R_A)"),
        ("lag tau (decisions)", "rho_tau", "error autocorrelation (solid R_S, dotted R_A)"),
        ("time in episode (step)", "d_k (standardised)", "state divergence R_S vs R_A"),
        ("noise sigma (normalised action)", "return",
         "ANN + noise (dashed: SNN return, dotted: its E_S)"),
    ]  # fmt: skip
    for ax, (xl, yl, t) in zip(axes, labels, strict=True):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(t)
        ax.grid(alpha=0.3)
    axes[1].axhline(0, color="0.5", lw=0.8)
    axes[3].set_xscale("log")
    shared = [{round(n["sigma"], 4) for n in a.noise} for a in analyses]
    sigmas = sorted(set.intersection(*shared))  # each setting's own E_S is its dotted line
    axes[3].set_xticks(sigmas, [f"{x:g}" for x in sigmas], rotation=45, fontsize=7)
    axes[3].minorticks_off()
    axes[0].legend(fontsize=7)
    axes[3].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
