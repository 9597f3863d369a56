"""spikerl against the official Proxy-Target code (arXiv 2505.24161): equal learning.

``official_proxy_target.py`` times both codes; this script trains both on a short seeded run
and compares their evaluation curves, so that a speed ratio is read at equal learning.

**What runs.** For one variant (``--variant``: ``proxy``, the proxy target with K = 3, or
``vanilla``, a Polyak-averaged SNN target) and each seed of ``--seeds``:

* the official code: its ``main.py``, unmodified, from ``--official`` (a checkout of
  ``github.com/xuzijie32/Proxy-Target``; nothing of it is copied here), as
  ``main.py --env ENV --seed S --spiking_neurons LIF --proxy Yes|No --start_timesteps N
  --max_trainsteps M --eval_freq E``. It evaluates 10 deterministic episodes before training
  and every E env steps (random ones included) and saves the returns to
  ``results/LIF_<env>_<seed>.npy`` under its working folder;
* spikerl: ``spikerl train --config <paper preset> --seeds ...`` with
  ``algo.learning_starts = N``, ``run.total_steps = N + M``, ``run.eval_every = E`` and
  ``run.eval_episodes = 10``, so both evaluate at the same env steps.

The presets are ``configs/proxy_target/<env>_lif_{proxy,polyak}.yaml`` (LIF, T = 5, populations
of 10, hidden 256-256, batch 256, policy delay 2; the paper's settings, as the official code's
defaults). The two codes draw from different random streams, so a seed does not give the same
trajectory in both: equal learning means equal curves up to the spread over seeds.

The official seeds run one after the other in one process slot and spikerl's seeds together in
one process (batched, :mod:`spikerl.experiments.seeds_run`) in a second slot, at the same time;
each with ``--threads`` torch/OMP/MKL threads (on 2 cores, ``--threads 1`` gives each code a
core). The run is resumable: an official seed whose results file holds every evaluation is not
run again, and spikerl's run folders are resumed or left alone when finished. ``--collect``
runs nothing and reads what is there.

**Output.** The runs live in ``--out``/``<env>-<variant>/`` (``official/``, ``spikerl/``, a
log and the settings they were started with; other settings there are refused, not mixed in).
Printed, and in JSON with ``--json``: per seed and code the evaluation curve, and per code the
mean and standard deviation over seeds at every evaluation, of the final return and of the mean
of the last three evaluations; a figure with ``--plot``. ``--learning-starts`` is at least the
batch (spikerl's first update; the official code would update from its first step) and
``--eval-every`` divides the run's length (the official code evaluates only at its multiples).

Usage::

    python benchmarks/official_learning.py --official /tmp/official_pt \\
        --out runs/official_learning --seeds 0 1 2 \\
        --json docs/official_proxy_target/learning-proxy.json \\
        --plot docs/figures/official_learning_proxy.png
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _bench import (
    ROOT,
    add_official_code_args,
    checked_official_checkout,
    non_negative_int,
    paper_preset,
    positive_int,
    quiet_warnings,
    write_results,
)

from spikerl.experiments.config import load_config
from spikerl.experiments.run_records import read_curve
from spikerl.experiments.status import read_status

#: variant (:data:`_bench.PAPER_TARGETS`) -> the official main.py's --proxy
VARIANTS = {"proxy": "Yes", "vanilla": "No"}
#: The official eval_policy's episodes; spikerl evaluates as many.
EVAL_EPISODES = 10
#: Evaluations at the end of each curve averaged for the "last" column.
LAST_EVALS = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="spikerl vs the official Proxy-Target code: learning.")
    add_official_code_args(p)
    p.add_argument("--variant", choices=list(VARIANTS), default="proxy")
    p.add_argument("--env", default="HalfCheetah-v4", help="Gymnasium env id with a preset")
    p.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    p.add_argument("--learning-starts", type=positive_int, default=5000)
    p.add_argument("--train-steps", type=positive_int, default=15000, help="env steps after them")
    p.add_argument("--eval-every", type=positive_int, default=2500)
    p.add_argument("--threads", type=positive_int, default=1, help="threads of each code")
    p.add_argument("--out", type=Path, default=Path("runs/official_learning"), metavar="DIR")
    p.add_argument("--collect", action="store_true", help="run nothing; read what --out holds")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    args = p.parse_args(argv)
    args.official = checked_official_checkout(p, args.official, "main.py")
    if len(set(args.seeds)) != len(args.seeds):
        p.error("--seeds: a seed is named twice")
    args.preset = paper_preset(args.env, args.variant)
    if not args.preset.is_file():
        p.error(f"--env {args.env}: no preset {args.preset.relative_to(ROOT)}")
    return args


def eval_steps(args: argparse.Namespace) -> list[int]:
    """The env steps both codes evaluate at: 0, then every ``--eval-every`` to the end."""
    total = args.learning_starts + args.train_steps
    return [0, *range(args.eval_every, total + 1, args.eval_every)]


def work_dir(args: argparse.Namespace) -> Path:
    """This env's and variant's folder under ``--out``: ``official/`` (the official runs' working
    folder), ``spikerl/`` (spikerl's run folders), ``spikerl.log`` and ``settings.json``."""
    return args.out / f"{args.env}-{args.variant}"


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the runs in :func:`work_dir` were started with; another value is another run."""
    keys = ("env", "variant", "seeds", "learning_starts", "train_steps", "eval_every", "threads")
    return {k: getattr(args, k) for k in keys}


def claim_work_dir(args: argparse.Namespace) -> None:
    """Record :func:`run_settings` in a new work folder, or check them against the recorded
    ones (one clear error naming what differs: the runs there would be reused)."""
    path = work_dir(args) / "settings.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        diff = {k: (stored.get(k), v) for k, v in run_settings(args).items() if stored.get(k) != v}
        if diff:
            shown = ", ".join(f"{k}: {old} there, {new} now" for k, (old, new) in diff.items())
            raise SystemExit(f"{work_dir(args)} holds runs of other settings ({shown}); "
                             "use another --out")  # fmt: skip
        return
    if args.collect:
        raise SystemExit(f"--collect: {work_dir(args)} holds no runs")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run_settings(args), indent=2) + "\n")


def run_to_end(cmd: list[str], log_path: Path, **popen: Any) -> int:
    """``cmd``'s exit status, its output appended to ``log_path``. On Ctrl-C the child, which
    gets the same SIGINT, is waited for (spikerl checkpoints before it stops)."""
    with log_path.open("a") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **popen)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.wait()
            raise


# --- the official code ------------------------------------------------------------------------


def official_results(args: argparse.Namespace, seed: int) -> Path:
    return work_dir(args) / "official" / "results" / f"LIF_{args.env}_{seed}.npy"


def official_curve(args: argparse.Namespace, seed: int) -> list[float]:
    """The returns the official run of ``seed`` saved so far (none, or a file a killed run left
    half written: [])."""
    try:
        return [float(r) for r in np.load(official_results(args, seed))]
    except (OSError, ValueError, EOFError):
        return []


def official_command(args: argparse.Namespace, seed: int) -> list[str]:
    return [
        args.python, str(args.official / "main.py"),
        "--env", args.env, "--seed", str(seed), "--spiking_neurons", "LIF",
        "--proxy", VARIANTS[args.variant],
        "--start_timesteps", str(args.learning_starts),
        "--max_trainsteps", str(args.train_steps), "--eval_freq", str(args.eval_every),
    ]  # fmt: skip


def run_official(args: argparse.Namespace, env: dict[str, str]) -> dict[int, float]:
    """Each seed's ``main.py`` in turn (skipping finished ones); wall seconds per seed run."""
    folder = work_dir(args) / "official"
    folder.mkdir(parents=True, exist_ok=True)
    walls = {}
    for seed in args.seeds:
        if len(official_curve(args, seed)) == len(eval_steps(args)):
            continue
        start = time.perf_counter()
        log = folder / f"log_s{seed}.txt"
        if run_to_end(official_command(args, seed), log, cwd=folder, env=env) != 0:
            raise RuntimeError(f"official seed {seed} failed; see {log}")
        walls[seed] = time.perf_counter() - start
    return walls


# --- spikerl ----------------------------------------------------------------------------------


def spikerl_runs(args: argparse.Namespace) -> list[Path]:
    return [work_dir(args) / "spikerl" / f"lif-{args.variant}-s{seed}" for seed in args.seeds]


def spikerl_overrides(args: argparse.Namespace) -> list[str]:
    return [
        f"env.id={args.env}",
        f"algo.learning_starts={args.learning_starts}",
        f"run.total_steps={args.learning_starts + args.train_steps}",
        f"run.eval_every={args.eval_every}",
        f"run.eval_episodes={EVAL_EPISODES}",
        f"run.threads={args.threads}",
        f"run.name=lif-{args.variant}",
    ]


def spikerl_command(args: argparse.Namespace) -> list[str] | None:
    """The ``spikerl train`` command still to run: a fresh start, a resume, or None (finished)."""
    cli = [sys.executable, "-c", "import sys; from spikerl.cli import main; sys.exit(main())"]
    runs = spikerl_runs(args)
    if not any(r.exists() for r in runs):
        seeds = ",".join(str(s) for s in args.seeds)
        sets = [a for o in spikerl_overrides(args) for a in ("--set", o)]
        folder = str(work_dir(args) / "spikerl")
        return [*cli, "train", "--config", str(args.preset), "--seeds", seeds, *sets,
                "--runs-dir", folder]  # fmt: skip
    states = [(read_status(r) or {}).get("state") for r in runs]
    if all(s == "finished" for s in states):
        return None
    return [*cli, "train", "--resume", *map(str, runs)]


def run_spikerl(args: argparse.Namespace, env: dict[str, str]) -> float | None:
    """spikerl's seeds in one process; its wall seconds (None: all were finished)."""
    cmd = spikerl_command(args)
    if cmd is None:
        return None
    start = time.perf_counter()
    log = work_dir(args) / "spikerl.log"
    if run_to_end(cmd, log, env=env) != 0:
        print(f"spikerl failed, see {log}; the official seeds go on (Ctrl-C stops them)",
              file=sys.stderr, flush=True)  # fmt: skip
        raise RuntimeError(f"spikerl failed; see {log}")
    return time.perf_counter() - start


def spikerl_curve(args: argparse.Namespace, run_dir: Path) -> list[float]:
    """The returns of ``run_dir``'s evaluations so far, checked to be at :func:`eval_steps`."""
    steps, returns = read_curve(run_dir / "metrics.csv")
    if list(steps) != eval_steps(args)[: len(steps)]:
        raise SystemExit(f"{run_dir}: evaluated at other steps than every {args.eval_every}")
    return list(returns)


# --- both -------------------------------------------------------------------------------------


def thread_env(threads: int) -> dict[str, str]:
    """Both codes' environment: ``threads`` OMP/MKL threads, on the CPU (the official code
    would take a GPU where one is visible, spikerl's presets run on the CPU)."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    env.update({"PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""})
    return env


def run_both(args: argparse.Namespace) -> dict[str, Any]:
    """The official seeds and spikerl's side by side; wall seconds of what ran."""
    env = thread_env(args.threads)
    walls: dict[str, Any] = {}
    errors: list[BaseException] = []

    def official() -> None:
        try:
            walls["official_per_seed"] = run_official(args, env)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)

    worker = threading.Thread(target=official)
    worker.start()
    try:
        walls["spikerl_all_seeds"] = run_spikerl(args, env)
    finally:
        worker.join()
    if errors:
        raise errors[0]
    return walls


