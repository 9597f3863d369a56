"""Ship a trained TD3/SAC ANN actor as a built-in conversion source (``spikerl convert NAME``).

Copies a run's ``best.pt`` (the config, env step, return and the actor's weights only; no
critics or buffers) and ``config.yaml`` to ``spikerl/actors/NAME/``, evaluates the actor over
``--episodes`` deterministic episodes of the run seed's evaluation stream and writes
``README.md`` with its numbers and the commands that trained and shipped it.

    .venv/bin/python scripts/ship_conversion_actor.py runs/td3-ann-HalfCheetah-v4-s0 \\
        td3-halfcheetah-v4 --train-command "spikerl train --config ..."
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from spikerl.experiments.checkpoint import load_checkpoint
from spikerl.experiments.evaluation import evaluate_policy
from spikerl.experiments.policy import load_policy

ACTORS = Path(__file__).resolve().parents[1] / "spikerl" / "actors"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", type=Path, help="the actor's run folder")
    p.add_argument("name", help="shipped name, e.g. td3-halfcheetah-v4")
    p.add_argument("--checkpoint", default="best.pt", help="checkpoint inside the run folder")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--train-command", required=True, help="the command that trained it")
    args = p.parse_args()
    path = args.run / args.checkpoint
    actor, cfg, normalizer = load_policy(path)
    if normalizer is not None:
        raise SystemExit("a shipped actor must not use observation normalisation")
    state = load_checkpoint(path)
    result = evaluate_policy(actor, cfg.env.id, cfg.run.seed, args.episodes)
    out = ACTORS / args.name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, out / "actor.pt")
    shutil.copy(args.run / "config.yaml", out / "config.yaml")
    params = sum(int(np.prod(v.shape)) for v in state["learner"]["actor"].values())
    size = (out / "actor.pt").stat().st_size
    (out / "README.md").write_text(
        f"""# Built-in conversion source `{args.name}`

A {cfg.algo.name.upper()} ANN actor on {cfg.env.id}, hidden {list(cfg.actor.hidden)}, {params:,}
parameters ({size / 1024:.0f} KiB), trained by spikerl:

    {args.train_command}

(checkpoint `{args.checkpoint}` of that run: env step {state["progress"]["step"]:,}, training-time
evaluation return {state.get("eval_return", float("nan")):.1f}). Re-evaluated over {args.episodes}
deterministic episodes from the run seed's evaluation stream: return
**{result.returns.mean():.1f} +- {result.returns.std():.1f}**, episode length
{result.lengths.mean():.0f}. Shipped with

    .venv/bin/python scripts/ship_conversion_actor.py <run> {args.name} --train-command "..."

Convert it with `spikerl convert {args.name} --neuron if --timesteps 32 --crpi 0.5`.
"""
    )
    print((out / "README.md").read_text())


if __name__ == "__main__":
    main()
