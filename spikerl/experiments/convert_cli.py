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

All three commands check every value and output path before the calibration starts, and refuse
an option that the rest of the command line would ignore (``--max-action`` on a run,
``--levels`` without a multi-threshold neuron, ``--percentile`` without
``--statistic percentile``). A ``convert-sweep`` folder holds one grid: its settings are
recorded in ``grid.json``, a rerun with the same settings resumes it and other settings are
refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..convert import (
    CONVERTED_FORMAT,
    CalibrationSettings,
    ConversionSettings,
    build_converted,
    calibrate,
    read_source,
    save_converted,
)
from ..convert.source import ConversionError, SourcePolicy, shipped_actors
from ..envs import check_env_id
from ..errors import UsageError
from ..snn.conversion import CONVERSION_MODELS, MAX_LEVELS, MAX_TIMESTEPS, MT_LEVELS
from .argtypes import non_negative_int, positive_int, unit_interval
from .config import Config, config_from_dict
from .outputs import check_output_file, check_output_folder
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

#: the neuron models with multi-threshold levels (``ConversionNeuron.multi_threshold``)
MULTI_THRESHOLD = ("mt", "mt_signed", "dc-mt")
DEFAULT_PERCENTILE = CalibrationSettings.percentile
#: the settings of a ``convert-sweep`` folder's grid, written before its first row
GRID_RECORD = "grid.json"
LEVELS_HELP = (
    f"MT levels per unit, at most {MAX_LEVELS}; {', '.join(MULTI_THRESHOLD)} only (default "
    f"{MT_LEVELS})"
)
STATISTIC_HELP = (
    "threshold of a unit: its max activation or a percentile of its positive ones "
    "(default %(default)s)"
)
PERCENTILE_HELP = f"P in (0, 100] with --statistic percentile (default {DEFAULT_PERCENTILE:g})"
CALIBRATION_HELP = "ANN env steps that calibrate the thresholds (default %(default)s)"


def _add_neuron_options(p: argparse.ArgumentParser, timesteps: int) -> None:
    """``--neuron``, ``--timesteps`` and ``--levels`` of ``convert`` and ``analyze-conversion``."""
    p.add_argument(
        "--neuron", choices=CONVERSION_MODELS, default="if",
        help="neuron model (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--timesteps", type=positive_int, default=timesteps,
        help=f"T ticks per decision, at most {MAX_TIMESTEPS} (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--levels", type=positive_int, default=None, help=LEVELS_HELP)


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
    _add_neuron_options(p, timesteps=32)
    p.add_argument(
        "--crpi", type=unit_interval, default=0.0,
        help="CRPI alpha in [0, 1], 0: off (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "-o", "--output", type=Path, default=None,
        help="converted policy file, missing folders created; an earlier converted file there is "
        "replaced (default: RUN/converted/if-T32-a0-s0.pt for a run, named by neuron, T, alpha "
        "and seed; converted/NAME-if-T32-a0-s0.pt for a shipped actor NAME; "
        "FILE-if-T32-a0-s0.pt beside a state_dict FILE.pt)",
    )  # fmt: skip
    p.add_argument(
        "--env", default=None, help="env id (required for a plain state_dict; default: the run's)"
    )
    p.add_argument(
        "--max-action", type=float, default=None,
        help="action scale of a plain state_dict (default 1.0; a run's actor has its own)",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=non_negative_int, default=0,
        help="seed of the calibration and evaluation streams (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--calibration-steps", type=positive_int, default=10_000, help=CALIBRATION_HELP)
    p.add_argument("--statistic", choices=("max", "percentile"), default="max", help=STATISTIC_HELP)
    p.add_argument("--percentile", type=float, default=None, help=PERCENTILE_HELP)
    p.add_argument(
        "--episodes", type=non_negative_int, default=0,
        help="evaluate ANN and SNN on this many episodes (default %(default)s: skip)",
    )  # fmt: skip


