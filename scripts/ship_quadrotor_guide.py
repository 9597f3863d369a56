"""Ship a trained ANN actor as one of spikerl's built-in quadrotor guides
(``algo.sequence.guide: builtin-<name>``, ``spikerl.experiments.sequence_run.BUILTIN_GUIDES``).

Reads a run's ``best.pt`` (default) or another checkpoint (``--checkpoint
policies/step-<N>.pt`` for a policy kept with ``run.keep_policies``), evaluates the actor over
``--episodes`` deterministic episodes at the start (rho = 0) and the end (rho = 1) of the
reward curriculum, and writes ``spikerl/guides/quadrotor/<name>/``: ``guide.pt`` (the config and
the actor's weights only), ``config.yaml`` and ``README.md`` with the numbers and the commands
(``--select-command``: how the checkpoint was chosen). A shipped name is never overwritten:
runs name their guide, so its weights must not change under them.

    .venv/bin/python scripts/ship_quadrotor_guide.py runs/guide-1m-s0 --name v2 \\
        --checkpoint policies/step-000900000.pt \\
        --train-command "spikerl train --config configs/quadrotor/guide_td3.yaml"
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from spikerl.experiments.checkpoint import load_checkpoint, save_checkpoint
from spikerl.experiments.evaluation import evaluate_policy
from spikerl.experiments.policy import load_policy

GUIDES = Path(__file__).resolve().parents[1] / "spikerl" / "guides" / "quadrotor"


def _evaluate(actor, cfg, episodes: int, rho: float) -> dict[str, float]:
    result = evaluate_policy(actor, cfg.env.id, cfg.run.seed, episodes, curriculum=rho)
    return {
        "return": float(result.returns.mean()),
        "return_std": float(result.returns.std()),
        "length": float(result.lengths.mean()),
        "position_error": float(result.info["position_error"].mean()),
        "crash_rate": float(result.info["crashed"].mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", type=Path, help="the guide's run folder")
    p.add_argument("--checkpoint", default="best.pt", help="checkpoint inside the run folder")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--train-command", required=True, help="the command that trained it")
    p.add_argument("--name", required=True, help="the guide's version folder, e.g. v2")
    p.add_argument("--select-command", default="", help="how the checkpoint was chosen")
    args = p.parse_args()
    out = GUIDES / args.name
    if out.exists():
        raise SystemExit(f"{out} exists: a shipped guide is never replaced; choose a new name")
    path = args.run / args.checkpoint
    actor, cfg, normalizer = load_policy(path)
    if normalizer is not None:
        raise SystemExit("a guide must not use observation normalisation")
    state = load_checkpoint(path)
    numbers = {rho: _evaluate(actor, cfg, args.episodes, rho) for rho in (0.0, 1.0)}
    out.mkdir(parents=True)
    shutil.copy(args.run / "config.yaml", out / "config.yaml")
    save_checkpoint(
        {
            "config": state["config"],
            "progress": {"step": state["progress"]["step"]},
            "eval_return": state.get("eval_return"),
            "learner": {"actor": state["learner"]["actor"]},
            "env": {},
        },
        out / "guide.pt",
    )
    params = sum(int(np.prod(v.shape)) for v in state["learner"]["actor"].values())
    rows = "\n".join(
        f"| {rho:g} | {n['return']:.1f} +- {n['return_std']:.1f} | {n['length']:.0f} | "
        f"{n['position_error']:.3f} | {n['crash_rate']:.2f} |"
        for rho, n in numbers.items()
    )
    chosen = f"\n\nChosen with:\n\n    {args.select_command}" if args.select_command else ""
    (out / "README.md").write_text(
        f"""# Built-in quadrotor guide `builtin-{args.name}`

The privileged guide of `algo.sequence.guide: builtin-{args.name}` (arXiv 2510.24461 Sec. 7): an
ANN actor on the 146-d observation of `spikerl/Quadrotor-v0` (state and 32-step action history),
hidden {list(cfg.actor.hidden)}, {params:,} parameters, trained by spikerl:

    {args.train_command}

(checkpoint `{args.checkpoint}` of that run, env step {state["progress"]["step"]:,}).{chosen}

Evaluated over {args.episodes} deterministic episodes from the run seed's evaluation stream:

    .venv/bin/python scripts/ship_quadrotor_guide.py {args.run} --name {args.name} \\
        --checkpoint {args.checkpoint} --train-command "..."

| curriculum rho | return | length (steps) | position error (m) | crash rate |
|---|---|---|---|---|
{rows}
"""
    )
    print((out / "README.md").read_text())


if __name__ == "__main__":
    main()
