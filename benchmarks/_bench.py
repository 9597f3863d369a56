"""Shared pieces of the benchmark scripts: flags, timers, environment facts.

The bare training loop (:class:`~spikerl.bench.train_loop.TrainLoop`: the loop of
:mod:`spikerl.experiments.run` without evaluation, checkpoints, metrics or the progress bar)
and the raw env step rate come from :mod:`spikerl.bench`, which ``spikerl bench`` also runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from spikerl.bench.machine import machine_info as environment_info
from spikerl.bench.train_loop import TrainLoop, raw_env_steps_per_sec, timed_steps_per_sec
from spikerl.experiments.argtypes import non_negative_int, positive_int

__all__ = [
    "PAPER_TARGETS",
    "ROOT",
    "TrainLoop",
    "add_official_code_args",
    "add_training_window_args",
    "checked_official_checkout",
    "paper_preset",
    "environment_info",
    "in_turn",
    "non_negative_int",
    "percentile_us",
    "positive_int",
    "quiet_warnings",
    "raw_env_steps_per_sec",
    "timed_steps_per_sec",
    "write_json",
    "write_results",
]


#: Help of the flags that :func:`add_training_window_args` adds, by flag.
_WINDOW_HELP = {
    "--learning-starts": "uniform-random env steps before updates (untimed)",
    "--warmup": "training iterations after learning starts, untimed",
    "--window": "timed training iterations per window",
    "--repeats": "round-robin windows of each setting; the median is reported",
    "--seed": "seed of env, networks and buffer",
}


def add_training_window_args(
    parser: argparse.ArgumentParser, *, warmup_default: int, window_default: int
) -> None:
    """The flags shared by the training benchmarks; the env and thread flags are their own.

    ``--learning-starts`` uniform-random env steps and ``--warmup`` training iterations run
    untimed, then ``--repeats`` round-robin windows of ``--window`` timed iterations each;
    ``--seed`` seeds env, networks and buffer, and ``--json PATH`` also writes the results.
    """
    for flag, kind, default in (
        ("--learning-starts", positive_int, 1000),
        ("--warmup", non_negative_int, warmup_default),
        ("--window", positive_int, window_default),
        ("--repeats", positive_int, 1),
        ("--seed", non_negative_int, 0),
    ):
        parser.add_argument(flag, type=kind, default=default, help=_WINDOW_HELP[flag])
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")


def add_official_code_args(parser: argparse.ArgumentParser) -> None:
    """``--official PATH`` (a checkout of the official Proxy-Target code, outside this
    repository) and ``--python`` (the interpreter that runs it)."""
    parser.add_argument(
        "--official", type=Path, required=True, metavar="PATH",
        help="checkout of the official code (github.com/xuzijie32/Proxy-Target)",
    )  # fmt: skip
    parser.add_argument(
        "--python", default=sys.executable, metavar="PATH",
        help="interpreter for the official code (default: this one)",
    )  # fmt: skip


ROOT = Path(__file__).resolve().parent.parent
#: The official code's two learners by spikerl's target: ``PT_TD3`` (proxy) and ``TD3``
#: (vanilla, a Polyak-averaged SNN target).
PAPER_TARGETS = {"proxy": "proxy", "vanilla": "polyak"}


def paper_preset(env_id: str, variant: str) -> Path:
    """The LIF paper preset of ``env_id`` for an official-code ``variant`` of
    :data:`PAPER_TARGETS`: ``HalfCheetah-v4``, ``proxy`` ->
    ``configs/proxy_target/halfcheetah_lif_proxy.yaml`` (it may not exist for every env)."""
    name = env_id.split("-v")[0].lower()
    name = {"inverteddoublependulum": "idp"}.get(name, name)
    return ROOT / "configs" / "proxy_target" / f"{name}_lif_{PAPER_TARGETS[variant]}.yaml"


def checked_official_checkout(parser: argparse.ArgumentParser, official: Path, needs: str) -> Path:
    """``--official`` resolved, or one parser error if the file ``needs`` is not there."""
    official = official.resolve()
    if not (official / needs).is_file():
        parser.error(f"--official {official}: no {needs} there")
    return official


def in_turn(options: Any, repeat: int) -> list[Any]:
    """The A/B settings in the order of window ``repeat``: as given on even repeats, reversed
    on odd ones (ABBA...), so that no setting always runs first after the other."""
    options = list(options)
    return options if repeat % 2 == 0 else options[::-1]


def percentile_us(samples_ns: list[int], q: float) -> float:
    """The ``q``-th percentile of nanosecond samples, in microseconds."""
    return float(np.percentile(np.asarray(samples_ns, dtype=np.float64), q)) / 1e3


def quiet_warnings() -> None:
    """Hide Gymnasium's deprecation (v4 envs) and dtype warnings, which clutter the tables."""
    warnings.filterwarnings("ignore", module=r"gymnasium(\..*)?")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def write_results(args: argparse.Namespace, benchmark: str, results: dict[str, Any]) -> None:
    """With ``--json PATH``: write the settings, :func:`environment_info` and ``results``."""
    if args.json is None:
        return
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    environment = environment_info()
    if getattr(args, "threads", None):  # the threads the measurement ran at, not the default
        environment["torch_threads"] = args.threads
    payload = {"benchmark": benchmark, "settings": settings, "environment": environment}
    write_json(args.json, {**payload, **results})
    print(f"wrote {args.json}")
