"""Many seeds in one process: ``spikerl train --seeds 0-7``.

S runs of one TD3 or SAC config that differ only in ``run.seed`` train side by side: every
seed has the run folder, env, replay buffer, random streams, ``metrics.csv``, ``best.pt`` and
atomic ``checkpoint.pt`` its single-seed run would have (the same
:class:`~spikerl.experiments.run` machinery builds, evaluates and saves each), while the S
learners are stacked into one
:class:`~spikerl.algos.seeds.SeedStackedTD3` (or ``SeedStackedSAC``): the seeds act with one
batched forward and update with one batched step per network.

Each seed's results are those of ``spikerl train --set run.seed=<s>`` up to the summation
order of the batched products (tested), and each seed's checkpoint is in the single-run
format: the set resumes together (``spikerl train --resume DIR1 DIR2 ...``), and any one seed
can also be resumed, evaluated or exported alone.

One loop iteration reads top to bottom: act (all seeds), step every env, store, update (all
seeds), then evaluate and checkpoint every seed on the shared schedule.
"""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from ..algos.seeds import SeedBuffers, SeedStackedSAC, SeedStackedTD3, stack_learners
from ..envs import check_env
from .config import Config, ConfigError, config_diff, config_from_dict, config_to_dict
from .provenance import record_provenance
from .run import (
    STATUS_EVERY,
    RunError,
    RunResult,
    TrainingDiverged,
    _build_session,
    _check_new_run_dir,
    _check_resumable,
    _env_step,
    _evaluate_and_log,
    _note,
    _progress_bar,
    _require_finite,
    _resume,
    _run_result,
    _save,
    _Session,
    _show_bar,
    _start,
    _stop_on_signals,
    _train_loop,
    _write_status,
    abort_if_stopped,
    already_finished,
    clear_interrupted_writes,
    note_precision,
    resolve_device,
    restarts,
)
from .runlock import run_lock
from .status import FINISHED

__all__ = ["check_seed_batching", "seed_configs", "train_seeds"]

Stacked = SeedStackedTD3 | SeedStackedSAC


def seed_configs(cfg: Config, seeds: list[int]) -> list[Config]:
    """``cfg`` once per seed (``run.seed`` set; a ``run.name`` gains ``-s<seed>``)."""
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: {seeds} repeats a seed")
    configs = []
    for seed in seeds:
        raw = config_to_dict(cfg)
        raw["run"]["seed"] = seed
        if cfg.run.name:
            raw["run"]["name"] = f"{cfg.run.name}-s{seed}"
        configs.append(config_from_dict(raw))
    return configs


def check_seed_batching(cfgs: list[Config]) -> None:
    """Refuse, with the key and the reason, what the stacked learner cannot run."""
    cfg = cfgs[0]
    if cfg.algo.name not in ("td3", "sac"):
        raise ConfigError(
            f"algo.name: many seeds in one process trains td3 (ANN or spiking actor, Polyak or "
            f"proxy target) or sac, not {cfg.algo.name!r}; run its seeds with spikerl sweep"
        )
    if cfg.actor.slope_schedule.kind == "adaptive":
        raise ConfigError(
            "actor.slope_schedule.kind: the adaptive slope follows each seed's own return, but "
            "stacked seeds share one slope; use fixed or stepped, or spikerl sweep"
        )
    if cfg.run.compile:
        raise ConfigError("run.compile: compiled neuron loops are not used with --seeds; set false")
    plain = [_without_seed(c) for c in cfgs]  # runs of other settings first: the likelier slip
    for cfg_i, p in zip(cfgs[1:], plain[1:], strict=True):
        if p != plain[0]:
            raise ConfigError(
                f"--resume: the runs differ in more than run.seed: "
                f"{config_diff(plain[0], p, f'seed {cfg_i.run.seed}')}; resume each alone"
            )
    seeds = [c.run.seed for c in cfgs]
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise ConfigError(f"--resume: seed {twice[0]} is named twice; give each seed's run once")


def _without_seed(cfg: Config) -> dict:
    raw = config_to_dict(cfg)
    raw["run"].pop("seed")
    raw["run"].pop("name")
    return raw