def _levels(levels: int | None, neurons: Sequence[str]) -> int:
    """``--levels``, refused unless one of ``neurons`` has MT levels (their default if unset)."""
    if levels is None:
        return MT_LEVELS
    if not any(neuron in MULTI_THRESHOLD for neuron in neurons):
        raise UsageError(
            f"--levels applies to multi-threshold neurons ({', '.join(MULTI_THRESHOLD)}) only, "
            f"not to {', '.join(neurons)}; drop it"
        )
    return levels


def _calibration(steps: int, statistic: str, percentile: float | None) -> CalibrationSettings:
    """The calibration settings; ``--percentile`` is refused unless the statistic uses it."""
    if percentile is not None and statistic != "percentile":
        raise UsageError(
            f"--percentile applies with --statistic percentile only (the statistic is "
            f"{statistic}); drop it or add --statistic percentile"
        )
    return CalibrationSettings(
        steps, statistic, DEFAULT_PERCENTILE if percentile is None else percentile
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


def _convert_source(args: argparse.Namespace) -> tuple[SourcePolicy, str]:
    """The source policy and its env id; ``--max-action`` is taken for a plain state_dict only
    (a run's actor has its own scale)."""
    max_action = 1.0 if args.max_action is None else args.max_action
    if not 0.0 < max_action < math.inf:
        raise UsageError(f"--max-action {args.max_action}: give a positive action scale")
    source = read_source(args.source, max_action)
    if args.max_action is not None and source.config is not None:
        raise UsageError(
            f"--max-action applies to a plain state_dict only; {args.source} is a spikerl run "
            "whose actor has its own action scale: drop it"
        )
    env_id = args.env or source.env_id
    if env_id is None:
        raise ConversionError(f"{args.source} is a state_dict: give the env with --env ENV_ID")
    check_env_id(env_id)
    return source, env_id


def _is_converted(path: Path) -> bool:
    """Whether ``path`` holds a converted policy (memory-mapped: a large file is not read)."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a torch zip file, or one that weights_only refuses
        return False
    return isinstance(saved, dict) and saved.get("kind") == CONVERTED_FORMAT


def _convert_output(
    args: argparse.Namespace, source: SourcePolicy, settings: ConversionSettings
) -> Path:
    """``-o`` or the default path, checked before the calibration: a file path in a folder that
    exists or can be created, and not an existing file other than a converted policy."""
    default = default_output(source, args.source, settings, args.seed)
    out = args.output or default
    label = "-o" if args.output is not None else "default output"
    check_output_file(out, label, example=out / default.name)
    if out.exists() and not _is_converted(out):
        raise UsageError(
            f"{label} {out}: exists and is not a converted policy; give a new file path "
            "(convert replaces only a policy it wrote)"
        )
    return out


def cmd_convert(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_policy

    levels = _levels(args.levels, [args.neuron])
    settings = ConversionSettings(args.neuron, args.timesteps, args.crpi, levels)
    calib = _calibration(args.calibration_steps, args.statistic, args.percentile)
    source, env_id = _convert_source(args)
    out = _convert_output(args, source, settings)
    calibration = calibrate(source, env_id, args.seed, calib)
    snn = build_converted(source, calibration.thetas, settings)
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


def _neuron(text: str) -> str:
    if text not in CONVERSION_MODELS:
        raise argparse.ArgumentTypeError(
            f"unknown neuron {text!r}; choose from {', '.join(CONVERSION_MODELS)}"
        )
    return text


def _parse_list(text: str, option: str, value: Callable[[str], Any]) -> tuple[Any, ...]:
    """The comma-separated values of ``option``, each read by ``value`` (an argparse type); an
    empty list, a bad value or one named twice is a :class:`UsageError` naming the option."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError(f"{option} {text!r}: give at least one value (comma-separated)")
    try:
        values = tuple(value(item) for item in items)
    except argparse.ArgumentTypeError as err:
        raise UsageError(f"{option} {text}: {err}") from None
    for i, v in enumerate(values):
        if v in values[:i]:
            raise UsageError(f"{option} {text}: names {items[i]} twice")
    return values


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
        "--neurons", default="if,snm,mt,dc,dc-mt",
        help="neuron models, comma-separated (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--timesteps",
        default="4,8,16,32",
        help=f"T values, comma-separated, each at most {MAX_TIMESTEPS} (default %(default)s)",
    )
    p.add_argument(
        "--crpi", default="0,0.5,1",
        help="CRPI alphas in [0, 1], comma-separated (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--seeds",
        default="0,1,2",
        help="seeds, comma-separated: each calibrates and evaluates (default %(default)s)",
    )
    p.add_argument(
        "--episodes", type=positive_int, default=10,
        help="episodes per seed and setting (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--calibration-steps", type=positive_int, default=10_000, help=CALIBRATION_HELP)
    p.add_argument("--statistic", choices=("max", "percentile"), default="max", help=STATISTIC_HELP)
    p.add_argument("--percentile", type=float, default=None, help=PERCENTILE_HELP)
    p.add_argument("--levels", type=positive_int, default=None, help=LEVELS_HELP)
    p.add_argument(
        "-o", "--output", type=Path, default=Path("runs/conversion_grid"),
        help="grid folder (results.csv, grid.json, summary.txt, grid.png); the same settings "
        "resume a grid there, other settings are refused (default %(default)s)",
    )  # fmt: skip


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


