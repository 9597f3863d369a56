"""``spikerl energy RUN``: MACs, SOPs, firing rates and energy estimates per decision of a run.

The run's deployed actor is counted over the evaluation protocol's deterministic rollouts
(:func:`measure_policy`) and compared with a baseline: another run measured
the same way (``--baseline``), or the analytic 256-256 ANN actor with the same dims.
``RUN`` may also be an exported policy (``.npz`` or ``.nir`` from ``spikerl export``): it is
rebuilt as a torch network (:func:`~spikerl.export.rebuild.load_exported_network`, the same
counters), flown on the env it was trained on with its normaliser, and the report adds the
bytes of its weights and state as the C export lays them out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
from torch import nn

from ..atomic import write_output
from ..errors import UsageError
from ..snn.energy import (
    PRESETS,
    EnergyPreset,
    EnergyReport,
    OpCounter,
    analytic_ann_report,
    get_preset,
)
from .config import ConfigError
from .evaluation import evaluate_policy
from .outputs import check_output_file
from .policy import load_policy
from .provenance import env_version
from .run import CHECKPOINT_NAME, RunError

__all__ = ["add_energy_parser", "cmd_energy", "measure_policy"]


def measure_policy(
    actor: nn.Module, env_id: str, seed: int, episodes: int = 10, **eval_kwargs: Any
) -> EnergyReport:
    """Count ``actor`` over the evaluation protocol's deterministic rollouts (batch 1 each).

    Every env step is one decision; the report holds mean +- std over all of them.
    ``eval_kwargs`` (``normalizer_state``, ``device``) go to
    :func:`~spikerl.experiments.evaluation.evaluate_policy`.
    """
    with OpCounter(actor) as counter:
        result = evaluate_policy(actor, env_id, seed, episodes, **eval_kwargs)
    return counter.report(
        env_id=env_id,
        env_version=gym.spec(env_id).version,
        episodes=episodes,
        seed=seed,
        return_mean=float(result.returns.mean()),
    )


def add_energy_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``spikerl energy`` on the CLI's subparsers."""
    p = subparsers.add_parser("energy", help="count MACs/SOPs and estimate energy per decision")
    p.add_argument(
        "run", type=Path, help="run directory, checkpoint.pt inside one, or an exported .npz/.nir"
    )
    p.add_argument(
        "--preset", default="all", help=f"energy preset: {', '.join(PRESETS)} or all (default: all)"
    )
    p.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="episodes measured (default: the run's run.eval_episodes, the evaluation protocol)",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="RUN",
        help="run to compare with (default: analytic 256-256 ANN actor, same dims)",
    )
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    p.add_argument(
        "--csv", type=Path, default=None, metavar="PATH", help="also write CSV (key,value rows)"
    )


def _presets(name: str) -> tuple[EnergyPreset, ...]:
    if name == "all":
        return tuple(PRESETS.values())
    try:
        return (get_preset(name),)
    except KeyError:
        raise ConfigError(
            f"--preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)} or all"
        ) from None


def _measure_run(path: Path, episodes: int | None) -> EnergyReport:
    """The report of a run's checkpoint, labelled with the run name and checkpoint path.

    ``episodes`` None measures the run's own ``run.eval_episodes``.
    """
    if not path.exists():
        raise RunError(f"{path}: no such run directory or checkpoint")
    if path.suffix in EXPORTED_SUFFIXES:
        return _measure_exported(path, episodes)
    actor, cfg, normalizer = load_policy(path)
    episodes = cfg.run.eval_episodes if episodes is None else episodes
    report = measure_policy(actor, cfg.env.id, cfg.run.seed, episodes, normalizer_state=normalizer)
    checkpoint = path / CHECKPOINT_NAME if path.is_dir() else path
    return dataclasses.replace(
        report, label=cfg.run_name, meta={**report.meta, "checkpoint": str(checkpoint)}
    )


EXPORTED_SUFFIXES = (".npz", ".nir")


def _measure_exported(path: Path, episodes: int | None) -> EnergyReport:
    """The report of an exported policy, rebuilt in torch, on the env named in the file."""
    from ..export import ExportError, c_sources, load_exported_network
    from ..runtime import PolicyFileError

    try:
        actor, spec, arrays = load_exported_network(path)
    except (ExportError, PolicyFileError) as err:
        raise RunError(str(err)) from None
    source = spec.get("source") or {}
    if "env" not in source:
        raise RunError(f"{path}: the file names no env (exported without a run); nothing to fly")
    norm = spec.get("normalizer")
    normalizer = None
    if norm is not None:
        try:
            normalizer = {"mean": arrays[norm["mean"]], "var": arrays[norm["var"]], "count": 1.0}
        except (KeyError, TypeError):
            raise RunError(f"{path}: incomplete observation normaliser") from None
    try:  # the bytes the C export would take; measured before the rollouts
        _, _, sizes = c_sources(spec, arrays)
        sizes = {"weight_bytes": sizes["flash"], "state_bytes": sizes["ram"]}
    except ExportError:  # a part the C export lacks: the report goes without the byte line
        sizes = {}
    seed, episodes = int(source.get("seed", 0)), 10 if episodes is None else episodes
    report = measure_policy(actor, source["env"], seed, episodes, normalizer_state=normalizer)
    meta = {**report.meta, "checkpoint": str(path), **sizes}
    return dataclasses.replace(report, label=path.stem, meta=meta)


def cmd_energy(args: argparse.Namespace) -> int:
    """Measure ``args.run``, print the report with its baseline ratio, optionally save it."""
    presets = _presets(args.preset)
    if args.episodes is not None and args.episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {args.episodes}")
    for option, path in (("--json", args.json), ("--csv", args.csv)):
        if path is not None:
            check_output_file(path, option, reads=(args.run, args.baseline))
    if args.json is not None and args.csv is not None and args.json.resolve() == args.csv.resolve():
        raise UsageError(f"--json and --csv name one file, {args.json}; give each its own")
    report = _measure_run(args.run, args.episodes)
    if args.baseline is not None:  # measured over as many episodes as the run
        baseline = _measure_run(args.baseline, report.meta["episodes"])
        if baseline.meta["env_id"] != report.meta["env_id"]:
            raise ConfigError(
                f"--baseline {args.baseline} ran {baseline.meta['env_id']}, but "
                f"{args.run} ran {report.meta['env_id']}; compare on one env"
            )
    else:
        baseline = analytic_ann_report(report.meta["obs_dim"], report.meta["act_dim"])
    print(report.format(presets, baseline))
    if "weight_bytes" in report.meta:
        weights, state = report.meta["weight_bytes"], report.meta["state_bytes"]
        print(f"exported policy: {weights:,} bytes of weights and constants, {state:,} bytes "
              "of state (the C export's flash and RAM)")  # fmt: skip
    print(f"environment: {env_version(report.meta['env_id'])}")
    if args.json is not None:
        text = json.dumps(report.to_dict(presets, baseline), indent=2)
        write_output(args.json, lambda p: p.write_text(text + "\n"), RunError)
    if args.csv is not None:
        write_output(args.csv, lambda p: report.write_csv(p, presets, baseline), RunError)
    return 0
