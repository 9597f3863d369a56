r"""Guided sequence training runs: the epoch loop of ``algo.name: sequence`` (arXiv 2510.24461
Sec. 10; spec ``surrogate-sequence.md``).

The run folder, metrics, checkpoints, status, provenance, signals and resume are those of
:mod:`~spikerl.experiments.run`; only the loop differs. Before the first epoch the guide flies
whole episodes until ``algo.sequence.seed_steps`` steps are stored. Epoch ``e`` of
``E = run.total_steps // run.eval_every``:

1. reward curriculum :math:`\rho_e` (``env.curriculum_block``, as in every run);
2. ``online``: collect until ``run.eval_every`` steps are stored, the guide flying the first
   :math:`L_g` steps of every episode while the actor is stepped silently
   (:func:`~spikerl.algos.guided.guided_rollouts`, ``algo.sequence.num_envs`` drones);
3. ``algo.sequence.updates`` updates (:class:`~spikerl.algos.sequence.SequenceTD3BC`) on
   ``algo.batch_size`` windows each, BC weight :math:`\lambda`;
4. evaluation on ``run.eval_episodes`` drones: the guide flies the first
   ``eval_guide_steps`` (W) steps, then the actor (``eval/*``); and guide-free, the actor from
   a cold state at step 0 (``eval_free/*``, the deployment case);
5. the slope schedule sees the evaluation return; every ``round_epochs`` epochs
   :math:`L_g \leftarrow \max(L_{min}, L_g - \Delta)` and :math:`\lambda \leftarrow d\,\lambda`;
6. an atomic checkpoint with the buffer, learner, schedules (slope, :math:`L_g`,
   :math:`\lambda`) and every RNG state.

Each collection reseeds the drones from the run seed and the epoch, and every evaluation flies
the same start states (the run seed's evaluation stream), so a resumed run continues exactly.
As in every run, a metrics row shows the settings of the epoch that follows it (the initial row:
epoch 0's): ``env/curriculum``, ``snn/slope``, ``seq/guide_steps`` and ``seq/bc_weight``. The
``step`` column is the epoch's nominal step count ``(e + 1) * run.eval_every`` [R] (the offline
baselines collect nothing); ``collect/env_steps`` counts the drone-steps actually flown.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..algos.guided import RolloutResult, guided_rollouts
from ..algos.sequence import SequenceTD3BC
from ..buffers.sequence import EpisodeSequenceBuffer
from ..errors import SpikerlError
from ..nets import TwinCritic, build_actor, build_slope_schedule
from ..seeding import SeedStreams
from ..snn.layers import compile_neuron_loops
from ..snn.schedules import SlopeSchedule
from .checkpoint import (
    RESUME_ENTRIES,
    CheckpointError,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from .config import Config, ConfigError, config_to_dict
from .evaluation import EvalResult, evaluation_mode
from .process import configure_process
from .provenance import record_provenance
from .run import (
    CHECKPOINT_NAME,
    METRICS_NAME,
    STATUS_EVERY,
    TENSORBOARD_DIR,
    MetricsWriter,
    RunResult,
    TrainingDiverged,
    _checkpoint_errors,
    _create_run_dir,
    _curriculum,
    _note,
    _Progress,
    _show_bar,
    _stop_on_signals,
    _write_status,
    abort_if_stopped,
    check_checkpoint_config,
    save_policies,
    settle_finished,
)
from .status import FINISHED

__all__ = [
    "BUILTIN_GUIDES",
    "drone_seed",
    "evaluate_sequence_policy",
    "load_guide",
    "load_trained",
    "train_sequence",
]

#: The shipped quadrotor guides by name, ANN actors on the 146-d observation (``docs/results.md``
#: "The shipped quadrotor guides"). A name never changes its weights, so a run's config keeps
#: naming the guide it was trained with: ``builtin`` is the first guide (``builtin-v1``), the
#: presets use the newest.
BUILTIN_GUIDES = {
    "builtin": "guides/quadrotor/guide.pt",
    "builtin-v1": "guides/quadrotor/guide.pt",
    "builtin-v2": "guides/quadrotor/v2/guide.pt",
}
_PHASES = ("collect", "update", "evaluate")
WHOLE_EPISODE = 2**31  # guide steps that let the guide fly every episode to its end


@dataclass
class _Schedule:
    """What the method schedules per round, restored on resume."""

    guide_steps: int
    bc_weight: float
    env_steps: int = 0
    phase_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_PHASES, 0.0))


@dataclass
class _SeqSession:
    cfg: Config
    run_dir: Path
    env: Any
    eval_env: Any
    learner: SequenceTD3BC
    guide: nn.Module | None
    buffer: EpisodeSequenceBuffer
    metrics: MetricsWriter
    schedule: _Schedule
    slope: SlopeSchedule | None
    device: torch.device
    progress: _Progress = field(default_factory=_Progress)
    started: float = 0.0
    wall_base: float = 0.0

    @property
    def epochs(self) -> int:
        return self.cfg.run.total_steps // self.cfg.run.eval_every

    def wall_time(self) -> float:
        return self.wall_base + time.perf_counter() - self.started

    def apply_slope(self) -> None:
        if self.slope is not None:
            self.learner.actor.set_surrogate_slope(self.slope.value())


# --------------------------------------------------------------------------------------------
# Building


def load_guide(spec: str, obs_dim: int, act_dim: int, device: torch.device) -> nn.Module | None:
    """The guide named by ``algo.sequence.guide``: None for ``''``, a shipped one for a name of
    :data:`BUILTIN_GUIDES`, else the actor of a run folder or checkpoint (any stateless actor on
    the full observation)."""
    from .policy import load_policy  # policy imports run, which imports this module lazily

    if not spec:
        return None
    if spec in BUILTIN_GUIDES:
        path = resources.files("spikerl") / BUILTIN_GUIDES[spec]
    elif spec.startswith("builtin"):
        raise ConfigError(
            f"algo.sequence.guide: no shipped guide {spec!r}; shipped: {', '.join(BUILTIN_GUIDES)}"
        )
    else:
        path = Path(spec)
    try:
        guide, guide_cfg, normalizer = load_policy(str(path), str(device))
    except SpikerlError as err:  # missing, not a run, corrupt: say which setting named it
        raise ConfigError(f"algo.sequence.guide: {err}") from None
    if normalizer is not None or getattr(guide, "stateful", False):
        raise ConfigError(
            f"algo.sequence.guide: {spec} must be a stateless actor without observation "
            "normalisation"
        )
    try:
        out = guide(torch.zeros(1, obs_dim, device=device))
    except RuntimeError as err:
        raise ConfigError(
            f"algo.sequence.guide: {spec} (trained on {guide_cfg.env.id}) does not take this "
            f"env's {obs_dim}-d observation: {err}"
        ) from None
    if out.shape != (1, act_dim):
        raise ConfigError(f"algo.sequence.guide: {spec} gives {tuple(out.shape)[1:]} actions")
    return guide.requires_grad_(False)


def _learner(cfg: Config, obs_dim: int, act_dim: int, device: torch.device) -> SequenceTD3BC:
    """Actor, critics and optimisers of ``cfg``, initialised from the run seed's init stream."""
    seq, a = cfg.algo.sequence, cfg.algo
    with SeedStreams(cfg.run.seed).torch_init():
        actor = build_actor(cfg.actor, "sequence", obs_dim, act_dim).to(device)
        compile_neuron_loops(actor, cfg.run.compile)
        critic = TwinCritic(obs_dim, act_dim, a.critic_hidden).to(device)
    return SequenceTD3BC(
        actor, critic, burn_in=seq.burn_in, q_term=seq.q_term, alpha=seq.alpha,
        target_action=seq.target_action,
        lr_actor=a.lr_actor, lr_critic=a.lr_critic, gamma=a.gamma, tau=a.tau,
        target_noise=a.target_noise, noise_clip=a.noise_clip, policy_delay=a.policy_delay,
        seed=cfg.run.seed, device=device, precision=cfg.run.precision,
    )  # fmt: skip


