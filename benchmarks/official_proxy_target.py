"""spikerl against the official Proxy-Target code (arXiv 2505.24161): TD3 training speed on CPU.

The official code is the authors' release, ``github.com/xuzijie32/Proxy-Target`` (its last
upstream commit is also in ``madao2333/Proxy-Target-with-PLIF`` at 8d1635f, before the fork's
PLIF changes). ``--official PATH`` points at a checkout of it; nothing of it is copied here. It
needs only numpy, torch and gymnasium (with MuJoCo), so spikerl's own environment runs it; its
``environment.yml`` pins Python 3.7, torch 1.13, gymnasium 0.28.1 and mujoco 2.3.3, and
``--python`` picks another interpreter for it.

**What is timed.** For each variant (``--variants``) on ``--env`` (HalfCheetah-v4), both with
the paper's actor (PopSAN: LIF neurons, T = 5, populations of 10 per observation and action
dimension, hidden 256-256), twin critic 256-256, batch 256, one update per env step, policy
delay 2:

* ``proxy``: the proxy target, K = 3 proxy steps per iteration, proxy 512-512, proxy lr 1e-3
  (official ``PT_TD3``; spikerl ``algo.target=proxy``);
* ``vanilla``: vanilla spiking TD3 with a Polyak-averaged SNN target actor (official ``TD3``;
  spikerl ``algo.target=polyak``).

Each variant gets four loops: two pairs, official and spikerl, each with its own env, learner
and replay buffer, filled with ``--learning-starts`` uniform-random steps and then trained
``--warmup`` iterations, untimed. A training iteration is the exploring action (actor at batch 1
+ Gaussian noise of std 0.1), ``env.step``, the replay insert (a reset on episode end) and one
learner update. The official loops run in subprocesses (``--python``, with ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS`` and torch's intra-op threads at ``--threads``): a driver generated at run
time into a temporary folder imports the checkout's ``actor_critic`` and ``utils`` modules and
calls ``select_action``, ``ReplayBuffer.add`` and ``train`` in the loop of its ``main.py``
(without evaluation and printing), timing each window itself. The spikerl loops are
:class:`_bench.TrainLoop` in this process, also at ``--threads`` torch threads. Then
``--repeats`` rounds of timed windows of ``--window`` iterations run in turn over the variants,
official and spikerl alternating (official first in even rounds, spikerl first in odd ones), so
machine load hits both alike; only one loop runs at a time. Reported per variant: env steps/s
(median, min, max over windows) of each code and the ratio of the medians, spikerl / official.
Before timing, the official learners' settings (T, populations, hidden sizes, batch, policy
delay, K, proxy size and lr, learning rates, tau) are read back from the constructed objects and
compared with spikerl's config; a mismatch stops the benchmark.

**Differences in the work per step** (the same algorithm and the same numbers, not the same
operations):

1. Proxy steps: the official loss ``mse_loss(actor(s), proxy(s))`` does not detach the SNN, so
   each of the K steps runs an SNN forward with autograd at batch 256 and a backward through
   the SNN's T ticks whose actor gradients are discarded (``actor_optimizer.zero_grad()`` runs
   before the actor's own backward). spikerl computes the K minibatches' SNN targets in one
   no-grad forward at batch 768. The proxy gradients are equal.
2. Acting: the official ``select_action`` runs the batch-1 SNN with autograd on (a graph built
   and dropped); spikerl acts under ``torch.inference_mode``.
3. SNN execution: the official actor steps tick by tick, layer by layer, writing the encoder's
   spikes into a ``[B, n*P, T]`` tensor by indexed assignment; spikerl runs each layer's Linear
   for all T ticks at once, then its neuron loop. Equal up to float summation order.
4. Optimisers and Polyak averaging: official ``torch.optim.Adam`` with torch's defaults (one
   tensor at a time on CPU) and a Python loop of ``target.data.copy_(tau*p + (1-tau)*t)``;
   spikerl fused Adam and ``torch._foreach_lerp_``.
5. Replay: official float64 NumPy storage of 1e6 transitions, ``np.random.randint`` and a
   float64 -> float32 ``torch.FloatTensor`` copy per field per sample; spikerl float32 storage
   sized to the run, its own generator and ``torch.as_tensor``.
6. Env: official ``gym.make(env)``; spikerl adds action rescaling to [-1, 1] (the identity on
   HalfCheetah) and a float32 observation cast. The official driver stores
   ``done_bool = terminated`` (``main.py``'s ``done if t < _max_episode_steps else 0``; the same
   on HalfCheetah, which never terminates).
7. Random numbers: the official code draws from the global NumPy and torch generators; spikerl
   from its own streams. The two codes do not produce the same trajectories.

Usage::

    python benchmarks/official_proxy_target.py --official /tmp/official_pt
    python benchmarks/official_proxy_target.py --official /tmp/official_pt \\
        --learning-starts 1000 --warmup 100 --window 1000 --repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _bench import (
    TrainLoop,
    add_official_code_args,
    add_training_window_args,
    checked_official_checkout,
    in_turn,
    positive_int,
    quiet_warnings,
    timed_steps_per_sec,
    write_results,
)

from spikerl.bench.timing import torch_threads
from spikerl.experiments.config import Config, load_config
from spikerl.experiments.process import MMAP_THRESHOLDS, TRIM_THRESHOLD, allocator
from spikerl.experiments.report import format_table

# variant -> (official learner class, spikerl config overrides)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "proxy": (
        "PT_TD3",
        [
            "actor.kind=lif",
            "algo.name=td3",
            "algo.target=proxy",
            "algo.proxy.hidden=[512,512]",
            "algo.proxy.lr=0.001",
            "algo.proxy.updates=3",
        ],
    ),
    "vanilla": ("TD3", ["actor.kind=lif", "algo.name=td3", "algo.target=polyak"]),
}

#: The driver the official subprocesses run; written to a temporary folder at run time.
DRIVER = r'''
"""Times the official Proxy-Target code; generated by spikerl's official_proxy_target.py.

