"""The sections of ``spikerl bench`` and the settings they run with.

Every figure is the median of ``repeats`` windows with their minimum and maximum; windows of
the settings in one section run round-robin, so a change in the machine's load during the
section touches all of them alike (ratios within a section are the robust figures).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from ..experiments.config import Config, load_config
from ..experiments.process import keep_freed_memory
from .flops import MatmulRecorder, matmul_seconds
from .machine import machine_info, usable_cores
from .timing import Windows, rate_for, sync, torch_threads
from .train_loop import SeedsTrainLoop, TrainLoop, raw_env_steps_per_sec, timed_steps_per_sec

__all__ = [
    "SECTIONS",
    "OPT_IN_VARIANTS",
    "TRAINING_VARIANTS",
    "BenchSettings",
    "converted_policy",
    "decision_latencies_ns",
    "forward_call",
    "run_suite",
    "stepper",
    "vector_stepper",
]

_PROXY = ["algo.target=proxy", "algo.proxy.hidden=[512,512]", "algo.proxy.lr=0.001",
          "algo.proxy.updates=3"]  # fmt: skip
#: Training variant -> config overrides (paper settings: T = 5, populations of 10, 256-256).
TRAINING_VARIANTS: dict[str, list[str]] = {
    "ANN-TD3": ["algo.name=td3", "actor.kind=ann", "algo.target=polyak"],
    "SAC": ["algo.name=sac", "actor.kind=ann"],
    "spiking TD3 (LIF, Polyak target)": ["algo.name=td3", "actor.kind=lif", "algo.target=polyak"],
    "proxy-target TD3 (LIF)": ["algo.name=td3", "actor.kind=lif", *_PROXY],
    "proxy-target TD3 (CLIF)": ["algo.name=td3", "actor.kind=clif", *_PROXY],
    "proxy-target TD3 (DN)": ["algo.name=td3", "actor.kind=dn", *_PROXY],
}
#: The opt-in speed paths (``run.precision``, ``run.compile``) on the two spiking TD3 variants.
OPT_IN_VARIANTS: dict[str, list[str]] = {
    f"{name}, {label}": [*TRAINING_VARIANTS[name], *overrides]
    for name in ("spiking TD3 (LIF, Polyak target)", "proxy-target TD3 (LIF)")
    for label, overrides in (
        ("bfloat16", ["run.precision=bfloat16"]),
        ("compiled", ["run.compile=true"]),
    )
}
SB3_VARIANT = "Stable-Baselines3 TD3"
#: The variants of the many-seeds section (``spikerl train --seeds``: TD3 and SAC).
SEED_VARIANTS = ("ANN-TD3", "SAC", "spiking TD3 (LIF, Polyak target)", "proxy-target TD3 (LIF)")
CONVERSION_MODELS = ("if", "snm", "mt", "dc", "dc-mt")


@dataclass(frozen=True)
class BenchSettings:
    """What ``spikerl bench`` times and for how long (defaults: the full suite, about 7
    minutes on 2 CPU cores; :meth:`quick` is a smoke run whose numbers mean little)."""

    env_id: str = "HalfCheetah-v4"
    device: str = "cpu"
    threads: int = 0  # 0: every usable core
    seed: int = 0
    repeats: int = 3
    learning_starts: int = 1000
    warmup: int = 50
    window: int = 300
    raw_steps: int = 10_000
    seq_batch: int = 350
    seq_window: int = 100
    seq_burn_in: int = 50
    seq_updates: int = 2
    seq_store_steps: int = 4_000
    seconds: float = 1.0
    conversion_timesteps: tuple[int, ...] = (8, 32)
    conversion_batches: tuple[int, ...] = (1, 256)
    drones: tuple[int, ...] = (1, 64, 1024, 4096)
    latency_calls: int = 2000
    seeds: int = 8
    sb3: bool = True
    opt_in: bool = True  # also time the bfloat16 and compiled variants
    smoke: bool = False  # a smoke run (:meth:`quick`): its report says so and judges no target

    @classmethod
    def quick(cls, **changes: Any) -> BenchSettings:
        """Tiny windows and sizes: checks that every section runs, in about a minute."""
        small = cls(repeats=1, learning_starts=300, warmup=2, window=5, raw_steps=200,
                    seq_batch=4, seq_window=10, seq_burn_in=5, seq_updates=1,
                    seq_store_steps=200, seconds=0.02, conversion_timesteps=(8,),
                    drones=(1, 64), latency_calls=20, seeds=2, opt_in=False,
                    smoke=True)  # fmt: skip
        return replace(small, **changes)

    @property
    def torch_threads(self) -> int:
        return self.threads or usable_cores()


Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Training


def _variants(s: BenchSettings, progress: Progress) -> dict[str, list[str]]:
    """The variants to time; the compiled ones only where a C++ compiler exists."""
    from ..snn.layers import cxx_compiler

    opt_in = OPT_IN_VARIANTS if s.opt_in else {}
    if opt_in and cxx_compiler() is None:
        progress("training: no C++ compiler on PATH; the compiled variants are left out")
        opt_in = {k: v for k, v in opt_in.items() if "run.compile=true" not in v}
    return TRAINING_VARIANTS | opt_in


def _variant_config(overrides: list[str], s: BenchSettings) -> Config:
    base = [f"env.id={s.env_id}", f"algo.learning_starts={s.learning_starts}", f"run.seed={s.seed}"]
    return load_config(None, [*base, *overrides])


def _training_step_work(loop: TrainLoop | SeedsTrainLoop, device: str) -> dict[str, float]:
    """Matmul work of one training step (of a stacked loop: one iteration, every seed's
    step), averaged over one policy-delay cycle, and the time those products take at this
    machine's rate."""
    cycle = loop.cfg.algo.policy_delay
    # after the timing windows: a compiled loop that meets a new shape inside a dispatch mode
    # stops compiling for the rest of the process
    with MatmulRecorder() as recorder:
        loop.train(cycle)
    ideal = matmul_seconds(recorder.calls, device) / cycle
    return {"gflop_per_step": recorder.flops / cycle / 1e9, "matmul_seconds_per_step": ideal}