#: ``grid.json`` keys and the options that set them (for the message that names a change)
GRID_OPTIONS = {
    "sources": "SOURCES", "neurons": "--neurons", "timesteps": "--timesteps", "crpi": "--crpi",
    "seeds": "--seeds", "episodes": "--episodes", "levels": "--levels",
    "calibration_steps": "--calibration-steps", "statistic": "--statistic",
    "percentile": "--percentile",
}  # fmt: skip
#: for a folder written before ``grid.json`` was: each setting's ``results.csv`` column and type
ROW_COLUMNS = {
    "sources": ("source", str), "neurons": ("neuron", str), "timesteps": ("timesteps", int),
    "crpi": ("crpi", float), "seeds": ("seed", int), "episodes": ("episodes", int),
    "levels": ("levels", int), "calibration_steps": ("calibration_steps", int),
    "statistic": ("statistic", str),
}  # fmt: skip
GRID_AXES = ("sources", "neurons", "timesteps", "crpi", "seeds")


def _grid_spec(args: argparse.Namespace):
    """The :class:`~spikerl.convert.grid.GridSpec` of the command line, every value checked."""
    from ..convert.grid import GridSpec

    neurons = _parse_list(args.neurons, "--neurons", _neuron)
    return GridSpec(
        neurons,
        _parse_list(args.timesteps, "--timesteps", positive_int),
        _parse_list(args.crpi, "--crpi", unit_interval),
        _parse_list(args.seeds, "--seeds", non_negative_int),
        args.episodes,
        _calibration(args.calibration_steps, args.statistic, args.percentile),
        _levels(args.levels, neurons),
    )


def _grid_sources(names: Sequence[str]) -> list[SourcePolicy]:
    """The grid's source actors (spikerl runs or shipped actors), each given once."""
    sources: list[SourcePolicy] = []
    for name in names:
        source = read_source(name)
        if source.env_id is None:
            raise ConversionError(f"{name}: a state_dict has no env; convert-sweep takes runs")
        if any(s.origin == source.origin for s in sources):
            raise UsageError(f"{name} is given twice")
        sources.append(source)
    return sources


def _grid_record(sources: Sequence[SourcePolicy], spec) -> dict[str, Any]:
    """What makes the rows of a grid folder one grid: its sources and every setting."""
    calib = spec.calibration
    return {
        "sources": [s.origin for s in sources], "neurons": list(spec.neurons),
        "timesteps": list(spec.timesteps), "crpi": list(spec.crpi), "seeds": list(spec.seeds),
        "episodes": spec.episodes, "levels": spec.levels, "calibration_steps": calib.steps,
        "statistic": calib.statistic,
        "percentile": calib.percentile if calib.statistic == "percentile" else None,
    }  # fmt: skip


