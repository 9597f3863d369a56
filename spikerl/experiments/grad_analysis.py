r"""``spikerl grad-analysis``: how the surrogate slope shapes gradients, layer by layer.

The experiment of arXiv 2510.24461 (Sec. 4 of its spec). One synthetic spiking network,
input 63 -> three hidden LIF layers of 64 -> an output LIF layer of 64 -> a linear readout
(64 -> 64) of the summed output spikes, ``T = 2`` ticks per sample, no biases (``bias=True``
keeps them), every LIF with a learnable per-neuron leak ``clip(beta, 0, 1)`` and threshold
(both U(0, 1)) and the detached soft reset. Its five weight matrices are layers 0-4 (4 is the
readout). The slope only enters the backward pass; the forward outputs are checked to be
identical for every slope.

Data: ``N`` samples ``x ~ N(0, I_63)``, targets ``y ~ N(0, I_64)``, MSE loss, state reset per
sample, per-sample gradients. For each slope ``k`` and layer :math:`\ell`:

.. math::

    \mathrm{magnitude}(k, \ell) &= \tfrac1N \textstyle\sum_n \mathrm{mean}_{ij}
        |g^{(n)}_{k,\ell}|\quad (|g| < 10^{-18} \text{ counted as } 0)\\
    \mathrm{alignment}(k, \ell) &= \tfrac1N \textstyle\sum_n
        \cos(g^{(n)}_{k,\ell}, g^{(n)}_{\mathrm{ref},\ell})

with the steep slope ``k_ref`` (100) standing in for the true derivative (zero almost
everywhere); a cosine with a zero gradient counts as 0. Also the cosine's std and the
fraction of samples whose layer gradient is all zero. Writes ``grad_analysis.csv``
(``slope,layer,mean_abs_grad,cos_mean,cos_std,frac_zero``) and ``grad_analysis.png`` to
``--out``, by default ``runs/grad_analysis`` (actor mode: ``runs/grad_analysis_actor/<run
folder name>``, so neither mode overwrites the other).

Actor mode (``--mode actor --buffer RUN``): the same statistics for the trained stateful actor
of a sequence run (``algo.name: sequence``; 18-256-128-4: layers 0, 1 and 2 = readout), one
sample per stored window (``--samples`` windows drawn from the run's replay buffer), the loss
being the run's real masked actor loss (:meth:`~spikerl.algos.sequence.SequenceTD3BC.actor_loss`
at the run's current BC weight: BPTT over the window, only steps past the burn-in).

Memory: samples are taken ``CHUNK`` (256) at a time. Their per-sample gradients (``chunk x
parameters`` floats, for the reference slope and one other slope) and, in actor mode, their
windows (``[chunk, L, obs]``) are held for that chunk only: each sample's gradients are reduced
at once to 3 numbers per slope and layer (mean :math:`|g|`, the cosine, the all-zero flag),
whose means over all ``N`` samples are the statistics above, bit for bit those of the whole
batch at once. What grows with ``N`` is only these numbers, the synthetic inputs (127 per
sample) and the drawn windows' indices.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import SpikerlError, UsageError
from ..nets.spiking import SpikingNetwork
from ..seeding import SeedStreams
from ..snn.coding import DirectEncoder, LinearReadout
from ..snn.layers import LIF
from ..snn.surrogate import Surrogate
from ..tables import format_table
from .argtypes import positive_float, positive_int, seed
from .outputs import check_output_folder

__all__ = [
    "GradStats",
    "actor_gradient_analysis",
    "add_grad_analysis_parser",
    "cmd_grad_analysis",
    "gradient_analysis",
]

TINY_GRADIENT = 1e-18
CHUNK = 256  # samples whose per-sample gradients are held at once
CSV_NAME, PNG_NAME = "grad_analysis.csv", "grad_analysis.png"
SYNTHETIC_OUT = Path("runs/grad_analysis")
ACTOR_OUT = Path("runs/grad_analysis_actor")  # + the run folder's name


@dataclass(frozen=True)
class GradStats:
    slope: float
    layer: int
    mean_abs_grad: float
    cos_mean: float
    cos_std: float
    frac_zero: float


def synthetic_network(bias: bool = False, timesteps: int = 2) -> SpikingNetwork:
    """63 -> LIF 64 x 3 -> LIF 64 -> linear readout 64 of the summed spikes (module docs)."""
    sizes = [63, 64, 64, 64, 64]
    linears = [nn.Linear(a, b, bias=bias) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    neurons = [
        LIF(reset="soft_detached", leak="clip", threshold="learn", init="uniform", size=n,
            surrogate=Surrogate("fast_sigmoid", 1.0))
        for n in sizes[1:]
    ]  # fmt: skip
    readout = LinearReadout(64, 64, source="count")
    if not bias:
        readout.linear.bias = None
    return SpikingNetwork(
        DirectEncoder(63, timesteps), linears, neurons, readout, timesteps, activation=None
    )


def _weights(net: SpikingNetwork) -> list[torch.Tensor]:
    return [lin.weight for lin in net.linears] + [net.decoder.linear.weight]


def _per_sample_gradients(
    net, sample_loss, count, slope
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Gradients ``[count, *W.shape]`` of each weight for each sample of one chunk, and the
    forward outputs; ``sample_loss(i) -> (loss, output)`` runs the chunk's sample ``i`` from
    zero state."""
    net.set_surrogate_slope(slope)
    weights = _weights(net)
    grads = [torch.zeros((count, *w.shape), dtype=w.dtype) for w in weights]
    outputs = []
    for i in range(count):
        loss, out = sample_loss(i)
        for j, g in enumerate(torch.autograd.grad(loss, weights)):
            grads[j][i] = g
        outputs.append(out.detach().reshape(1, -1))
    return grads, torch.cat(outputs)