def _loops(s: BenchSettings, progress: Progress) -> tuple[dict[str, Any], dict[str, float]]:
    """Every variant's loop, prefilled and warmed up, and the seconds each warm-up took (the
    compiled variants' compile time is in it)."""
    capacity = s.learning_starts + s.warmup + s.window * s.repeats + 16
    loops: dict[str, Any] = {}
    for name, overrides in _variants(s, progress).items():
        loops[name] = TrainLoop(_variant_config(overrides, s), capacity, s.device)
    if s.sb3:
        from .sb3_loop import SB3TrainLoop, sb3_available

        if sb3_available():
            loops[SB3_VARIANT] = SB3TrainLoop(s.env_id, s.learning_starts, capacity, s.seed,
                                              s.device)  # fmt: skip
        else:
            progress("training: stable-baselines3 not installed (extra 'bench'); SB3 left out")
    warmup_seconds = {}
    for name, loop in loops.items():
        progress(f"training: warming up {name}")
        loop.prefill()
        started = time.perf_counter()
        loop.train(s.warmup)
        sync(s.device)
        warmup_seconds[name] = time.perf_counter() - started
    return loops, warmup_seconds


def bench_training(s: BenchSettings, progress: Progress) -> dict[str, Any]:
    """Env steps/s of training per variant, ratios to ANN-TD3, matmul work and roofline."""
    loops, warmup_seconds = _loops(s, progress)
    windows = {name: Windows() for name in loops}
    raw = Windows()
    for r in range(s.repeats):
        for name, loop in loops.items():
            windows[name].add(timed_steps_per_sec(loop, s.window, s.device))
            progress(
                f"training [{r + 1}/{s.repeats}] {name}: {windows[name].values[-1]:.1f} steps/s"
            )
        raw.add(raw_env_steps_per_sec(s.env_id, s.raw_steps, s.seed))
    base = windows["ANN-TD3"].median
    rows = []
    for name, loop in loops.items():
        row = {"variant": name, "steps_per_sec": windows[name].summary(),
               "ratio_to_ann_td3": windows[name].median / base,
               "warmup_seconds": warmup_seconds[name]}  # fmt: skip
        if isinstance(loop, TrainLoop):
            work = _training_step_work(loop, s.device)
            seconds = 1.0 / windows[name].median
            row |= work | {
                "achieved_gflop_per_sec": work["gflop_per_step"] / seconds,
                "matmul_gflop_per_sec": work["gflop_per_step"] / work["matmul_seconds_per_step"],
                "roofline_fraction": work["matmul_seconds_per_step"] / seconds,
            }
        rows.append(row)
    return {
        "env": s.env_id,
        "rows": rows,
        "raw_env_steps_per_sec": raw.summary(),
        "window": s.window,
        "warmup": s.warmup,
        "learning_starts": s.learning_starts,
    }