def _recorded_grid(out: Path) -> dict[str, Any] | None:
    """The settings of the grid already in ``out`` (None: none yet, or one stopped before its
    first row, which may be replaced): its ``grid.json``, or :func:`_grid_of_rows` for a folder
    written before that file existed."""
    from ..convert.grid import read_results

    path = out / GRID_RECORD
    rows = read_results(out / "results.csv")
    if path.is_file() and rows:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UsageError(
                f"-o {out}: unreadable {GRID_RECORD} ({err}); give another -o"
            ) from None
        if not isinstance(record, dict):
            raise UsageError(f"-o {out}: {GRID_RECORD} is not a grid record; give another -o")
        return record
    if path.is_file():
        return None
    try:
        return _grid_of_rows(rows) if rows else None
    except (KeyError, TypeError, ValueError):
        raise UsageError(
            f"-o {out}: its results.csv is not a convert-sweep table; give another -o"
        ) from None


def _grid_of_rows(rows: list[dict[str, str]]) -> dict[str, Any]:
    """The settings that grid rows hold: per axis the values they cover (a killed grid covers
    part of its axes; neuron, T and alpha from the SNN rows), every other setting as one value
    (several where the rows mix them)."""
    record: dict[str, Any] = {"from_rows": True}
    for key, (column, kind) in ROW_COLUMNS.items():
        snn_only = key in ("neurons", "timesteps", "crpi")
        values = sorted({kind(r[column]) for r in rows if r["policy"] == "snn" or not snn_only})
        record[key] = values if key in GRID_AXES or len(values) != 1 else values[0]
    return record


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "unset" if value is None else str(value)


