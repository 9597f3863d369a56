"""``spikerl bench`` results as Markdown (for ``docs/benchmarks.md``) and JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..tables import markdown_table

__all__ = ["TARGETS", "busy_warning", "render_markdown", "targets", "write_report"]


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _spread(summary: dict[str, Any], digits: int = 0) -> str:
    return f"{_n(summary['min'], digits)}-{_n(summary['max'], digits)}"


def _blas(machine: dict[str, Any]) -> str:
    """NumPy's BLAS library, kernel and threads, and any OpenBLAS override (runs saved before
    these were recorded show "not recorded")."""
    pools = machine.get("numpy_blas")
    if pools is None:
        return "not recorded"
    text = (
        "; ".join(
            f"{p['internal_api']} {p['version']} ({p['architecture']}, {p['num_threads']} threads)"
            for p in pools
        )
        or "unknown (install threadpoolctl)"
    )
    overrides = machine.get("openblas_overrides") or {}
    return text + "".join(f", {k}={v} set" for k, v in overrides.items())


def _machine(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    rows = [
        ["CPU", m["cpu"]],
        ["usable cores / torch threads", f"{m['cores']} / {s['torch_threads']}"],
        ["CPU capability (torch)", m["cpu_capability"]],
        ["bf16 matmul units", ", ".join(m["bf16_matmul_units"]) or "none"],
        ["device", m["device"] + (f" ({m['gpu']}, CUDA {m['cuda']})" if "gpu" in m else "")],
        ["python / torch / numpy", f"{m['python']} / {m['torch']} / {m['numpy']}"],
        ["NumPy BLAS", _blas(m)],
        ["C allocator", m.get("allocator", "not recorded")],
        ["gymnasium / mujoco", f"{m['gymnasium']} / {m['mujoco']}"],
        ["platform", m["platform"]],
        ["1-minute load average at start", _load(m)],
        ["spikerl / date (UTC)", f"{m.get('spikerl', 'not recorded')} / "
                                 f"{m.get('date', 'not recorded')}"],
    ]  # fmt: skip
    return markdown_table(["machine", ""], rows, left=2)


def _load(machine: dict[str, Any]) -> str:
    load = machine.get("load_avg_1m")
    return "not recorded" if load is None else f"{load:.2f}"


def busy_warning(results: dict[str, Any]) -> str | None:
    """Why this run's figures are not to be trusted, or None: the machine was busy at the start
    (1-minute load average at or above its usable cores), or a roofline fraction above 1 (a
    step faster than its matrix products alone: the rates were timed under different loads)."""
    m, reasons = results["machine"], []
    load = m.get("load_avg_1m")
    if load is not None and load >= m["cores"]:
        reasons.append(f"the 1-minute load average at the start ({load:.2f}) was at or above "
                       f"the {m['cores']} usable cores: other processes took CPU time")  # fmt: skip
    rows = results.get("training", {}).get("rows", [])
    over = [r["variant"] for r in rows if r.get("roofline_fraction", 0) > 1]
    if over:
        reasons.append(f"roofline fractions above 100% ({', '.join(over)}): the step and its "
                       "matrix products were timed under different loads")  # fmt: skip
    if not reasons:
        return None
    return "**Busy machine**: " + "; ".join(reasons) + ". Rerun on a quiet machine."


def _training(section: dict[str, Any], repeats: int) -> str:
    rows = []
    for r in section["rows"]:
        sps = r["steps_per_sec"]
        work = [
            _n(r["gflop_per_step"], 3),
            _n(r["achieved_gflop_per_sec"], 1),
            _n(r["matmul_gflop_per_sec"], 0 if r["matmul_gflop_per_sec"] >= 10 else 2),
            f"{r['roofline_fraction']:.1%}",
        ] if "gflop_per_step" in r else ["-"] * 4  # fmt: skip
        ratio, warmup = f"{r['ratio_to_ann_td3']:.3f}", _n(r["warmup_seconds"], 1)
        rows.append([r["variant"], _n(sps["median"], 1), _spread(sps, 1), ratio, warmup, *work])
    raw = section["raw_env_steps_per_sec"]
    headers = ["variant", "env steps/s", "min-max", "ratio to ANN-TD3", "warm-up s", "GFLOP/step",
               "GFLOP/s achieved", "matmul GFLOP/s (these shapes)", "roofline"]  # fmt: skip
    return "\n\n".join([
        f"## Training on {section['env']}",
        f"Env steps per second of the training loop after {section['learning_starts']} "
        f"random steps and {section['warmup']} untimed training steps (batch 256, one update "
        f"per env step, policy delay 2; spiking actors T = 5, populations of 10, 256-256; "
        f"proxy target K = 3, proxy 512-512), median of {repeats} round-robin "
        f"window{'s' * (repeats != 1)} of {section['window']} steps. Raw env stepping (random "
        "actions), the ceiling of the loop's rate: "
        f"{_n(raw['median'])} steps/s ({_spread(raw)}).",
        markdown_table(headers, rows),
        "GFLOP/step: the matrix products of one training step (acting, a critic step, and "
        "an actor step with its target or proxy updates every policy-delay-th step, for TD3 "
        "1/2 of one; SAC steps its actor every step), recorded as they ran. GFLOP/s "
        "achieved: GFLOP/step times env steps/s. Matmul GFLOP/s: the same products timed "
        "alone at their shapes on this machine. "
        "Roofline fraction: the time those products need at that rate over the measured step "
        "time (1 = nothing but matmuls at full speed). Warm-up s: the untimed training steps "
        "before the windows; for the compiled variants it holds the compile time. bfloat16: "
        "`run.precision=bfloat16`; compiled: `run.compile=true` (docs/performance.md).",
    ])  # fmt: skip


def _seeds(section: dict[str, Any]) -> str:
    n = section["seeds"]
    rows = [[r["variant"], _n(r["single_steps_per_sec"]["median"], 1),
             _spread(r["single_steps_per_sec"], 1), _n(r["stacked_steps_per_sec"]["median"], 1),
             _spread(r["stacked_steps_per_sec"], 1), f"{r['speedup']:.2f}x",
             *((_n(r["gflop_per_step"], 3), f"{r['single_roofline_fraction']:.1%}",
                f"{r['stacked_roofline_fraction']:.1%}") if "gflop_per_step" in r
               else ("-",) * 3)]
            for r in section["rows"]]  # fmt: skip
    return "\n\n".join([
        "## Many seeds in one process",
        f"Aggregate env steps/s on {section['env']} of {n} seeds stacked in one process "
        f"(`spikerl train --seeds`: one batched forward and update for all seeds; windows of "
        f"{section['iterations']} iterations = {section['iterations'] * n} env steps) against "
        f"one single-seed run, which is also the aggregate rate of {n} sequential runs.",
        markdown_table(["variant", "single run steps/s", "min-max",
                        f"{n} stacked seeds, total steps/s", "min-max", "speed-up",
                        "GFLOP/env step", "roofline single", "roofline stacked"], rows),
        "GFLOP/env step and roofline as in the training section (the stacked loop's products "
        "per iteration over its seeds): the speed-up of stacking is bounded by how far the "
        "single run is from its roofline.",
    ])  # fmt: skip


def _sequence(section: dict[str, Any]) -> str:
    w = section["windows_per_sec"]
    return "\n\n".join([
        "## Sequence training (quadrotor controller)",
        f"One update of guided sequence training (critic step on all window steps, actor "
        f"unrolled with BPTT, loss on i >= W) on {section['batch']} windows of "
        f"L = {section['window']} steps, burn-in W = {section['burn_in']}; actor 18-256-128-4 "
        "LIF, one tick per control step; twin critics 256-128 on the 146-d observation.",
        markdown_table(
            ["windows/s", "min-max", "GFLOP/update", "matmul GFLOP/s", "roofline fraction"],
            [[_n(w["median"]), _spread(w), _n(section["gflop_per_update"], 2),
              _n(section["matmul_gflop_per_sec"]), f"{section['roofline_fraction']:.1%}"]],
            left=0,
        ),
    ])  # fmt: skip


def _conversion(section: dict[str, Any]) -> str:
    rows = [
        [r["policy"].upper(), r["timesteps"] or "-", r["batch"],
         _n(r["decisions_per_sec"]["median"]), _spread(r["decisions_per_sec"]),
         f"{r['ann_over_snn']:.1f}"]
        for r in section["rows"]
    ]  # fmt: skip
    return "\n\n".join([
        "## Converted policies",
        "Decisions per second (rows per second: batch 256 is 256 decisions per call) of a "
        "17-256-256-6 actor converted per neuron model, one stateful step per call (T ticks, "
        "DC's priming tick, CRPI alpha 0.5), no autograd; the ANN in the same run.",
        markdown_table(["policy", "T", "batch", "decisions/s", "min-max", "ANN / SNN"], rows),
    ])  # fmt: skip


def _quadrotor(section: dict[str, Any]) -> str:
    rows = [[r["drones"], _n(r["drone_steps_per_sec"]["median"]),
             _spread(r["drone_steps_per_sec"])] for r in section["rows"]]  # fmt: skip
    return "\n\n".join([
        "## Quadrotor vector env",
        "Drone-steps per second of `spikerl/Quadrotor-v0` as a NumPy vector env (hover command "
        "plus N(0, 0.05) noise; observation, reward, termination and autoresets included).",
        markdown_table(["drones N", "drone-steps/s", "min-max"], rows),
    ])  # fmt: skip


def _latency(section: dict[str, Any]) -> str:
    rows = [[r["policy"], _n(r["median_us"], 1), _n(r["p10_us"], 1), _n(r["p90_us"], 1),
             _n(r["decisions_per_sec"])] for r in section["rows"]]  # fmt: skip
    return "\n\n".join([
        "## Latency per decision (batch 1)",
        f"{section['calls']} decisions per policy through `ActingPolicy` (NumPy observation "
        "in, inference-mode forward, NumPy action out), each timed alone; untrained networks "
        "of the shipped sizes (HalfCheetah's 17-d observation; the controller reads 18 of 146).",
        markdown_table(["policy", "median us", "p10 us", "p90 us", "decisions/s"], rows),
    ])  # fmt: skip


#: (target, how it is read off the results, required value); the seeds' is for a CPU (a GPU's:
#: :data:`SEEDS_GPU_TARGET`)
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("ANN-TD3 training >= 1.3x Stable-Baselines3 TD3", "sb3", 1.3),
    ("quadrotor vector env >= 1,000,000 drone-steps/s at N = 4096", "quadrotor", 1e6),
    ("many seeds: S = 8 in one process >= 2x the aggregate of 8 sequential runs", "seeds", 2.0),
)
SEEDS_GPU_TARGET = 5.0


def _down(value: float, digits: int) -> float:
    """``value`` rounded down to ``digits`` decimals, so a shown value never meets a target
    the unrounded one misses (1.2987 shows 1.29, not 1.30)."""
    scale = 10**digits
    return math.floor(value * scale) / scale


def targets(results: dict[str, Any]) -> list[list[str]]:
    """Rows ``[target, measured, met?]`` for the targets this run's sections can check (shown
    rounded down); a ``--quick`` run's are "not judged"."""
    rows = []
    training = {r["variant"]: r for r in results.get("training", {}).get("rows", [])}
    if "Stable-Baselines3 TD3" in training:
        ratio = 1.0 / training["Stable-Baselines3 TD3"]["ratio_to_ann_td3"]
        rows.append([TARGETS[0][0], f"{_down(ratio, 3):.3f}x", ratio >= TARGETS[0][2]])
    quad = {r["drones"]: r for r in results.get("quadrotor", {}).get("rows", [])}
    if 4096 in quad:
        rate = quad[4096]["drone_steps_per_sec"]["median"]
        rows.append([TARGETS[1][0], _n(_down(rate, 0)), rate >= TARGETS[1][2]])
    seeds = results.get("seeds", {})
    if seeds.get("seeds") == 8:
        gpu = str(results.get("machine", {}).get("device", "cpu")).startswith("cuda")
        need = SEEDS_GPU_TARGET if gpu else TARGETS[2][2]
        target = TARGETS[2][0].replace(">= 2x", f">= {need:g}x") + (" on a GPU" if gpu else "")
        for r in seeds["rows"]:
            measured = f"{_down(r['speedup'], 3):.3f}x"
            rows.append([f"{target} ({r['variant']})", measured, r["speedup"] >= need])
    quick = results.get("settings", {}).get("smoke", False)
    return [[t, m, "not judged (--quick)" if quick else "yes" if met else "no"]
            for t, m, met in rows]  # fmt: skip