# --------------------------------------------------------------------------------------------
# Many seeds in one process


def bench_seeds(s: BenchSettings, progress: Progress) -> dict[str, Any]:
    """Aggregate env steps/s of S stacked seeds against one single-seed run (S sequential
    runs have the single run's aggregate rate), per TD3 or SAC variant, windows alternating."""
    iterations = max(s.window // s.seeds, 2)
    capacity = s.learning_starts + s.warmup + s.window * s.repeats + 16
    loops: dict[tuple[str, str], Any] = {}
    for name in SEED_VARIANTS:
        cfg = _variant_config(TRAINING_VARIANTS[name], s)
        loops[(name, "single")] = TrainLoop(cfg, capacity, s.device)
        loops[(name, "stacked")] = SeedsTrainLoop(cfg, s.seeds, capacity, s.device)
    for (name, kind), loop in loops.items():
        progress(f"seeds: warming up {name} ({kind})")
        loop.prefill()
        loop.train(max(s.warmup // (s.seeds if kind == "stacked" else 1), 1))
    windows = {key: Windows() for key in loops}
    for r in range(s.repeats):
        for (name, kind), loop in loops.items():
            stacked = kind == "stacked"
            rate = timed_steps_per_sec(loop, iterations if stacked else s.window, s.device)
            aggregate = rate * (s.seeds if stacked else 1)  # env steps/s of all its seeds
            windows[(name, kind)].add(aggregate)
            progress(f"seeds [{r + 1}/{s.repeats}] {name} ({kind}): {aggregate:.1f} env steps/s")
    rows = []
    for name in SEED_VARIANTS:
        single, stacked = windows[(name, "single")], windows[(name, "stacked")]
        rows.append({"variant": name, "single_steps_per_sec": single.summary(),
                     "stacked_steps_per_sec": stacked.summary(),
                     "speedup": stacked.median / single.median,
                     **_seeds_work(loops[(name, "single")], loops[(name, "stacked")], single,
                                   stacked, s)})  # fmt: skip
    return {"seeds": s.seeds, "env": s.env_id, "iterations": iterations, "rows": rows}


def _seeds_work(single_loop, stacked_loop, single: Windows, stacked: Windows,
                s: BenchSettings) -> dict[str, float]:  # fmt: skip
    """GFLOP per env step of the single and the stacked loop (equal where stacking adds no
    work) and each one's roofline fraction: its matrix products' time at this machine's rate
    over its measured time per env step."""
    one = _training_step_work(single_loop, s.device)
    all_seeds = _training_step_work(stacked_loop, s.device)
    return {
        "gflop_per_step": one["gflop_per_step"],
        "stacked_gflop_per_step": all_seeds["gflop_per_step"] / s.seeds,
        "single_roofline_fraction": one["matmul_seconds_per_step"] * single.median,
        "stacked_roofline_fraction": all_seeds["matmul_seconds_per_step"]
        / s.seeds
        * stacked.median,
    }


# --------------------------------------------------------------------------------------------
# Sequence training


def _sequence_parts(s: BenchSettings):  # noqa: ANN202
    from ..experiments.sequence_run import load_guide
    from .sequence_parts import ACT_DIM, OBS_DIM, guide_flown_buffer, sequence_learner

    guide = load_guide("builtin", OBS_DIM, ACT_DIM, torch.device("cpu"))
    buffer = guide_flown_buffer(guide, s.seq_window, s.seq_store_steps,
                                max(s.seq_store_steps * 2, 1000), max(1, s.seq_window // 2),
                                s.seed, s.device)  # fmt: skip
    return buffer, sequence_learner(s.seq_burn_in, s.seed, s.device)


def bench_sequence(s: BenchSettings, progress: Progress) -> dict[str, Any]:
    """Windows/s of the quadrotor controller's sequence update (critic + actor BPTT step on a
    batch of L-step windows, loss on i >= W), with its matmul work and roofline fraction."""
    progress("sequence: flying guide episodes for the buffer")
    buffer, learner = _sequence_parts(s)

    def update() -> None:
        learner.update(buffer.sample(s.seq_batch, 0.99), 0.2)

    update()
    windows = Windows()
    for r in range(s.repeats):
        started = time.perf_counter()
        for _ in range(s.seq_updates):
            update()
        sync(s.device)
        windows.add(s.seq_batch * s.seq_updates / (time.perf_counter() - started))
        progress(f"sequence [{r + 1}/{s.repeats}]: {windows.values[-1]:.0f} windows/s")
    with MatmulRecorder() as recorder:
        update()
    ideal = matmul_seconds(recorder.calls, s.device)
    seconds = s.seq_batch / windows.median
    return {"batch": s.seq_batch, "window": s.seq_window, "burn_in": s.seq_burn_in,
            "windows_per_sec": windows.summary(), "gflop_per_update": recorder.flops / 1e9,
            "roofline_fraction": ideal / seconds,
            "matmul_gflop_per_sec": recorder.flops / 1e9 / ideal}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Converted policies


def converted_policy(model: str, timesteps: int, obs_dim: int = 17, act_dim: int = 6):  # noqa: ANN202
    """A 17-256-256-6 actor (HalfCheetah's sizes), random weights, converted with thresholds
    from 512 random observations (speed depends only on sizes, T and the neuron model)."""
    from ..convert import ConversionSettings, build_converted
    from ..convert.source import source_from_module
    from ..nets.ann import DeterministicActor

    torch.manual_seed(0)
    source = source_from_module(DeterministicActor(obs_dim, act_dim, (256, 256)))
    _, hidden = source.hidden_activations(torch.randn(512, obs_dim))
    thetas = [h.detach().max(0).values for h in hidden]
    if model == "ann":
        return source
    return build_converted(source, thetas, ConversionSettings(model, timesteps, 0.5))


def forward_call(ann: torch.nn.Module, obs: torch.Tensor) -> Callable[[], None]:
    """A call running ``ann(obs)`` (a stateless policy, one decision per row)."""
    return lambda: ann(obs)


def stepper(snn: Any, obs: torch.Tensor) -> Callable[[], None]:
    """A call running one stateful ``snn.step`` on ``obs``, carrying the state across calls."""
    state = [None]

    def call() -> None:
        _, state[0] = snn.step(obs, state[0])

    return call


@torch.inference_mode()
def bench_conversion(s: BenchSettings, progress: Progress) -> dict[str, Any]:
    """Decisions/s (rows per second) of converted policies per neuron model, T and batch,
    one stateful ``step`` per call (CRPI alpha 0.5), against the ANN in the same run."""
    rows = []
    for batch in s.conversion_batches:
        obs = torch.randn(batch, 17, device=s.device)
        calls = {("ann", 0): forward_call(converted_policy("ann", 0).to(s.device), obs)}
        for t in s.conversion_timesteps:
            for model in CONVERSION_MODELS:
                calls[(model, t)] = stepper(converted_policy(model, t).to(s.device), obs)
        windows = {key: Windows() for key in calls}
        for _ in range(s.repeats):
            for key, call in calls.items():
                call()
                windows[key].add(rate_for(call, batch, s.seconds, s.device))
        ann = windows[("ann", 0)].median
        for (model, t), w in windows.items():
            rows.append(
                {
                    "policy": model,
                    "timesteps": t or None,
                    "batch": batch,
                    "decisions_per_sec": w.summary(),
                    "ann_over_snn": ann / w.median,
                }
            )
        progress(f"conversion: batch {batch} done")
    return {"rows": rows}


# --------------------------------------------------------------------------------------------
# Quadrotor vector env

HOVER = 2 * 0.667 - 1


def vector_stepper(venv: Any, actions: list[np.ndarray]) -> Callable[[], None]:
    """A call stepping ``venv`` with the next of ``actions`` (cycled)."""
    step = [0]

    def call() -> None:
        venv.step(actions[step[0] % len(actions)])
        step[0] += 1

    return call


def bench_quadrotor(s: BenchSettings, progress: Progress) -> dict[str, Any]:
    """Drone-steps/s of ``spikerl/Quadrotor-v0`` as a NumPy vector env (hover command plus
    N(0, 0.05) noise; observation, reward, termination and autoresets included)."""
    import gymnasium as gym

    import spikerl  # noqa: F401  (registers the env)

    rows = []
    for n in s.drones:
        venv = gym.make_vec("spikerl/Quadrotor-v0", num_envs=n,
                            vectorization_mode="vector_entry_point")  # fmt: skip
        venv.reset(seed=s.seed)
        rng = np.random.default_rng(s.seed)
        actions = [(HOVER + rng.normal(0, 0.05, (n, 4))).astype(np.float32) for _ in range(16)]
        call = vector_stepper(venv, actions)
        for _ in range(20):
            call()
        w = Windows()
        for _ in range(s.repeats):
            w.add(rate_for(call, n, s.seconds))
        rows.append({"drones": n, "drone_steps_per_sec": w.summary()})
        progress(f"quadrotor: N={n}: {w.median:,.0f} drone-steps/s")
        venv.close()
    return {"rows": rows}


# --------------------------------------------------------------------------------------------
# Latency

LATENCY_ACTORS = ("ann", "lif", "clif", "dn", "plif")


def _latency_policies(s: BenchSettings) -> dict[str, torch.nn.Module]:
    from ..nets import build_actor
    from ..nets.spiking import direct_lif_network

    policies = {}
    for kind in LATENCY_ACTORS:
        torch.manual_seed(s.seed)
        cfg = load_config(None, [f"actor.kind={kind}"])
        label = "ANN actor (TD3)" if kind == "ann" else f"{kind.upper()} population actor, T=5"
        policies[label] = build_actor(cfg.actor, "td3", 17, 6).eval()
    for model, t in (("if", 8), ("mt", 8), ("dc-mt", 32)):
        policies[f"converted {model.upper()}, T={t}"] = converted_policy(model, t)
    torch.manual_seed(s.seed)
    policies["quadrotor controller (stateful LIF)"] = direct_lif_network(
        146, 4, (256, 128), stateful=True, slope=2.0, inputs=18
    ).eval()
    return policies


def decision_latencies_ns(
    actor: torch.nn.Module, observations: np.ndarray, warmup: int, device: str = "cpu"
) -> list[int]:
    """Nanoseconds of each batch-1 decision of ``actor`` through :class:`ActingPolicy` (NumPy
    observation in, inference-mode forward, NumPy action out), one per row of
    ``observations``, after ``warmup`` untimed ones."""
    from ..nets.policy import ActingPolicy

    policy = ActingPolicy(actor.to(device), device)
    for i in range(warmup):
        policy(observations[i % len(observations)])
    samples = []
    for obs in observations:
        started = time.perf_counter_ns()
        policy(obs)
        samples.append(time.perf_counter_ns() - started)
    return samples


def bench_latency(s: BenchSettings, progress: Progress) -> dict[str, Any]:
    """Microseconds per decision at batch 1 through :class:`ActingPolicy` (NumPy observation
    in, inference-mode forward, NumPy action out), the path training and deployment take."""
    rng = np.random.default_rng(s.seed)
    rows = []
    for label, actor in _latency_policies(s).items():
        obs_dim = 146 if "quadrotor" in label else 17
        observations = rng.normal(0, 0.5, (s.latency_calls, obs_dim)).astype(np.float32)
        samples = decision_latencies_ns(actor, observations, s.latency_calls // 10, s.device)
        us = np.asarray(samples, dtype=np.float64) / 1e3
        rows.append({"policy": label, "median_us": float(np.median(us)),
                     "p10_us": float(np.percentile(us, 10)), "p90_us": float(np.percentile(us, 90)),
                     "decisions_per_sec": 1e6 / float(np.median(us))})  # fmt: skip
        progress(f"latency: {label}: {rows[-1]['median_us']:.0f} us")
    return {"calls": s.latency_calls, "rows": rows}


# --------------------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[BenchSettings, Progress], dict[str, Any]]] = {
    "training": bench_training,
    "seeds": bench_seeds,
    "sequence": bench_sequence,
    "conversion": bench_conversion,
    "quadrotor": bench_quadrotor,
    "latency": bench_latency,
}


def run_suite(
    settings: BenchSettings, sections: list[str] | None = None, progress: Progress = print
) -> dict[str, Any]:
    """Run ``sections`` (default: all, in :data:`SECTIONS` order) with ``settings.threads``
    torch threads; returns the JSON payload (machine, settings, one entry per section). A
    Ctrl-C keeps the sections finished before it (``interrupted``: the section it stopped)."""
    names = list(SECTIONS) if sections is None else sections
    started = time.perf_counter()
    keep_freed_memory()  # as in a training run (spikerl.experiments.process)
    with torch_threads(settings.torch_threads):
        results = {"machine": machine_info(settings.device), "settings": _settings_dict(settings)}
        for name in names:
            section_start = time.perf_counter()
            try:
                results[name] = SECTIONS[name](settings, progress)
            except KeyboardInterrupt:
                results["interrupted"] = name
                break
            results[name]["seconds"] = time.perf_counter() - section_start
    results["seconds"] = time.perf_counter() - started
    return results


def _settings_dict(s: BenchSettings) -> dict[str, Any]:
    return asdict(s) | {"torch_threads": s.torch_threads}
