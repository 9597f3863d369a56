"""Can the starts a guide crashes on be recovered at all? For every start of
``quadrotor_crash_starts.py`` (drone i of a vector env reset with ``--seed``) on which the guide
crashes, a sampling planner searches for a recovery: a prefix of planned steps (one action per
block of ``--block`` steps), after which the guide flies on. The planner is the cross-entropy
method over those blocks, scoring each candidate by the steps it survives within ``--horizon``
(then by its return), ``--candidates`` at a time on one vector env started from the same state.
The search is sensitive to the prefix length and to the first sampling spread (a wide spread
clips to the bang-bang commands a hard recovery needs), so it makes several ``--attempts``
(``steps:std`` each) and stops at the first that survives the horizon.

A start counts as **recovered** when the best prefix found, replayed in a single env reset with
the start's own seed, lets the guide fly the whole episode (500 steps) without leaving the box.
A start the planner does not recover may still be recoverable (the search is finite), so the
share of unrecovered starts bounds from above the crash rate that the best privileged
controller could reach on these starts; it proves no lower bound::

    .venv/bin/python scripts/quadrotor_recoverable_starts.py builtin-v2 --starts 1000 \\
        --csv docs/guide_selection/recoverable_starts_v2.csv
"""

from __future__ import annotations

import argparse
import csv
import time

import numpy as np
import torch
from quadrotor_crash_starts import OPTIONS, drawn_start, fly

from spikerl.envs.quadrotor.core import SCALAR, orientation_error
from spikerl.envs.quadrotor.env import QuadrotorEnv, observation_space, state_to_mapping
from spikerl.envs.quadrotor.vector import QuadrotorVectorEnv
from spikerl.experiments.sequence_run import load_guide

RHO = 1.0  # the reward curriculum of the guide acceptance


def start_state(seed: int) -> tuple[np.ndarray, dict]:
    """The start (17 floats) that an env reset with ``seed`` draws, and as a mapping."""
    state = drawn_start(seed)
    return state, state_to_mapping(state)