def _synthetic_losses(net, x, y):
    """``chunk_losses(start, stop) -> sample_loss``: sample ``i`` of the chunk is the MSE of
    ``net(x[start + i])`` against ``y[start + i]``."""

    def chunk_losses(start: int, stop: int):
        def sample_loss(i: int):
            n = start + i
            out = net(x[n : n + 1])  # every call starts from zero state
            return nn.functional.mse_loss(out, y[n : n + 1]), out

        return sample_loss

    return chunk_losses


def _cosines(g: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    g, ref = g.flatten(1), ref.flatten(1)
    norms = g.norm(dim=1) * ref.norm(dim=1)
    dots = (g * ref).sum(dim=1)
    return torch.where(norms > 0, dots / torch.where(norms > 0, norms, 1.0), 0.0)


def gradient_analysis(
    slopes: tuple[float, ...] = (1, 10, 25, 50, 100),
    reference: float = 100.0,
    samples: int = 256,
    seed: int = 0,
    bias: bool = False,
    dtype: torch.dtype = torch.float32,
    timesteps: int = 2,
    chunk: int = CHUNK,
) -> list[GradStats]:
    """Per slope and layer of the synthetic network: gradient magnitude, cosine with the
    reference slope's gradient; per-sample gradients are held for ``chunk`` samples at a time
    (the statistics do not depend on it)."""
    streams = SeedStreams(seed)
    with streams.torch_init():
        net = synthetic_network(bias, timesteps).to(dtype)
    data = streams.torch("replay")
    x = torch.randn(samples, 63, generator=data, dtype=dtype)
    y = torch.randn(samples, 64, generator=data, dtype=dtype)
    return _slope_statistics(net, _synthetic_losses(net, x, y), samples, slopes, reference, chunk)


def actor_gradient_analysis(
    run_dir: str | Path,
    slopes: tuple[float, ...] = (1, 10, 25, 50, 100),
    reference: float = 100.0,
    samples: int = 256,
    seed: int = 0,
    chunk: int = CHUNK,
) -> list[GradStats]:
    """The same statistics for a sequence run's actor on ``samples`` windows of its buffer,
    each with the run's masked actor loss (module docstring); the windows and their gradients
    are materialised ``chunk`` at a time."""
    from ..algos.common import frozen
    from .sequence_run import load_trained

    cfg, learner, buffer, bc_weight = load_trained(run_dir)
    buffer.rng = np.random.default_rng(seed)
    chunk_losses = _window_losses(learner, buffer, samples, cfg.algo.gamma, bc_weight)
    with frozen(learner.critic):
        return _slope_statistics(learner.actor, chunk_losses, samples, slopes, reference, chunk)


def _window_losses(learner, buffer, samples, gamma, bc_weight):
    """``chunk_losses(start, stop) -> sample_loss``: draws all ``samples`` windows up front
    (indices only: the draws of ``buffer.sample(samples, gamma)``), gathers the chunk's windows
    ``[stop - start, L, obs]`` when asked; sample ``i`` is the actor loss of window
    ``start + i`` alone."""
    eps, starts = buffer.sample_windows(samples)

    def chunk_losses(start: int, stop: int):
        batch = buffer.gather(eps[start:stop], starts[start:stop], gamma)

        def sample_loss(i: int):
            window = type(batch)(*(field[i : i + 1] for field in batch))
            loss, _ = learner.actor_loss(window, bc_weight)
            return loss, loss

        return sample_loss

    return chunk_losses


def _sample_statistics(
    g: torch.Tensor, ref: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample of one layer's chunk ``g [C, *W.shape]``, entries ``|g| < 1e-18`` set to 0:
    ``mean_ij |g_ij|``, ``cos(g, ref)`` (0 if either is zero) and whether ``g`` is all zero."""
    g = torch.where(g.abs() < TINY_GRADIENT, 0.0, g)
    magnitude = g.abs().flatten(1).mean(dim=1)
    zero = g.flatten(1).abs().sum(dim=1) == 0
    return magnitude, _cosines(g, ref), zero


def _summary(
    slope: float, layer: int, magnitude: torch.Tensor, cos: torch.Tensor, zero: torch.Tensor
) -> GradStats:
    """The means over all ``N`` samples of the per-sample statistics ``[N]`` of one slope and
    layer, and the cosines' population std ``sqrt(mean (cos - cos_mean)^2)``."""
    return GradStats(
        float(slope), layer, float(magnitude.mean()), float(cos.mean()),
        float(cos.std(unbiased=False)), float(zero.double().mean()),
    )  # fmt: skip


def _chunks(samples: int, chunk: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of ``max(chunk, 2)`` samples, a single leftover
    sample joining the last full chunk: torch may split a one-row reduction of a large layer
    across threads, which can change its last bit, so no chunk has one row unless
    ``samples == 1`` (as in the whole-batch computation)."""
    starts = list(range(0, samples, max(chunk, 2)))
    if len(starts) > 1 and samples - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, [*starts[1:], samples], strict=True))


def _per_sample_storage(weights, slopes, samples) -> list[list[tuple[torch.Tensor, ...]]]:
    """``[slope][layer] -> (mean |g|, cosine, all-zero flag)``, each ``[samples]``, allocated
    once (growing them chunk by chunk fragments the heap: the peak memory grew with ``N``)."""
    return [
        [
            (torch.empty(samples, dtype=w.dtype), torch.empty(samples, dtype=w.dtype),
             torch.empty(samples, dtype=torch.bool))
            for w in weights
        ]
        for _ in slopes
    ]  # fmt: skip


def _slope_statistics(net, chunk_losses, samples, slopes, reference, chunk) -> list[GradStats]:
    """Statistics per slope and layer over ``samples`` samples, ``chunk`` at a time: per-sample
    gradients need ``chunk x parameters`` floats for the reference slope and one more slope;
    what is kept per sample is 3 numbers per slope and layer."""
    weights = _weights(net)
    kept = _per_sample_storage(weights, slopes, samples)
    for start, stop in _chunks(samples, chunk):
        count = stop - start
        sample_loss = chunk_losses(start, stop)
        ref_grads, ref_out = _per_sample_gradients(net, sample_loss, count, reference)
        for s, k in enumerate(slopes):
            grads, out = _per_sample_gradients(net, sample_loss, count, k)
            if not torch.equal(out, ref_out):
                raise SpikerlError(f"the forward pass changed with the slope ({k}); it must not")
            for layer, (g, r) in enumerate(zip(grads, ref_grads, strict=True)):
                for into, value in zip(kept[s][layer], _sample_statistics(g, r), strict=True):
                    into[start:stop] = value
    layers = range(len(weights))
    return [_summary(k, layer, *kept[s][layer]) for s, k in enumerate(slopes) for layer in layers]


def write_csv(stats: list[GradStats], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["slope", "layer", "mean_abs_grad", "cos_mean", "cos_std", "frac_zero"])
        for s in stats:
            writer.writerow([s.slope, s.layer, s.mean_abs_grad, s.cos_mean, s.cos_std, s.frac_zero])


def write_png(stats: list[GradStats], path: Path, reference: float, title: str) -> None:
    from .report_plots import matplotlib_or_error

    mpl = matplotlib_or_error("gradient-analysis plots")
    fig = mpl.figure.Figure(figsize=(10, 4), layout="constrained")
    mpl.backends.backend_agg.FigureCanvasAgg(fig)
    magnitude, alignment = fig.subplots(1, 2)
    for k in sorted({s.slope for s in stats}):
        rows = [s for s in stats if s.slope == k]
        layers = [s.layer for s in rows]
        magnitude.plot(
            layers, [max(s.mean_abs_grad, 1e-30) for s in rows], marker="o", label=f"k = {k:g}"
        )
        alignment.plot(layers, [s.cos_mean for s in rows], marker="o", label=f"k = {k:g}")
    last = max(s.layer for s in stats)
    magnitude.set(yscale="log", xlabel=f"layer ({last} = readout)", ylabel="mean |dL/dW|",
                  title="gradient magnitude")  # fmt: skip
    alignment.set(xlabel=f"layer ({last} = readout)", ylabel=f"cosine with k = {reference:g}",
                  title="alignment with the steep-slope gradient", ylim=(-0.05, 1.05))  # fmt: skip
    for ax in (magnitude, alignment):
        ax.grid(alpha=0.3)
        ax.set_xticks(sorted({s.layer for s in stats}))
    alignment.legend(fontsize="small")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)


def add_grad_analysis_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "grad-analysis",
        help="per-layer gradient magnitude and alignment against a steep slope (arXiv 2510.24461)",
    )
    p.add_argument(
        "--mode", choices=["synthetic", "actor"], default="synthetic",
        help="synthetic network (default) or a sequence run's actor on its stored windows",
    )  # fmt: skip
    p.add_argument(
        "--buffer",
        type=Path,
        default=None,
        metavar="RUN",
        help="actor mode: the sequence run folder (its checkpoint holds the buffer)",
    )
    p.add_argument(
        "--slopes", type=positive_float, nargs="+", default=[1, 10, 25, 50, 100],
        help="surrogate slopes to compare (default: 1 10 25 50 100)",
    )  # fmt: skip
    p.add_argument(
        "--reference", type=positive_float, default=100.0,
        help="the steep slope standing in for the true derivative (default: 100)",
    )  # fmt: skip
    p.add_argument(
        "--samples", type=positive_int, default=256,
        help="samples (actor mode: stored windows) to average over (default: 256)",
    )  # fmt: skip
    p.add_argument(
        "--timesteps", type=positive_int, default=None,
        help="synthetic mode: ticks per sample (default: 2)",
    )  # fmt: skip
    p.add_argument("--seed", type=seed, default=0, help="data and weight seed (default: 0)")
    p.add_argument(
        "--bias", action="store_true", help="synthetic mode: keep the linear layers' biases"
    )
    p.add_argument("--float64", action="store_true", help="synthetic mode: compute in float64")
    p.add_argument(
        "--out", type=Path, default=None,
        help=f"output folder (default: {SYNTHETIC_OUT}; actor mode: {ACTOR_OUT}/<RUN folder name>)",
    )  # fmt: skip
    p.add_argument("--no-plot", action="store_true", help="CSV only (no matplotlib needed)")


def _check_mode_options(args: argparse.Namespace) -> None:
    """Refuse options that the chosen mode would ignore."""
    if args.mode == "actor":
        if args.buffer is None:
            raise SpikerlError("--mode actor needs --buffer RUN (a sequence run folder)")
        synthetic_only = [
            option
            for option, given in (
                ("--timesteps", args.timesteps is not None),
                ("--bias", args.bias),
                ("--float64", args.float64),
            )
            if given
        ]
        if synthetic_only:
            raise UsageError(
                f"{', '.join(synthetic_only)}: synthetic mode only; the actor mode uses the "
                "run's own network"
            )
    elif args.buffer is not None:
        raise UsageError("--buffer is read by --mode actor only; add --mode actor")


def output_folder(args: argparse.Namespace) -> Path:
    """``--out``, or the mode's own default: ``runs/grad_analysis`` (synthetic) or
    ``runs/grad_analysis_actor/<RUN folder name>`` (actor)."""
    if args.out is not None:
        return args.out
    if args.mode == "actor":
        return ACTOR_OUT / args.buffer.resolve().name
    return SYNTHETIC_OUT


def cmd_grad_analysis(args: argparse.Namespace) -> int:
    _check_mode_options(args)
    out = output_folder(args)
    check_output_folder(out, "--out")
    if args.mode == "actor":
        stats = actor_gradient_analysis(
            args.buffer, tuple(args.slopes), args.reference, args.samples, args.seed
        )
        title = f"Surrogate slope vs per-window actor gradients ({args.buffer.name})"
    else:
        dtype = torch.float64 if args.float64 else torch.float32
        timesteps = args.timesteps or 2
        stats = gradient_analysis(
            tuple(args.slopes), args.reference, args.samples, args.seed, args.bias, dtype,
            timesteps,
        )  # fmt: skip
        title = (
            f"Surrogate slope vs per-sample gradients (fast sigmoid, 63-64x4-64, T = {timesteps})"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(stats, out / CSV_NAME)
        if not args.no_plot:
            write_png(stats, out / PNG_NAME, args.reference, title)
    except OSError as err:
        raise SpikerlError(f"cannot write to {out}: {err.strerror or err}") from None
    rows = [
        [f"{s.slope:g}", s.layer, s.mean_abs_grad, s.cos_mean, s.cos_std, s.frac_zero]
        for s in stats
    ]
    print(format_table(["slope", "layer", "mean |grad|", "cos mean", "cos std", "zero"], rows))
    print(f"wrote {out / CSV_NAME}" + ("" if args.no_plot else f" and {out / PNG_NAME}"))
    return 0