def _check_folders(
    cfgs: list[Config], dirs: list[Path], resume: bool, overwrite: bool
) -> set[Path]:
    """Check every folder before any is written (a refusal names every folder in the way); on
    resume, then clear each one's temporary files of an interrupted write. Returns the folders
    to start again on resume: seeds whose start was killed before their first checkpoint (the
    others' resume brings them along, :func:`_catch_up`)."""
    restart = {d for d in dirs if resume and restarts(d)}
    refused = []
    for cfg, run_dir in zip(cfgs, dirs, strict=True):
        try:
            if run_dir in restart:
                continue
            if resume:
                _check_resumable(cfg, run_dir)
            else:
                _check_new_run_dir(run_dir, overwrite)
        except RunError as err:
            refused.append((run_dir, err))
    if refused:
        others = ", ".join(str(d) for d, _ in refused[1:])
        raise RunError(f"{refused[0][1]}" + (f" (also: {others})" if others else ""))
    if resume:
        for run_dir in dirs:
            clear_interrupted_writes(run_dir)
    return restart


def train_seeds(
    cfgs: list[Config],
    runs_root: str | Path = "runs",
    resume: bool = False,
    overwrite: bool = False,
    run_dirs: list[Path] | None = None,
) -> list[RunResult]:
    """Train (or ``resume``) the seeds' configs together; one :class:`RunResult` per seed.

    ``cfgs`` come from :func:`seed_configs` (or the saved configs of the folders to resume);
    ``run_dirs`` default to ``runs_root/<run_name>``. Every folder is locked for the call and
    checked before any is written; a start that fails removes the folders it created.
    """
    check_seed_batching(cfgs)
    if resume and overwrite:
        raise RunError("--resume continues runs and --overwrite replaces them; choose one")
    dirs = run_dirs or [Path(runs_root) / c.run_name for c in cfgs]
    if len({Path(d).resolve() for d in dirs}) != len(dirs):
        raise RunError("the same run folder is named twice; give each seed's folder once")
    device = resolve_device(cfgs[0].run.device)
    check_env(cfgs[0].env.id)
    note_precision(cfgs[0], device)
    with ExitStack() as locks:
        for run_dir in dirs:
            lock = locks.enter_context(run_lock(run_dir))
            if lock.took_over is not None:
                _note(f"took over the lock of {run_dir} from process {lock.took_over}")
        restart = _check_folders(cfgs, dirs, resume, overwrite)
        with _stop_on_signals() as stop:  # from the start on (see train)
            sessions = [_build_session(c, d, device) for c, d in zip(cfgs, dirs, strict=True)]
            abort_if_stopped(stop)
            _open(sessions, resume, restart)
            if resume and all([already_finished(s) for s in sessions]):  # one step for all
                return [_run_result(s, True, {}) for s in sessions]
            for run_dir in dirs:
                event = "resume" if resume and run_dir not in restart else "start"
                record_provenance(run_dir, event, device, torch.get_num_threads())
            try:
                if not _catch_up(sessions, stop):
                    return [_run_result(s, False, {}) for s in sessions]
                learner = stack_learners([s.learner for s in sessions], cfgs[0])
                _share_slope(sessions, learner)
                return _seeds_loop(sessions, learner, stop)
            except Exception as err:
                _record_failure(sessions, err)
                raise


def _record_failure(sessions: list[_Session], err: Exception) -> None:
    """Every seed ``failed`` with ``err``; but when one seed diverged, only that one, and the
    others ``stopped`` (their last checkpoints are good; a note says how to resume them)."""
    diverged = err.run_dir if isinstance(err, TrainingDiverged) else None
    error = f"{type(err).__name__}: {err}"
    healthy = [s for s in sessions if diverged is not None and s.run_dir != diverged]
    for s in sessions:
        if any(s is h for h in healthy):  # stopped where its last checkpoint is
            s.progress.step -= s.progress.step % s.cfg.run.checkpoint_interval
            _write_status(s, "stopped", time.perf_counter(), s.progress.step)
        else:
            _write_status(s, "failed", time.perf_counter(), s.progress.step, error=error)
    if healthy:
        folders = " ".join(str(s.run_dir) for s in healthy)
        _note(f"{diverged.name} diverged; the other seeds are stopped at their last checkpoints: "
              f"continue them without it with: spikerl train --resume {folders}")  # fmt: skip