def summary(curves: dict[int, list[float]]) -> dict[str, Any]:
    """Mean and std over seeds at every evaluation, and of the final and last-three returns."""
    table = np.array(list(curves.values()))  # [seeds, evals]
    last = table[:, -LAST_EVALS:].mean(axis=1)
    return {
        "mean": table.mean(axis=0).tolist(),
        "std": table.std(axis=0).tolist(),
        "final": {"mean": float(table[:, -1].mean()), "std": float(table[:, -1].std())},
        "last3": {"mean": float(last.mean()), "std": float(last.std())},
    }


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Both codes' curves; a seed whose curve is not complete is a clear error."""
    want = len(eval_steps(args))
    runs = dict(zip(args.seeds, spikerl_runs(args), strict=True))
    curves: dict[str, dict[int, list[float]]] = {
        "official": {s: official_curve(args, s) for s in args.seeds},
        "spikerl": {s: spikerl_curve(args, r) for s, r in runs.items()},
    }
    for code, per_seed in curves.items():
        short = {s: len(c) for s, c in per_seed.items() if len(c) != want}
        if short:
            raise SystemExit(f"{code}: seeds with not {want} evaluations (seed: count): {short}")
    return {
        "steps": eval_steps(args),
        "curves": {c: {str(s): v for s, v in ps.items()} for c, ps in curves.items()},
        "summary": {c: summary(ps) for c, ps in curves.items()},
    }