def render_markdown(results: dict[str, Any], command: str) -> str:
    """The whole report: command, machine, one part per section run, the checkable targets."""
    quick = results["settings"].get("smoke", False)
    parts = [
        "# Benchmarks" + (" (a --quick smoke run: these numbers are not benchmarks)" * quick),
        f"Written by `{command}` in {results['seconds'] / 60:.1f} minutes. Every figure is the "
        "median of repeated windows with their minimum and maximum (latency: percentiles); "
        "ratios compare settings measured in the same run.",
        _machine(results),
    ]
    warning = busy_warning(results)
    if warning:
        parts.insert(2, warning)
    if "interrupted" in results:
        parts.insert(2, f"**Interrupted** (Ctrl-C) in the {results['interrupted']} section: "
                        "the sections before it only.")  # fmt: skip
    repeats = results["settings"]["repeats"]
    renderers = {
        "training": lambda sec: _training(sec, repeats),
        "seeds": _seeds,
        "sequence": _sequence,
        "conversion": _conversion,
        "quadrotor": _quadrotor,
        "latency": _latency,
    }
    parts += [render(results[name]) for name, render in renderers.items() if name in results]
    rows = targets(results)
    if rows:
        parts += ["## Targets", markdown_table(["target", "measured", "met"], rows)]
    return "\n\n".join(parts) + "\n"


