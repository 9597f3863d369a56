"""``spikerl convert``: ANN-to-SNN conversion of a trained actor (arXiv 2601.21778).

::

    spikerl convert SOURCE --neuron {if,snm,mt,mt_signed,dc,dc-mt} --timesteps T --crpi ALPHA
                    [-o OUT] [--env ENV] [--seed S] [--calibration-steps N]
                    [--statistic max|percentile] [--percentile P] [--episodes E]

SOURCE is a spikerl TD3 or SAC run folder (or a checkpoint in one, e.g. ``best.pt``) or a plain
``state_dict`` of an MLP actor (then ``--env`` is required). Thresholds are calibrated on the
ANN's own rollouts seeded from seed S's ``calibration`` stream; the written file is an ordinary
spikerl policy for ``spikerl evaluate OUT`` and ``spikerl energy OUT``, which evaluate it from
seed S's ``evaluation`` stream. With ``--episodes E`` the ANN and the SNN are evaluated on the
same start states right away.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..convert import (
    CalibrationSettings,
    ConversionSettings,
    build_converted,
    calibrate,
    read_source,
    save_converted,
)
from ..convert.source import ConversionError, SourcePolicy, shipped_actors
from ..envs import check_env_id
from ..snn.conversion import CONVERSION_MODELS
from .argtypes import non_negative_int, positive_int, unit_interval
from .config import Config, config_from_dict
from .report import format_table

__all__ = [
    "add_convert_parser",
    "add_convert_sweep_parser",
    "add_analyze_parser",
    "cmd_analyze",
    "cmd_convert",
    "cmd_convert_sweep",
    "converted_config",
    "default_output",
]


def add_convert_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a trained TD3/SAC ANN actor into a spiking policy (with CRPI)",
        description=__doc__.split("::")[0].strip(),
        allow_abbrev=False,  # a misspelt flag is an error, never a prefix match (spec Sec. 12.1)
    )
    p.add_argument(
        "source",
        type=Path,
        help="TD3/SAC run folder, checkpoint, state_dict file, or a shipped actor: "
        + ", ".join(shipped_actors()),
    )
    p.add_argument("--neuron", choices=CONVERSION_MODELS, default="if", help="neuron model")
    p.add_argument("--timesteps", type=positive_int, default=32, help="T ticks per decision")
    p.add_argument("--crpi", type=unit_interval, default=0.0, help="CRPI alpha in [0, 1] (0: off)")
    p.add_argument("--levels", type=positive_int, default=8, help="MT levels per unit")
    p.add_argument("-o", "--output", type=Path, default=None, help="converted policy file")
    p.add_argument("--env", default=None, help="env id (required for a plain state_dict)")
    p.add_argument("--max-action", type=float, default=1.0, help="action scale of a state_dict")
    p.add_argument("--seed", type=non_negative_int, default=0, help="calibration/evaluation seed")
    p.add_argument("--calibration-steps", type=positive_int, default=10_000, help="ANN env steps")
    p.add_argument("--statistic", choices=("max", "percentile"), default="max")
    p.add_argument("--percentile", type=float, default=99.9, help="with --statistic percentile")
    p.add_argument(
        "--episodes", type=non_negative_int, default=0, help="evaluate ANN and SNN (0: skip)"
    )


def default_output(source: SourcePolicy, path: Path, settings: ConversionSettings, seed: int):
    """``RUN/converted/<neuron>-T<T>-a<alpha>-s<seed>.pt`` for a run, ``converted/NAME-...``
    for a shipped actor, else beside the state_dict file."""
    name = f"{settings.neuron}-T{settings.timesteps}-a{settings.crpi:g}-s{seed}.pt"
    if not path.exists():  # a shipped actor's name
        return Path("converted") / f"{path}-{name}"
    if source.config is not None:
        run_dir = path if path.is_dir() else path.parent
        return run_dir / "converted" / name
    return path.with_name(f"{path.stem}-{name}")


def converted_config(
    source: SourcePolicy, env_id: str, settings: ConversionSettings, seed: int
) -> Config:
    """The config stored with a converted policy: the source run's (or a default one for a
    state_dict) with the conversion's env, seed and name, so ``evaluate`` uses seed S."""
    base = source.config if source.config is not None else config_from_dict({"env": {"id": env_id}})
    stem = base.run_name if source.config is not None else Path(source.origin).stem
    name = f"{stem}-{settings.neuron}-T{settings.timesteps}-a{settings.crpi:g}"
    return dataclasses.replace(
        base,
        env=dataclasses.replace(base.env, id=env_id),
        run=dataclasses.replace(base.run, seed=seed, name=name),
    )