argv[1]: JSON settings. Builds the learner as the checkout's main.py does, prefills and warms
up, prints "@@{ready...}", then answers each stdin line "train N" with "@@{steps_per_sec}" of
N timed iterations (exploring action, env.step, replay add, reset on episode end, one
policy.train) and exits on "quit" or end of input.
"""
import json
import sys
import time

cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["official"])

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(cfg["threads"])

from actor_critic import PT_TD3, TD3  # noqa: E402
from utils import ReplayBuffer  # noqa: E402


def say(**msg):
    print("@@" + json.dumps(msg), flush=True)


seed = cfg["seed"]
env = gym.make(cfg["env"])
env.reset(seed=seed)
env.action_space.seed(seed)
torch.manual_seed(seed)
np.random.seed(seed)
state_dim = env.observation_space.shape[0]
action_dim = env.action_space.shape[0]
max_action = float(env.action_space.high[0])
kwargs = {
    "state_dim": state_dim,
    "action_dim": action_dim,
    "max_action": max_action,
    "discount": 0.99,
    "tau": 0.005,
    "policy_noise": 0.2 * max_action,
    "noise_clip": 0.5 * max_action,
    "policy_freq": cfg["policy_freq"],
    "spiking_neurons": "LIF",
}
if cfg["learner"] == "PT_TD3":
    kwargs["hidden_sizes"] = cfg["proxy_hidden"]
    kwargs["proxy_lr"] = cfg["proxy_lr"]
    kwargs["proxy_iters"] = cfg["proxy_iters"]
    policy = PT_TD3(**kwargs)
else:
    policy = TD3(**kwargs)
replay_buffer = ReplayBuffer(state_dim, action_dim)
state = env.reset()[0]


def env_step(action):
    global state
    next_state, reward, terminated, truncated, _ = env.step(action)
    replay_buffer.add(state, action, next_state, reward, float(terminated))
    state = next_state
    if terminated or truncated:
        state = env.reset()[0]


def train(steps):
    for _ in range(steps):
        action = (
            policy.select_action(np.array(state))
            + np.random.normal(0, max_action * cfg["expl_noise"], size=action_dim)
        ).clip(-max_action, max_action)
        env_step(action)
        policy.train(replay_buffer, cfg["batch_size"])


for _ in range(cfg["learning_starts"]):
    env_step(env.action_space.sample())
train(cfg["warmup"])

actor = policy.actor
settings = {
    "learner": type(policy).__name__,
    "neurons": actor.snn.neurons,
    "timesteps": actor.snn.spike_ts,
    "pop_in": actor.encoder.pop_dim,
    "pop_out": actor.decoder.pop_dim,
    "hidden": list(actor.snn.hidden_sizes),
    "critic_hidden": [policy.critic.l1.out_features, policy.critic.l2.out_features],
    "batch_size": cfg["batch_size"],
    "policy_delay": policy.policy_freq,
    "tau": policy.tau,
    "lr_actor": policy.actor_optimizer.param_groups[0]["lr"],
    "lr_critic": policy.critic_optimizer.param_groups[0]["lr"],
}
if cfg["learner"] == "PT_TD3":
    proxy = policy.actor_target
    settings["proxy_updates"] = policy.proxy_iters
    settings["proxy_hidden"] = [proxy.l1.out_features, proxy.l2.out_features]
    settings["proxy_lr"] = policy.target_optimizer.param_groups[0]["lr"]
say(
    ready=True,
    settings=settings,
    torch=torch.__version__,
    numpy=np.__version__,
    gymnasium=gym.__version__,
    python=sys.version.split()[0],
    torch_threads=torch.get_num_threads(),
)
while True:
    line = sys.stdin.readline().split()
    if not line or line[0] == "quit":
        break
    steps = int(line[1])
    start = time.perf_counter()
    train(steps)
    say(steps_per_sec=steps / (time.perf_counter() - start))
'''


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="spikerl vs the official Proxy-Target code: speed.")
    add_official_code_args(p)
    p.add_argument("--env", default="HalfCheetah-v4", help="Gymnasium env id")
    p.add_argument("--threads", type=positive_int, default=2, help="torch/OMP/MKL threads")
    p.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
        help="proxy (PT_TD3, K = 3) and/or vanilla (TD3, Polyak SNN target)",
    )  # fmt: skip
    p.add_argument(
        "--spikerl-set", action="append", default=[], metavar="KEY=VALUE",
        help="extra config override of the spikerl side, e.g. run.precision=bfloat16",
    )  # fmt: skip
    p.add_argument(
        "--official-allocator", choices=["system", "tuned"], default="system",
        help="glibc malloc of the official subprocesses: as the system sets it (the code as "
        "its users run it) or tuned as spikerl tunes its own process (MALLOC_MMAP_THRESHOLD_ "
        "and MALLOC_TRIM_THRESHOLD_; spikerl.experiments.process)",
    )  # fmt: skip
    add_training_window_args(p, warmup_default=100, window_default=1000)
    args = p.parse_args(argv)
    args.official = checked_official_checkout(p, args.official, "actor_critic.py")
    return args


def spikerl_config(variant: str, args: argparse.Namespace) -> Config:
    return load_config(
        None,
        [
            f"env.id={args.env}",
            f"algo.learning_starts={args.learning_starts}",
            f"run.seed={args.seed}",
            *VARIANTS[variant][1],
            *args.spikerl_set,
        ],
    )


def expected_settings(cfg: Config) -> dict[str, Any]:
    """What the official learner must report for the same work per step as ``cfg``."""
    algo, actor = cfg.algo, cfg.actor
    out: dict[str, Any] = {
        "neurons": actor.kind.upper(),
        "timesteps": actor.timesteps,
        "pop_in": actor.pop_in,
        "pop_out": actor.pop_out,
        "hidden": list(actor.hidden),
        "critic_hidden": list(algo.critic_hidden),
        "batch_size": algo.batch_size,
        "policy_delay": algo.policy_delay,
        "tau": algo.tau,
        "lr_actor": algo.lr_actor,
        "lr_critic": algo.lr_critic,
    }
    if algo.target == "proxy":
        out["proxy_updates"] = algo.proxy.updates
        out["proxy_hidden"] = list(algo.proxy.hidden)
        out["proxy_lr"] = algo.proxy.lr
    return out


class OfficialLoop:
    """One official learner in a subprocess running :data:`DRIVER`, stepped on demand."""

    def __init__(self, args: argparse.Namespace, cfg: Config, learner: str, tmp: Path) -> None:
        algo = cfg.algo
        settings = {
            "official": str(args.official),
            "learner": learner,
            "env": args.env,
            "seed": args.seed,
            "threads": args.threads,
            "learning_starts": args.learning_starts,
            "warmup": args.warmup,
            "batch_size": algo.batch_size,
            "policy_freq": algo.policy_delay,
            "expl_noise": algo.expl_noise,
            "proxy_hidden": list(algo.proxy.hidden),
            "proxy_lr": algo.proxy.lr,
            "proxy_iters": algo.proxy.updates,
        }
        env = dict(os.environ)
        env.update({"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)})
        if args.official_allocator == "tuned":  # 32 MiB: every glibc takes it, and the official
            # code's largest tensors are far below it
            env.update({"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLDS[-1]),
                        "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)})  # fmt: skip
        self.stderr_path = tmp / f"{learner}.stderr"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [args.python, str(tmp / "official_driver.py"), json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=tmp,  # MuJoCo's MUJOCO_LOG.TXT lands there
            env=env,
            text=True,
            bufsize=1,
        )
        self.info: dict[str, Any] = {}

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                tail = self.stderr_path.read_text()[-3000:]
                raise RuntimeError(f"official driver exited ({self.proc.returncode}):\n{tail}")
            if line.startswith("@@"):
                return json.loads(line[2:])

    def wait_ready(self) -> dict[str, Any]:
        self.info = self._reply()
        return self.info

    def steps_per_sec(self, steps: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"train {steps}\n")
        self.proc.stdin.flush()
        return float(self._reply()["steps_per_sec"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def check_settings(variant: str, official: dict[str, Any], cfg: Config) -> None:
    want = expected_settings(cfg)
    got = {k: official.get(k) for k in want}
    if got != want:
        diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
        raise SystemExit(f"{variant}: official settings differ (official, spikerl): {diff}")


def spread(windows: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(windows),
        "min": min(windows),
        "max": max(windows),
    }


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Set up every loop, check the official settings, time alternating windows."""
    (tmp / "official_driver.py").write_text(DRIVER)
    cfgs = {v: spikerl_config(v, args) for v in args.variants}
    officials: dict[str, OfficialLoop] = {}
    try:
        for v in args.variants:  # the subprocesses prefill while this process does
            officials[v] = OfficialLoop(args, cfgs[v], VARIANTS[v][0], tmp)
        capacity = args.learning_starts + args.warmup + args.window * args.repeats
        loops = {}
        for v in args.variants:
            loops[v] = TrainLoop(cfgs[v], capacity)
            loops[v].prefill()
            loops[v].train(args.warmup)
        for v in args.variants:
            check_settings(v, officials[v].wait_ready()["settings"], cfgs[v])
        windows: dict[str, dict[str, list[float]]] = {
            v: {"official": [], "spikerl": []} for v in args.variants
        }
        for r in range(args.repeats):
            for v in args.variants:
                for code in in_turn(("official", "spikerl"), r):
                    if code == "official":
                        sps = officials[v].steps_per_sec(args.window)
                    else:
                        sps = timed_steps_per_sec(loops[v], args.window)
                    windows[v][code].append(sps)
        info = {v: o.info for v, o in officials.items()}
    finally:
        for o in officials.values():
            o.close()
    rows = []
    for v in args.variants:
        off, ours = spread(windows[v]["official"]), spread(windows[v]["spikerl"])
        rows.append(
            {
                "variant": v,
                "official": off,
                "spikerl": ours,
                "ratio_spikerl_to_official": ours["median"] / off["median"],
                "windows": windows[v],
            }
        )
    allocators = {"official": args.official_allocator, "spikerl": allocator()}
    return {"training": rows, "official_runtime": info, "allocator": allocators}


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["variant", "official med", "min", "max", "spikerl med", "min", "max", "ratio"]
    body = [
        [
            r["variant"],
            *(r["official"][k] for k in ("median", "min", "max")),
            *(r["spikerl"][k] for k in ("median", "min", "max")),
            r["ratio_spikerl_to_official"],
        ]
        for r in rows
    ]
    return format_table(headers, body)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_warnings()
    with torch_threads(args.threads), tempfile.TemporaryDirectory(prefix="official_pt_") as tmp:
        results = measure(args, Path(tmp))
    runtime = next(iter(results["official_runtime"].values()))
    where = f"official on torch {runtime['torch']}, python {runtime['python']}"
    where += f"; allocator: official {args.official_allocator}, spikerl {allocator()}"
    window = f"window {args.window} iterations, {args.repeats} windows each"
    print(f"\nTraining env steps/s on {args.env} ({args.threads} thread(s); {window}; {where})")
    print(table(results["training"]))
    print("ratio = spikerl median / official median")
    write_results(args, "official_proxy_target", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