def _grid_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The settings of ``new`` that differ from the grid ``old``, as ``--episodes 1 (now 2)``;
    keys ``old`` lacks are not compared, axes are compared as sets (in any order), and those of
    :func:`_grid_of_rows` need only be covered by ``new``."""

    any_mt = bool((set(old["neurons"]) | set(new["neurons"])) & set(MULTI_THRESHOLD))

    def differs(key: str) -> bool:
        if key == "levels" and not any_mt:
            return False  # no multi-threshold neuron in either grid: levels play no part
        if key not in GRID_AXES:
            return _shown(old[key]) != _shown(new[key])
        had, now = {_shown(v) for v in old[key]}, {_shown(v) for v in new[key]}
        return not had <= now if old.get("from_rows") else had != now

    return [
        f"{GRID_OPTIONS[key]} {_shown(old[key])} (now {_shown(new[key])})"
        for key in GRID_OPTIONS
        if key in old and differs(key)
    ]


def _prepare_grid_folder(out: Path, record: dict[str, Any]) -> bool:
    """Check ``-o`` before the grid starts and record the grid's settings in it; returns
    whether a grid was there already. A folder that holds a grid of other settings is refused
    (its rows and summary would mix them); the same settings resume it (done rows are kept)."""
    check_output_folder(out, "-o")
    old = _recorded_grid(out)
    changes = _grid_changes(old, record) if old is not None else []
    if changes:
        raise UsageError(
            f"-o {out} holds a grid of other settings: {'; '.join(changes)}; give another -o, "
            "or repeat the grid's settings to resume it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / GRID_RECORD, json.dumps(record, indent=1) + "\n")
    except OSError as err:
        raise UsageError(f"-o {out}: cannot write {GRID_RECORD} ({err.strerror or err})") from None
    return old is not None


def cmd_convert_sweep(args: argparse.Namespace) -> int:
    from ..convert.grid import plot_grid, read_results, run_grid, summarize
    from .report_plots import matplotlib_or_error

    spec = _grid_spec(args)
    sources = _grid_sources(args.sources)
    matplotlib_or_error("conversion grid plots")
    resumed = _prepare_grid_folder(args.output, _grid_record(sources, spec))
    total = len(sources) * len(spec.seeds) * len(spec.settings())
    print(f"conversion grid: {total} settings ({len(sources)} sources x {len(spec.seeds)} seeds "
          f"x {len(spec.settings())}), {spec.episodes} episodes each -> {args.output}")  # fmt: skip
    if resumed:
        rows = len(read_results(args.output / "results.csv"))
        print(f"resuming the grid in {args.output}: {rows} rows done are kept")
    path = run_grid(sources, spec, args.output, progress=print)
    summary = summarize(read_results(path))
    table = format_summary(summary)
    write_text_atomic(args.output / "summary.txt", table + "\n")
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
    _add_neuron_options(p, timesteps=8)
    p.add_argument(
        "--crpi", default="0,1",
        help="CRPI alphas in [0, 1] to compare, comma-separated (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=non_negative_int, default=0,
        help="seed of the calibration, evaluation and noise streams (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--episodes", type=positive_int, default=10,
        help="episodes per rollout (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--calibration-steps", type=positive_int, default=10_000,
        help="ANN env steps that calibrate the thresholds, max statistic (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "-o", "--output", type=Path, default=Path("runs/conversion_analysis"),
        help="folder for analysis.csv, noise.csv and analysis.png, which replace those of an "
        "earlier analysis there (default %(default)s)",
    )  # fmt: skip


ANALYSIS_COLUMNS = (
    "return_ann", "return_snn", "E_A", "E_S", "kappa", "rho1_A", "rho1_S", "rho1_centred_S",
    "bias_A", "bias_S", "d_mean_200", "mmd2", "mmd2_floor",
)  # fmt: skip


def _analysis_settings(args: argparse.Namespace) -> list[ConversionSettings]:
    """One setting per ``--crpi`` alpha, every value checked before the analysis starts."""
    alphas = _parse_list(args.crpi, "--crpi", unit_interval)
    levels = _levels(args.levels, [args.neuron])
    return [ConversionSettings(args.neuron, args.timesteps, a, levels) for a in alphas]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..convert.analysis import analyze, plot_analysis
    from .report_plots import matplotlib_or_error

    settings = _analysis_settings(args)
    source = read_source(args.source)
    if source.env_id is None:
        raise ConversionError(f"{args.source}: analyze-conversion takes a spikerl run")
    check_output_folder(args.output, "-o")
    matplotlib_or_error("conversion analysis plots")
    calib = CalibrationSettings(args.calibration_steps)
    calibration = calibrate(source, source.env_id, args.seed, calib)
    analyses = []
    for setting in settings:
        snn = build_converted(source, calibration.thetas, setting)
        label = f"{args.neuron} T{args.timesteps} a{setting.crpi:g}"
        print(f"analysing {label} on {args.episodes} {source.env_id} episodes ...")
        analyses.append(analyze(source, snn, args.seed, args.episodes, label))
    args.output.mkdir(parents=True, exist_ok=True)
    rows = [
        {"setting": a.label, "env": source.env_id, "seed": args.seed, **a.row} for a in analyses
    ]
    _write_csv(args.output / "analysis.csv", rows)
    _write_csv(args.output / "noise.csv", [{"setting": a.label, **n} for a in analyses
                                           for n in a.noise])  # fmt: skip
    title = (
        f"{Path(source.origin).name}: {source.env_id}, seed {args.seed}, {args.episodes} episodes"
    )
    plot = plot_analysis(analyses, args.output / "analysis.png", title)
    table = [[a.label, *(a.row[c] for c in ANALYSIS_COLUMNS)] for a in analyses]
    print(format_table(["setting", *ANALYSIS_COLUMNS], table))
    print(f"tables: {args.output / 'analysis.csv'}, {args.output / 'noise.csv'}; plot: {plot}")
    return 0