def _sequence_buffer(cfg: Config, obs_dim: int, act_dim: int, device) -> EpisodeSequenceBuffer:
    seq = cfg.algo.sequence
    return EpisodeSequenceBuffer(
        obs_dim, act_dim, capacity=cfg.algo.buffer_size, window=seq.window,
        lookahead=seq.lookahead, stride=seq.stride, min_len=seq.min_len,
        seed=SeedStreams(cfg.run.seed).sequence("replay"), device=str(device),
    )  # fmt: skip


def load_trained(
    run_dir: str | Path,
) -> tuple[Config, SequenceTD3BC, EpisodeSequenceBuffer, float]:
    """A sequence run's config, learner, replay buffer and current BC weight, from its last
    checkpoint (the buffer needs ``run.save_buffer``); for analyses such as
    ``spikerl grad-analysis --mode actor``."""
    from .run import RunError, load_run_config

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if cfg.algo.name != "sequence":
        raise RunError(f"{run_dir} is a {cfg.algo.name} run, not a sequence run")
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, "cpu")
    if "data" not in state["buffer"]:
        raise RunError(f"{run_dir}: the checkpoint holds no replay data (run.save_buffer=false)")
    env = _vector_env(cfg, 1)
    obs_dim, act_dim = env.single_observation_space.shape[0], env.single_action_space.shape[0]
    learner = _learner(cfg, obs_dim, act_dim, torch.device("cpu"))
    buffer = _sequence_buffer(cfg, obs_dim, act_dim, "cpu")
    try:
        learner.load_state_dict(state["learner"])
        buffer.load_state_dict(state["buffer"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"{run_dir}: checkpoint does not match its config: {err}") from None
    return cfg, learner, buffer, float(state["schedule"]["bc_weight"])


def _vector_env(cfg: Config, num_envs: int) -> Any:
    """The env id's NumPy batch env with SAME_STEP autoreset (the quadrotor's)."""
    spec = gym.spec(cfg.env.id.rpartition(":")[2])
    if spec.vector_entry_point is None:
        raise ConfigError(
            f"env.id: the sequence method flies many drones through a vector env; "
            f"{cfg.env.id} has no vector_entry_point (use spikerl/Quadrotor-v0)"
        )
    env = gym.make_vec(
        cfg.env.id, num_envs=num_envs, vectorization_mode="vector_entry_point",
        autoreset_mode="SameStep",
    )  # fmt: skip
    if not callable(getattr(env, "set_curriculum", None)) and cfg.env.curriculum_block:
        raise ConfigError(f"env.curriculum_block: {cfg.env.id} has no reward curriculum")
    return env


def _build(cfg: Config, run_dir: Path, device: torch.device) -> _SeqSession:
    configure_process(cfg.run.threads)
    seed_everything(cfg.run.seed)
    seq = cfg.algo.sequence
    env = _vector_env(cfg, seq.num_envs)
    eval_env = _vector_env(cfg, cfg.run.eval_episodes)
    obs_dim, act_dim = env.single_observation_space.shape[0], env.single_action_space.shape[0]
    learner = _learner(cfg, obs_dim, act_dim, device)
    guide = load_guide(seq.guide, obs_dim, act_dim, device)
    if guide is None and (seq.seed_steps or seq.guide_steps or seq.eval_guide_steps):
        raise ConfigError(
            "algo.sequence.guide is '' but seed_steps, guide_steps or eval_guide_steps need a "
            "guide; set them and guide_steps_min to 0 for training without one"
        )
    buffer = _sequence_buffer(cfg, obs_dim, act_dim, device)
    columns = _columns(cfg, learner)
    tb_dir = run_dir / TENSORBOARD_DIR if cfg.run.tensorboard else None
    session = _SeqSession(
        cfg, run_dir, env, eval_env, learner, guide, buffer,
        MetricsWriter(run_dir / METRICS_NAME, columns, tb_dir),
        _Schedule(seq.guide_steps, seq.bc_weight),
        build_slope_schedule(cfg.actor, cfg.run.total_steps // cfg.run.eval_every), device,
    )  # fmt: skip
    session.started = time.perf_counter()
    session.apply_slope()
    return session


def _columns(cfg: Config, learner: SequenceTD3BC) -> list[str]:
    rollout = ("return_mean", "length_mean", "position_error", "crashed")
    return [
        "step", "episodes", "wall_time", "steps_per_sec",
        *(f"eval/{k}" for k in rollout), "eval/return_std",
        *(f"eval_free/{k}" for k in rollout),
        "collect/return_mean", "collect/stored_steps", "collect/env_steps",
        *learner.metric_names,
        "seq/guide_steps", "seq/bc_weight", "snn/slope", "env/curriculum",
        *(f"time/{phase}" for phase in _PHASES),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# The loop


def _seed(s: _SeqSession, what: str, epoch: int) -> int:
    return drone_seed(s.cfg.run.seed, what, epoch)


def drone_seed(run_seed: int, what: str, epoch: int) -> int:
    """The env seed of one collection (``what`` = ``env``) or evaluation (``evaluation``,
    ``epoch`` = -1: the same start states at every evaluation) of a run: fixed per (run seed,
    purpose, epoch); drone ``i`` is reset with it + ``i``."""
    return SeedStreams(run_seed).integer(what) + 100_003 * (epoch + 1)


def _collect(s: _SeqSession, steps: int, guide_steps: int, epoch: int) -> RolloutResult:
    seq = s.cfg.algo.sequence
    started = time.perf_counter()
    rng = np.random.default_rng(_seed(s, "exploration", epoch))
    result = guided_rollouts(
        s.env, s.learner.actor, s.guide, guide_steps, store_steps=steps, min_len=seq.min_len,
        explore_std=seq.explore_std, rng=rng, seed=_seed(s, "env", epoch), device=s.device,
    )  # fmt: skip
    for episode in result.episodes:
        try:
            s.buffer.add_episode(**episode)
        except ValueError as err:  # an episode longer than the whole buffer
            raise ConfigError(f"algo.buffer_size: {err}") from None
    s.schedule.env_steps += result.env_steps
    s.progress.episodes += len(result.returns)
    s.schedule.phase_seconds["collect"] += time.perf_counter() - started
    return result


def _update(s: _SeqSession) -> None:
    if s.buffer.num_windows == 0:  # online without seed data: nothing stored long enough yet
        return
    started = time.perf_counter()
    for _ in range(s.cfg.algo.sequence.updates):
        batch = s.buffer.sample(s.cfg.algo.batch_size, s.cfg.algo.gamma)
        metrics = s.learner.update(batch, s.schedule.bc_weight)
        if not np.all(np.isfinite(list(metrics.values()))):
            raise TrainingDiverged(
                f"non-finite loss in epoch {len(s.progress.eval_steps) - 1}; stopped. The last "
                f"good checkpoint is kept in {s.run_dir / CHECKPOINT_NAME}"
            )
        s.progress.add_train_metrics(metrics)
    s.schedule.phase_seconds["update"] += time.perf_counter() - started


def _evaluate(s: _SeqSession) -> dict[str, float]:
    """Guided (the guide flies the first W steps) and guide-free evaluation, on the same start
    states at every evaluation (the run seed's evaluation stream)."""
    started = time.perf_counter()
    seq, n, seed = s.cfg.algo.sequence, s.cfg.run.eval_episodes, _seed(s, "evaluation", -1)
    guided = guided_rollouts(
        s.eval_env, s.learner.actor, s.guide, seq.eval_guide_steps, episodes=n, seed=seed,
        device=s.device,
    )  # fmt: skip
    free = guided_rollouts(s.eval_env, s.learner.actor, None, 0, episodes=n, seed=seed,
                           device=s.device)  # fmt: skip
    row = {**guided.metrics("eval"), **free.metrics("eval_free")}
    row["eval/return_std"] = float(np.std(guided.returns))
    s.schedule.phase_seconds["evaluate"] += time.perf_counter() - started
    return row


def evaluate_sequence_policy(
    actor: nn.Module,
    cfg: Config,
    guide_steps: int = 0,
    episodes: int | None = None,
    curriculum: float | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    keep_episodes: bool = False,
) -> tuple[EvalResult, list[np.ndarray]]:
    """A sequence run's actor flown as its in-run evaluations fly it (step 4 of the module
    docs): ``episodes`` drones (None: ``run.eval_episodes``), one episode each, from the start
    states of every in-run evaluation of the run (those of ``seed``'s evaluation stream, None:
    the run's seed); the run's guide (``algo.sequence.guide``) flies the first ``guide_steps``
    steps and the actor is stepped silently meanwhile, then the actor flies. ``guide_steps`` 0
    (the actor alone from a cold state; the guide is not loaded) gives the ``eval_free/*`` rows
    of the run's metrics, ``algo.sequence.eval_guide_steps`` the ``eval/*`` rows, at the same
    ``curriculum`` rho (None: the env's start; epoch ``e``'s rho is the ``env/curriculum`` of
    the row before its own). Returns the :class:`EvalResult` (episodes in drone order, info
    ``position_error`` and ``crashed``; ``observations`` empty) and, with ``keep_episodes``,
    each episode's observations ``[T_i + 1, n]`` (else [])."""
    n = cfg.run.eval_episodes if episodes is None else episodes
    env = _vector_env(cfg, n)
    try:
        if curriculum is not None:
            env.set_curriculum(curriculum)
        obs_dim, act_dim = env.single_observation_space.shape[0], env.single_action_space.shape[0]
        guide = None
        if guide_steps:
            guide = load_guide(cfg.algo.sequence.guide, obs_dim, act_dim, torch.device(device))
            if guide is None:
                raise ConfigError(f"guide_steps={guide_steps} needs a guide; the run has none")
        start = drone_seed(cfg.run.seed if seed is None else seed, "evaluation", -1)
        with evaluation_mode(actor):
            flown = guided_rollouts(env, actor, guide, guide_steps, episodes=n, seed=start,
                                    device=device, keep_episodes=keep_episodes)  # fmt: skip
    finally:
        env.close()
    order = np.argsort(flown.drones, kind="stable")
    paths = [flown.episodes[i]["obs"] for i in order] if keep_episodes else []
    info = {key: np.asarray(getattr(flown, key), float)[order]
            for key in ("position_error", "crashed")}  # fmt: skip
    result = EvalResult(np.asarray(flown.returns)[order], np.asarray(flown.lengths)[order],
                        np.zeros((0, obs_dim), np.float32), info)  # fmt: skip
    return result, paths


def _set_curriculum(s: _SeqSession, epoch: int) -> None:
    """The reward coefficients of ``epoch`` on the training and evaluation drones."""
    if s.cfg.env.curriculum_block:
        rho = _curriculum(s.cfg, epoch)
        s.env.set_curriculum(rho)
        s.eval_env.set_curriculum(rho)


def _log_row(s: _SeqSession, epoch: int, collected: RolloutResult | None) -> dict:
    """Evaluate after ``epoch`` (-1: the initial policy) and write the metrics row, with the
    settings of the next epoch (the rounds have already stepped)."""
    p, cfg = s.progress, s.cfg
    row: dict[str, Any] = {
        "step": (epoch + 1) * cfg.run.eval_every,
        "episodes": p.episodes,
        "wall_time": round(s.wall_time(), 3),
    }
    row.update(_evaluate(s))
    row.update(p.pop_train_means())
    if collected is not None and collected.returns:
        row["collect/return_mean"] = float(np.mean(collected.returns))
        row["collect/stored_steps"] = collected.stored_steps
    row["collect/env_steps"] = s.schedule.env_steps
    row["steps_per_sec"] = round(s.schedule.env_steps / max(s.wall_time(), 1e-9), 2)
    row["seq/guide_steps"], row["seq/bc_weight"] = s.schedule.guide_steps, s.schedule.bc_weight
    if s.cfg.env.curriculum_block:
        row["env/curriculum"] = _curriculum(s.cfg, epoch + 1)
    if s.slope is not None:
        s.slope.update(epoch + 1, row["eval/return_mean"])
        s.apply_slope()
        row["snn/slope"] = s.slope.value()
    row.update({f"time/{k}": round(v, 3) for k, v in s.schedule.phase_seconds.items()})
    s.metrics.write(row)
    p.metrics_rows.append(row)
    p.step = row["step"]
    p.eval_steps.append(p.step)
    p.eval_returns.append(row["eval/return_mean"])
    best = row["eval/return_mean"] > p.best_return
    p.best_return = max(p.best_return, row["eval/return_mean"])
    # best.pt: the actor of the best evaluation (``spikerl evaluate`` flies it guide-free)
    save_policies(s.cfg, s.run_dir, p.step, row["eval/return_mean"], best, s.learner.actor, {})
    return row


def _end_of_epoch(s: _SeqSession, epoch: int) -> None:
    seq = s.cfg.algo.sequence
    if (epoch + 1) % seq.round_epochs == 0:
        s.schedule.guide_steps = max(
            seq.guide_steps_min, s.schedule.guide_steps - seq.guide_steps_drop
        )
        s.schedule.bc_weight *= seq.bc_decay


def _loop(s: _SeqSession, stop: dict[str, bool]) -> RunResult:
    cfg, p = s.cfg, s.progress
    started, first_step = time.perf_counter(), p.step
    _write_status(s, "running", started, first_step)
    bar = tqdm(total=s.epochs, initial=len(p.eval_steps) - 1, unit="epoch",
               disable=not _show_bar(cfg), desc=s.run_dir.name)  # fmt: skip
    status_due = started + STATUS_EVERY
    while len(p.eval_steps) - 1 < s.epochs and not stop["stop"]:
        epoch = len(p.eval_steps) - 1
        _set_curriculum(s, epoch)
        collected = None
        if cfg.algo.sequence.online:
            collected = _collect(s, cfg.run.eval_every, s.schedule.guide_steps, epoch)
        _update(s)
        _end_of_epoch(s, epoch)
        row = _log_row(s, epoch, collected)
        _save(s)
        bar.update(1)
        if not _show_bar(cfg):
            print(_line(s, row), file=sys.stderr, flush=True)
        if time.perf_counter() >= status_due:
            _write_status(s, "running", started, first_step)
            status_due = time.perf_counter() + STATUS_EVERY
    bar.close()
    _write_status(s, FINISHED if _finished(s) else "stopped", started, first_step)
    return _result(s)


def _finished(s: _SeqSession) -> bool:
    return len(s.progress.eval_steps) - 1 >= s.epochs


def _result(s: _SeqSession) -> RunResult:
    p = s.progress
    return RunResult(
        s.run_dir, p.step, list(p.eval_steps), list(p.eval_returns), interrupted=not _finished(s),
        steps_per_sec=s.schedule.env_steps / max(s.wall_time(), 1e-9),
    )  # fmt: skip


def _line(s: _SeqSession, row: dict[str, Any]) -> str:
    return (
        f"{s.run_dir.name} epoch {len(s.progress.eval_steps) - 1}/{s.epochs}, return "
        f"{row['eval/return_mean']:.1f} (guide-free {row['eval_free/return_mean']:.1f}), "
        f"crash rate {row['eval/crashed']:.2f}, L_g {row['seq/guide_steps']}, "
        f"lambda {row['seq/bc_weight']:.3g}"
    )


# --------------------------------------------------------------------------------------------
# Checkpoints


def _checkpoint_state(s: _SeqSession) -> dict[str, Any]:
    return {
        "config": config_to_dict(s.cfg),
        "progress": dataclasses.asdict(s.progress),
        "schedule": dataclasses.asdict(s.schedule),
        "learner": s.learner.state_dict(),
        "buffer": s.buffer.state_dict(include_data=s.cfg.run.save_buffer),
        "slope": s.slope.state_dict() if s.slope is not None else None,
        "env": {},
        "rng": get_rng_state(),
    }


def _save(s: _SeqSession) -> None:
    s.progress.wall_time = s.wall_time()
    save_checkpoint(_checkpoint_state(s), s.run_dir / CHECKPOINT_NAME)


def _restore(s: _SeqSession, state: dict[str, Any]) -> None:
    with _checkpoint_errors():
        s.learner.load_state_dict(state["learner"])
        s.buffer.load_state_dict(state["buffer"])
        set_rng_state(state["rng"])
        s.progress = _Progress(**state["progress"])
        s.schedule = _Schedule(**state["schedule"])
        if s.slope is not None and state.get("slope") is not None:
            s.slope.load_state_dict(state["slope"])
            s.apply_slope()
        s.wall_base, s.started = s.progress.wall_time, time.perf_counter()
    if not state["config"]["algo"]["name"] == "sequence":
        raise CheckpointError("the checkpoint was not written by a sequence run")


def _check_buffer_saved(cfg: Config, state: dict[str, Any]) -> None:
    """A checkpoint without replay data (``run.save_buffer: false``): an offline run has
    nothing left to train on; an online one continues, but not exactly."""
    if "data" in state.get("buffer", {}):
        return
    if not cfg.algo.sequence.online:
        raise CheckpointError(
            "the checkpoint holds no replay data (run.save_buffer=false) and an offline run "
            "collects none: it cannot continue; start it again"
        )
    _note("the checkpoint holds no replay data (run.save_buffer=false): the buffer restarts "
          "empty and the resumed run is not exact")  # fmt: skip


def _start(s: _SeqSession) -> None:
    """Create the folder, seed the buffer with guide episodes, evaluate the initial actor and
    checkpoint; a failure removes the folder again."""
    _create_run_dir(s.cfg, s.run_dir)
    try:
        seq = s.cfg.algo.sequence
        _set_curriculum(s, 0)
        seeded = None
        if seq.seed_steps:
            seeded = _collect(s, seq.seed_steps, WHOLE_EPISODE, -1)
        if seq.seed_steps and s.buffer.num_windows == 0:
            raise ConfigError(
                "no episode reached algo.sequence.min_len while seeding; lower min_len or "
                "check the guide"
            )
        _log_row(s, -1, seeded)
        _save(s)
    except BaseException:
        shutil.rmtree(s.run_dir, ignore_errors=True)
        raise


def train_sequence(cfg: Config, run_dir: Path, device: torch.device, resume: bool) -> RunResult:
    """Build, start or resume, and run the epoch loop (called by
    :func:`~spikerl.experiments.run.train` inside its run-folder lock)."""
    with _stop_on_signals() as stop:  # from the start on (see train)
        session = _build(cfg, run_dir, device)
        abort_if_stopped(stop)
        if resume:
            state = load_checkpoint(run_dir / CHECKPOINT_NAME, "cpu", RESUME_ENTRIES)
            check_checkpoint_config(cfg, state, run_dir)
            _check_buffer_saved(cfg, state)
            _restore(session, state)
            session.metrics.restore(session.progress.metrics_rows)
            if _finished(session):
                settle_finished(session, f"epoch {session.epochs}")
                return _result(session)
        else:
            _start(session)
        record_provenance(run_dir, "resume" if resume else "start", device, torch.get_num_threads())
        try:
            return _loop(session, stop)
        except Exception as err:
            _write_status(session, "failed", time.perf_counter(), session.progress.step,
                          error=f"{type(err).__name__}: {err}")  # fmt: skip
            raise