def write_report(results: dict[str, Any], command: str, markdown: Path, json_path: Path) -> None:
    """Write the Markdown report and the JSON payload (with the command), creating folders."""
    for path in (markdown, json_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json_path, json.dumps({"command": command, **results}, indent=2) + "\n")
    write_text_atomic(markdown, render_markdown(results, command))


def plot_training(results: dict[str, Any], path: Path) -> Path:
    """Bars of the training section: env steps/s per variant (median, min-max whiskers, the
    ratio to ANN-TD3 printed beside each bar) and the roofline fraction. Needs matplotlib."""
    from ..experiments.report_plots import matplotlib_or_error

    mpl = matplotlib_or_error("benchmark plots")
    import matplotlib.patches  # noqa: F401 (the legend swatches)

    rows = results["training"]["rows"][::-1]  # first variant on top
    names = [r["variant"] for r in rows]
    sps = [r["steps_per_sec"] for r in rows]
    medians = [s["median"] for s in sps]
    whiskers = [[m - s["min"] for m, s in zip(medians, sps, strict=True)],
                [s["max"] - m for m, s in zip(medians, sps, strict=True)]]  # fmt: skip
    fig = mpl.figure.Figure(figsize=(10.5, 0.42 * len(rows) + 1.6), layout="constrained")
    mpl.backends.backend_agg.FigureCanvasAgg(fig)
    speed, roof = fig.subplots(1, 2, sharey=True, width_ratios=[2.2, 1])
    ys = range(len(rows))
    colors = ["tab:gray" if "Stable" in n else "tab:blue" if "ANN" in n or n == "SAC"
              else "tab:orange" for n in names]  # fmt: skip
    speed.barh(ys, medians, xerr=whiskers, color=colors, capsize=2)
    for y, r, s in zip(ys, rows, sps, strict=True):
        speed.text(s["max"] + 0.01 * max(medians), y, f" {r['ratio_to_ann_td3']:.2f}x",
                   va="center", fontsize=8)  # fmt: skip
    speed.set_yticks(list(ys), names, fontsize=8)
    legend = [mpl.patches.Patch(color=c, label=label) for c, label in (
        ("tab:orange", "spiking actor"), ("tab:blue", "ANN (spikerl)"),
        ("tab:gray", "Stable-Baselines3"))]  # fmt: skip
    speed.legend(handles=legend, fontsize=8, loc="center right")
    speed.set_xlabel("training env steps/s (median; whiskers min-max)")
    speed.set_xlim(0, max(s["max"] for s in sps) * 1.2)  # whiskers and ratio labels inside
    fractions = [100 * r.get("roofline_fraction", float("nan")) for r in rows]
    roof.barh(ys, fractions, color=colors)
    for y, f in zip(ys, fractions, strict=True):
        if f != f:  # no recorded work (the SB3 loop is not spikerl's)
            roof.text(2, y, "not measured", va="center", fontsize=8, color="0.4")
    roof.set_xlabel("roofline fraction (%)")
    roof.set_xlim(0, max(100.0, *(f * 1.05 for f in fractions if f == f)))
    roof.axvline(100.0, color="0.3", lw=0.8)
    for ax in (speed, roof):
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    m = results["machine"]
    smoke = " (--quick smoke run: not a benchmark)" * results["settings"].get("smoke", False)
    fig.suptitle(f"{results['training']['env']}: {m['cpu']}, {m['cores']} cores, "
                 f"{results['settings']['torch_threads']} threads, torch {m['torch']}{smoke}",
                 fontsize=10)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