def cmd_convert(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_policy

    settings = ConversionSettings(args.neuron, args.timesteps, args.crpi, args.levels)
    calib = CalibrationSettings(args.calibration_steps, args.statistic, args.percentile)
    source = read_source(args.source, args.max_action)
    env_id = args.env or source.env_id
    if env_id is None:
        raise ConversionError(f"{args.source} is a state_dict: give the env with --env ENV_ID")
    check_env_id(env_id)
    calibration = calibrate(source, env_id, args.seed, calib)
    snn = build_converted(source, calibration.thetas, settings)
    out = args.output or default_output(source, args.source, settings, args.seed)
    source.config = converted_config(source, env_id, settings, args.seed)
    save_converted(out, snn, source, settings, calibration)
    zeros = ", ".join(
        f"h{i} {z}/{t.numel()}" for i, (z, t) in enumerate(zip(calibration.zero_units,
                                                                 calibration.thetas, strict=True))
    )  # fmt: skip
    print(
        f"calibrated {len(calibration.thetas)} layers on {calib.steps} {env_id} steps "
        f"({calib.statistic}) in {calibration.seconds:.1f} s; zero thresholds: {zeros}"
    )
    if args.episodes:
        rows = []
        for label, policy in (("ANN", source), (f"SNN {settings.neuron}", snn)):
            result = evaluate_policy(
                policy, env_id, args.seed, args.episodes, normalizer_state=source.normalizer
            )
            rows.append([label, result.returns.mean(), result.returns.std()])
        print(format_table(["policy", "return mean", "return std"], rows))
    print(f"converted policy: {out}  (spikerl evaluate {out}; spikerl energy {out})")
    return 0


def _list_of(kind, name: str):
    def parse(text: str):
        try:
            return tuple(kind(x) for x in text.split(",") if x)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name}: {text!r} is not a comma-separated list"
            ) from None

    return parse


def add_convert_sweep_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert-sweep",
        help="conversion grid: neuron x T x CRPI alpha x seeds on one or more source actors",
        allow_abbrev=False,
    )
    p.add_argument(
        "sources",
        nargs="+",
        help="TD3/SAC run folders, checkpoints or shipped actors: " + ", ".join(shipped_actors()),
    )
    p.add_argument(
        "--neurons", type=_list_of(str, "--neurons"), default=("if", "snm", "mt", "dc", "dc-mt")
    )
    p.add_argument("--timesteps", type=_list_of(int, "--timesteps"), default=(4, 8, 16, 32))
    p.add_argument("--crpi", type=_list_of(float, "--crpi"), default=(0.0, 0.5, 1.0))
    p.add_argument("--seeds", type=_list_of(int, "--seeds"), default=(0, 1, 2))
    p.add_argument("--episodes", type=positive_int, default=10, help="episodes per seed")
    p.add_argument("--calibration-steps", type=positive_int, default=10_000)
    p.add_argument("--statistic", choices=("max", "percentile"), default="max")
    p.add_argument("--percentile", type=float, default=99.9)
    p.add_argument("--levels", type=positive_int, default=8, help="MT levels per unit")
    p.add_argument("-o", "--output", type=Path, default=Path("runs/conversion_grid"))


def _cell(value) -> str:
    if isinstance(value, tuple):
        return f"{value[0]:,.1f} ± {value[1]:,.1f}"
    if isinstance(value, float):
        return "-" if value != value else f"{value:.2f}"
    return str(value)


def format_summary(rows: list[dict]) -> str:
    """The grid summary as a text table (one row per source, neuron and T)."""
    if not rows:
        return "(no results yet)"
    keys = list(dict.fromkeys(k for r in rows for k in r))
    order = ("source", "neuron", "timesteps", "ann", "a", "ratio_", "recovered_", "energy_nj",
             "ann_energy_nj")  # fmt: skip

    def group(key: str) -> int:
        exact = [i for i, g in enumerate(order) if key == g]
        prefix = [i for i, g in enumerate(order) if key.startswith(g)]
        return (exact or prefix[-1:] or [len(order)])[0]

    headers = sorted(keys, key=group)
    body = [[_cell(r.get(h, float("nan"))) for h in headers] for r in rows]
    for r, line in zip(rows, body, strict=True):
        line[0] = Path(r["source"]).name if "/" in r["source"] else r["source"]
    return format_table(headers, body)