def _open(sessions: list[_Session], resume: bool, restart: set[Path]) -> None:
    """Resume every seed but those in ``restart``, or start every seed; a failed start removes
    the folders started before it."""
    if resume:
        for s in sessions:
            if s.run_dir in restart:
                _start(s)
            else:
                _resume(s)
        return
    started: list[_Session] = []
    try:
        for s in sessions:
            _start(s)
            started.append(s)
    except BaseException:
        for s in started:
            shutil.rmtree(s.run_dir, ignore_errors=True)
        raise


def _catch_up(sessions: list[_Session], stop: dict[str, bool]) -> bool:
    """Bring every seed to the step of the furthest one before stacking them: a kill between
    two seeds' checkpoint writes leaves the set at two consecutive checkpoint steps, and the
    seeds behind continue alone (their single-run loop, which checkpoints when it reaches that
    step or stops). False when a stop signal came first."""
    target = max(s.progress.step for s in sessions)
    for s in sessions:
        if s.progress.step < target:
            _note(f"{s.run_dir.name} is at step {s.progress.step}; catching up to {target} alone")
            _train_loop(s, stop, until=target)
    return all(s.progress.step == target for s in sessions)


def _share_slope(sessions: list[_Session], learner: Stacked) -> None:
    """The stacked actor's surrogate slope: the seeds' schedule value (fixed or stepped, so
    equal for every seed)."""
    if sessions[0].slope is not None:
        learner.actor.net.set_surrogate_slope(sessions[0].slope.value())


def _sync_members(sessions: list[_Session], learner: Stacked) -> None:
    """Copy each seed's slice of the stacked learner into its own learner (what evaluation,
    ``best.pt`` and ``checkpoint.pt`` read)."""
    for i, s in enumerate(sessions):
        s.learner.load_state_dict(learner.member_state_dict(i))


def _seeds_loop(
    sessions: list[_Session], learner: Stacked, stop: dict[str, bool]
) -> list[RunResult]:
    cfg, lead = sessions[0].cfg, sessions[0].progress
    buffers = SeedBuffers([s.buffer for s in sessions])
    started, first_step = time.perf_counter(), lead.step
    for s in sessions:
        _write_status(s, "running", started, first_step)
    show_bar = _show_bar(cfg)
    bar = _progress_bar(cfg, lead.step, f"{len(sessions)} seeds, steps/s each")
    checkpoint_every = cfg.run.checkpoint_interval
    status_due = started + STATUS_EVERY
    while lead.step < cfg.run.total_steps and not stop["stop"]:
        _step_all(sessions, learner, buffers)
        bar.update(1)
        step = lead.step
        evaluate = step % cfg.run.eval_every == 0
        if evaluate:
            _sync_members(sessions, learner)
            returns = [_evaluate_and_log(s, started, step - first_step, log_lines=not show_bar)[0]
                       for s in sessions]  # fmt: skip
            bar.set_postfix(eval_return=f"{np.mean(returns):.1f} (mean)", refresh=False)
            _share_slope(sessions, learner)
        # decided after the evaluation, so a signal that arrived during it checkpoints too
        if step % checkpoint_every == 0 or step == cfg.run.total_steps or stop["stop"]:
            if not evaluate:
                _sync_members(sessions, learner)
            for s in sessions:
                _save(s)
        if time.perf_counter() >= status_due:
            for s in sessions:
                _write_status(s, "running", started, first_step)
            status_due = time.perf_counter() + STATUS_EVERY
    bar.close()
    finished = lead.step >= cfg.run.total_steps
    for s in sessions:
        _write_status(s, FINISHED if finished else "stopped", started, first_step)
    return [_run_result(s, finished, {}) for s in sessions]


def _step_all(sessions: list[_Session], learner: Stacked, buffers: SeedBuffers) -> None:
    """One env step of every seed (acting together after the warm-up) and one update."""
    cfg, step = sessions[0].cfg, sessions[0].progress.step
    actions: list[np.ndarray | None] = [None] * len(sessions)
    if step >= cfg.algo.learning_starts:
        actions = list(learner.act(np.stack([s.obs for s in sessions]), explore=True))
    for s, action in zip(sessions, actions, strict=True):
        _env_step(s, action)
    if step >= cfg.algo.learning_starts and len(buffers) >= cfg.algo.batch_size:
        metrics = learner.update(buffers)
        for i, s in enumerate(sessions):
            own = {key: values[i] for key, values in metrics.items()}
            _require_finite("loss", list(own.values()), s)
            s.progress.add_train_metrics(own)
    for s in sessions:
        s.progress.step += 1