def plot(results: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array(results["steps"]) / 1000
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for code, color in (("official", "tab:gray"), ("spikerl", "tab:blue")):
        s = results["summary"][code]
        mean, std = np.array(s["mean"]), np.array(s["std"])
        for curve in results["curves"][code].values():
            ax.plot(steps, curve, color=color, lw=0.7, alpha=0.45)
        label = f"{code} (mean +- std, {len(results['curves'][code])} seeds)"
        ax.plot(steps, mean, color=color, lw=2, label=label)
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.18, lw=0)
    ax.axvline(args.learning_starts / 1000, color="k", lw=0.6, ls=":")
    low = ax.get_ylim()[0]
    ax.text(args.learning_starts / 1000, low, " updates start", va="bottom", fontsize=8)
    ax.set_xlabel("env steps (thousands)")
    ax.set_ylabel(f"evaluation return ({EVAL_EPISODES} episodes)")
    what = "proxy target, K = 3" if args.variant == "proxy" else "Polyak SNN target"
    ax.set_title(f"LIF TD3 ({what}) on {args.env}: official code vs spikerl", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    print(f"wrote {path}")


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'code':<9} {'final (mean +- std)':>22} {'last 3 evals (mean +- std)':>28}")
    for code, s in results["summary"].items():
        final = f"{s['final']['mean']:.1f} +- {s['final']['std']:.1f}"
        last = f"{s['last3']['mean']:.1f} +- {s['last3']['std']:.1f}"
        print(f"{code:<9} {final:>22} {last:>28}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_warnings()
    cfg = load_config(args.preset, spikerl_overrides(args))  # a bad setting stops before any run
    if args.learning_starts < cfg.algo.batch_size:  # the official code would update at once
        batch = cfg.algo.batch_size
        raise SystemExit(f"--learning-starts {args.learning_starts}: at least the batch size "
                         f"({batch}), where spikerl's first update comes")  # fmt: skip
    if (args.learning_starts + args.train_steps) % args.eval_every:
        raise SystemExit("--eval-every: the official code evaluates only at its multiples; "
                         "make it divide --learning-starts + --train-steps")  # fmt: skip
    claim_work_dir(args)
    existing = [r.exists() for r in spikerl_runs(args)]
    if any(existing) and not all(existing):
        raise SystemExit(f"{work_dir(args) / 'spikerl'} lacks some seeds' runs; use another --out")
    try:
        walls = {} if args.collect else run_both(args)
    except KeyboardInterrupt:
        print("interrupted; the same command goes on from what is there", file=sys.stderr)
        return 130
    except RuntimeError as err:  # a run failed: its log is named
        raise SystemExit(f"official_learning.py: {err}") from None
    results = {**collect(args), "wall_seconds": walls}
    results["official_command"] = " ".join(official_command(args, args.seeds[0])[1:])
    print_table(results)
    if args.plot is not None:
        plot(results, args, args.plot)
    write_results(args, "official_learning", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