def cmd_convert_sweep(args: argparse.Namespace) -> int:
    from ..convert.grid import GridSpec, plot_grid, read_results, run_grid, summarize

    spec = GridSpec(
        args.neurons, args.timesteps, args.crpi, args.seeds, args.episodes,
        CalibrationSettings(args.calibration_steps, args.statistic, args.percentile), args.levels,
    )  # fmt: skip
    sources = []
    for name in args.sources:
        source = read_source(name)
        if source.env_id is None:
            raise ConversionError(f"{name}: a state_dict has no env; convert-sweep takes runs")
        sources.append(source)
    total = len(sources) * len(spec.seeds) * len(spec.settings())
    print(f"conversion grid: {total} settings ({len(sources)} sources x {len(spec.seeds)} seeds "
          f"x {len(spec.settings())}), {spec.episodes} episodes each -> {args.output}")  # fmt: skip
    path = run_grid(sources, spec, args.output, progress=print)
    summary = summarize(read_results(path))
    table = format_summary(summary)
    (args.output / "summary.txt").write_text(table + "\n", encoding="utf-8")
    plot = plot_grid(summary, args.output / "grid.png")
    print(table)
    print(f"results: {path}; summary: {args.output / 'summary.txt'}; plot: {plot}")
    return 0


def add_analyze_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze-conversion",
        help="error amplification of a converted policy: kappa, autocorrelation, noise, shift",
        allow_abbrev=False,
    )
    p.add_argument("source", help="TD3/SAC run folder, checkpoint or shipped actor name")
    p.add_argument("--neuron", choices=CONVERSION_MODELS, default="if")
    p.add_argument("--timesteps", type=positive_int, default=8)
    p.add_argument("--crpi", type=_list_of(float, "--crpi"), default=(0.0, 1.0),
                   help="CRPI alphas to compare, comma-separated")  # fmt: skip
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--episodes", type=positive_int, default=10)
    p.add_argument("--calibration-steps", type=positive_int, default=10_000)
    p.add_argument("--levels", type=positive_int, default=8)
    p.add_argument("-o", "--output", type=Path, default=Path("runs/conversion_analysis"))


ANALYSIS_COLUMNS = (
    "return_ann", "return_snn", "E_A", "E_S", "kappa", "rho1_A", "rho1_S", "rho1_centred_S",
    "bias_A", "bias_S", "d_mean_200", "mmd2", "mmd2_floor",
)  # fmt: skip


def cmd_analyze(args: argparse.Namespace) -> int:
    import csv

    from ..convert.analysis import analyze, plot_analysis

    source = read_source(args.source)
    if source.env_id is None:
        raise ConversionError(f"{args.source}: analyze-conversion takes a spikerl run")
    calib = CalibrationSettings(args.calibration_steps)
    calibration = calibrate(source, source.env_id, args.seed, calib)
    analyses = []
    for alpha in args.crpi:
        settings = ConversionSettings(args.neuron, args.timesteps, alpha, args.levels)
        snn = build_converted(source, calibration.thetas, settings)
        label = f"{args.neuron} T{args.timesteps} a{alpha:g}"
        print(f"analysing {label} on {args.episodes} {source.env_id} episodes ...")
        analyses.append(analyze(source, snn, args.seed, args.episodes, label))
    args.output.mkdir(parents=True, exist_ok=True)
    rows = [
        {"setting": a.label, "env": source.env_id, "seed": args.seed, **a.row} for a in analyses
    ]
    with open(args.output / "analysis.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    noise = [{"setting": a.label, **n} for a in analyses for n in a.noise]
    with open(args.output / "noise.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(noise[0]))
        writer.writeheader()
        writer.writerows(noise)
    title = (
        f"{Path(source.origin).name}: {source.env_id}, seed {args.seed}, {args.episodes} episodes"
    )
    plot = plot_analysis(analyses, args.output / "analysis.png", title)
    table = [[a.label, *(a.row[c] for c in ANALYSIS_COLUMNS)] for a in analyses]
    print(format_table(["setting", *ANALYSIS_COLUMNS], table))
    print(f"tables: {args.output / 'analysis.csv'}, {args.output / 'noise.csv'}; plot: {plot}")
    return 0