def rollout(env, policy, start: dict, prefixes: np.ndarray, block: int, horizon: int):
    """Fly every candidate prefix ``[N, blocks, 4]`` from ``start``, the guide after it; return
    the steps each survives (at most ``horizon``) and its return over those steps."""
    n = prefixes.shape[0]
    obs, _ = env.reset(options={"state": start})
    alive = np.ones(n, bool)
    steps, returns = np.zeros(n, int), np.zeros(n)
    planned = prefixes.shape[1] * block
    for t in range(horizon):
        if t < planned:
            actions = prefixes[:, t // block]
        else:
            actions = policy(torch.as_tensor(obs)).numpy()
        obs, reward, terminated, truncated, _ = env.step(actions)
        returns[alive] += reward[alive]
        steps[alive] += 1
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    return steps, returns


def plan(policy, env, start: dict, prefix: int, spread: float, args, rng: np.random.Generator):
    """Cross-entropy search over ``prefix // args.block`` blocks of 4 commands in [-1, 1].

    Candidates are ``clip(mean + std * N(0, 1), -1, 1)``, from ``mean`` = the hover command and
    ``std = spread``; each is scored ``steps survived + 1e-3 * return`` (survival first). After
    each round, with ``e`` the ``args.elite`` best: ``mean <- (mean + mean_e) / 2`` and
    ``std <- (std + std_e) / 2 + 1e-3``. Returns the best prefix ``[blocks, 4]`` and the steps it
    survived (at most ``args.horizon``). ``env``: a vector env of ``args.candidates`` drones."""
    blocks = prefix // args.block
    mean = np.full((blocks, 4), env.options.action_hover)
    std = np.full((blocks, 4), spread)
    best, best_steps, best_score = mean.copy(), -1, -np.inf
    elites = max(1, int(args.elite * args.candidates))
    for _ in range(args.iterations):
        prefixes = np.clip(mean + std * rng.standard_normal((args.candidates, blocks, 4)), -1, 1)
        steps, returns = rollout(env, policy, start, prefixes, args.block, args.horizon)
        score = steps + 1e-3 * returns  # survival first, then return
        order = np.argsort(score)[::-1]
        if score[order[0]] > best_score:
            best, best_steps, best_score = prefixes[order[0]], int(steps[order[0]]), score[order[0]]
        if best_steps >= args.horizon:
            break
        top = prefixes[order[:elites]]
        mean = 0.5 * mean + 0.5 * top.mean(axis=0)
        std = 0.5 * std + 0.5 * top.std(axis=0) + 1e-3
    return best, best_steps


def search(policy, start: dict, args, rng: np.random.Generator):
    """:func:`plan` with each of ``args.attempts`` in turn until one survives the horizon: the
    prefix that survived longest, its steps, and the attempt that found it (1-based)."""
    best, best_steps, found = None, -1, 0
    env = QuadrotorVectorEnv(args.candidates, autoreset_mode="SameStep")
    env.set_curriculum(RHO)
    with torch.inference_mode():
        for k, (steps, spread) in enumerate(args.attempts, 1):
            prefix, survived = plan(policy, env, start, steps, spread, args, rng)
            if survived > best_steps:
                best, best_steps, found = prefix, survived, k
            if survived >= args.horizon:
                break
    env.close()
    return best, best_steps, found


def verify(policy, seed: int, prefix: np.ndarray, block: int) -> tuple[bool, float, int]:
    """Replay ``prefix`` in a single env reset with ``seed`` (the original start, bit for bit),
    then the guide to the episode's end: (survived, return, length)."""
    env = QuadrotorEnv()
    env.set_curriculum(RHO)
    obs, _ = env.reset(seed=seed)
    total, t = 0.0, 0
    with torch.inference_mode():
        while True:
            if t < prefix.shape[0] * block:
                action = prefix[t // block]
            else:
                action = policy(torch.as_tensor(obs)[None])[0].numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            total, t = total + reward, t + 1
            if terminated or truncated:
                return not terminated, total, t


def _attempts(text: str) -> list[tuple[int, float]]:
    """``"20:1.5,30:1.0"`` -> ``[(20, 1.5), (30, 1.0)]``."""
    try:
        pairs = [(int(a), float(b)) for a, b in (item.split(":") for item in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected steps:std[,...], got {text!r}") from None
    if not all(steps > 0 and spread > 0 for steps, spread in pairs):
        raise argparse.ArgumentTypeError(f"steps and std must be positive, got {text!r}")
    return pairs


def _indices(text: str) -> list[int]:
    """``"0,5,9"`` -> ``[0, 5, 9]``."""
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected start indices like 0,5,9, got {text!r}"
        ) from None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("guide", help="shipped guide name or checkpoint")
    p.add_argument("--starts", type=int, default=1000)
    p.add_argument("--seed", type=int, default=4242, help="drone i starts from seed + i")
    p.add_argument("--attempts", type=_attempts, default="20:1.5,30:1.0,50:1.5,10:2.0",
                   help="planned steps (10 ms each):first sampling std, per search")  # fmt: skip
    p.add_argument("--block", type=int, default=1, help="steps per planned action")
    p.add_argument("--horizon", type=int, default=150, help="steps scored in the search")
    p.add_argument("--candidates", type=int, default=2048)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--elite", type=float, default=0.05, help="share of candidates kept")
    p.add_argument("--only", type=_indices, help="plan only these crashed starts (0,5,9)")
    p.add_argument("--csv", help="write one row per crashed start")
    args = p.parse_args()
    episode = OPTIONS.max_steps
    if min(args.block, args.candidates, args.iterations, args.starts) < 1:
        p.error("--block, --candidates, --iterations and --starts must be at least 1")
    if not (1 <= args.horizon <= episode and 0 < args.elite <= 1):
        p.error(f"--horizon must lie in [1, {episode}] and --elite in (0, 1]")
    if any(steps % args.block for steps, _ in args.attempts):
        p.error("--attempts: each prefix must be a multiple of --block")
    flown = fly(args.guide, args.starts, args.seed, RHO)
    crashed = np.flatnonzero(flown["crashed"])
    if args.only is not None:
        crashed = np.intersect1d(crashed, args.only)
    obs_dim = observation_space(OPTIONS).shape[0]
    policy = load_guide(args.guide, obs_dim, 4, torch.device("cpu"))
    rng = np.random.default_rng(0)
    rows, began = [], time.time()
    rate = flown["crashed"].mean()
    print(f"{args.guide}: crashes on {rate:.3f} of {args.starts} starts; planning {crashed.size}")
    for k, i in enumerate(crashed.tolist(), 1):
        seed = args.seed + i
        state, mapping = start_state(seed)
        prefix, searched, attempt = search(policy, mapping, args, rng)
        survived, ret, length = verify(policy, seed, prefix, args.block)
        rotation = float(np.degrees(orientation_error(state[3], state[6], "angle", SCALAR)))
        rows.append({"start": i, "seed": seed, "guide_length": int(flown["lengths"][i]),
                     "recovered": survived, "return": round(ret, 2), "length": length,
                     "searched_steps": searched, "attempt": attempt,
                     "rotation_deg": round(rotation, 1),
                     "pz": round(state[2], 3), "vz": round(state[9], 3),
                     "min_rotor_speed": round(float(state[13:17].min()), 3)})  # fmt: skip
        if k % 10 == 0 or k == crashed.size:
            done = sum(r["recovered"] for r in rows)
            print(f"  {k}/{crashed.size} planned, {done} recovered ({time.time() - began:.0f} s)")
    recovered = sum(r["recovered"] for r in rows)
    lost = crashed.size - recovered
    share = "" if args.only else f" ({lost / args.starts:.3f} of all starts)"
    print(f"{args.starts} starts (seed {args.seed}, rho {RHO:g}): the guide crashes on "
          f"{rate:.3f}; of {crashed.size} planned, planner + guide recover {recovered}; "
          f"not recovered: {lost}{share}")  # fmt: skip
    if args.csv and rows:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
