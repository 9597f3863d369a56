"""Training runs: run directory, metrics, checkpoints, resume and the training loop.

``train(cfg, runs_root)`` writes ``runs/<name>/`` with ``config.yaml`` (the resolved config),
``metrics.csv`` (one row per evaluation), ``checkpoint.pt`` (the full training state, written
atomically at every evaluation), ``provenance.yaml`` (spikerl version and git revision, library
versions, CPU, threads and device of every session that wrote the run) and, optionally,
TensorBoard logs under ``tb/``. A run killed at
any point resumes from its last checkpoint with ``train(cfg, ..., resume=True)``; with the
replay buffer saved it continues exactly as if it had never stopped.

The loop (:func:`_train_loop`) reads top to bottom: act, step, store, update, evaluate.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from ..algos import Learner, build_learner
from ..atomic import remove_stale_temporaries, temporary_of, temporary_path
from ..buffers import ReplayBuffer
from ..envs import (
    ObservationNormalizer,
    check_env,
    env_dims,
    find_wrapper,
    get_env_state,
    make_env,
    set_env_state,
)
from ..errors import MissingDependencyError, SpikerlError, UsageError
from ..nets import build_slope_schedule, diagnostic_names, spiking_diagnostics
from ..seeding import SeedStreams
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
from .config import Config, ConfigError, config_diff, config_from_dict, config_to_dict
from .evaluation import eval_info_keys, evaluate_policy, summarize_curve
from .process import bfloat16_note, configure_process
from .provenance import PROVENANCE_NAME, record_provenance
from .runlock import run_lock
from .status import FINISHED, STATUS_NAME, read_status, write_status

__all__ = [
    "RunError",
    "RunResult",
    "TrainingDiverged",
    "load_run_config",
    "resolve_device",
    "save_policies",
    "train",
]

CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME = "checkpoint.pt", "config.yaml", "metrics.csv"
BEST_NAME = "best.pt"
#: With ``run.keep_policies``: every evaluation's policy, ``policies/step-<N>.pt``.
POLICIES_DIR = "policies"
#: With ``run.tensorboard``: the TensorBoard event files.
TENSORBOARD_DIR = "tb"
#: What the trainer writes atomically in its run folder (glob patterns): only their temporary
#: files are cleared on resume (:func:`clear_interrupted_writes`)
TRAINER_FILES = (CHECKPOINT_NAME, METRICS_NAME, BEST_NAME, f"{POLICIES_DIR}/step-*.pt",
                 STATUS_NAME, PROVENANCE_NAME)  # fmt: skip
#: Every entry that training makes at the top of a run folder: what ``--overwrite`` replaces
TRAINER_ENTRIES = frozenset({CONFIG_NAME, CHECKPOINT_NAME, METRICS_NAME, BEST_NAME, POLICIES_DIR,
                             TENSORBOARD_DIR, STATUS_NAME, PROVENANCE_NAME})  # fmt: skip
STATUS_EVERY = 2.0  # seconds between live status.json writes


class RunError(SpikerlError, RuntimeError):
    """The run directory cannot be used as asked (exists, missing, mismatched)."""


class TrainingDiverged(SpikerlError, RuntimeError):
    """A NaN/Inf appeared in observations, rewards or losses; the last good checkpoint is kept
    (``run_dir``: the run that diverged, None where not known)."""

    def __init__(self, message: str, run_dir: Path | None = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


@dataclass
class RunResult:
    """What a finished (or interrupted) run reports."""

    run_dir: Path
    steps: int
    eval_steps: list[int] = field(default_factory=list)
    eval_returns: list[float] = field(default_factory=list)
    interrupted: bool = False
    steps_per_sec: float = float("nan")  # env steps over training wall time, all sessions
    last_diagnostics: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, float]:
        return summarize_curve(self.eval_returns)


@dataclass
class _Progress:
    """Counters of the loop that a checkpoint must restore."""

    step: int = 0
    episodes: int = 0
    episode_return: float = 0.0
    episode_length: int = 0
    finished_returns: list[float] = field(default_factory=list)
    train_sums: dict[str, float] = field(default_factory=dict)
    train_counts: dict[str, int] = field(default_factory=dict)
    eval_steps: list[int] = field(default_factory=list)
    eval_returns: list[float] = field(default_factory=list)
    best_return: float = float("-inf")
    wall_time: float = 0.0  # seconds of training up to the last checkpoint, over all sessions
    metrics_rows: list[dict[str, Any]] = field(default_factory=list)

    def add_train_metrics(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.train_sums[key] = self.train_sums.get(key, 0.0) + value
            self.train_counts[key] = self.train_counts.get(key, 0) + 1

    def pop_train_means(self) -> dict[str, float]:
        means = {k: self.train_sums[k] / self.train_counts[k] for k in self.train_sums}
        if self.finished_returns:
            means["train/episode_return"] = float(np.mean(self.finished_returns))
        self.train_sums, self.train_counts, self.finished_returns = {}, {}, []
        return means


# --------------------------------------------------------------------------------------------
# Run directory and metrics


def resolve_device(name: str, key: str = "run.device") -> torch.device:
    """``auto`` picks CUDA when available; an unavailable CUDA device is a clear error naming
    ``key`` (the option or argument that gave ``name``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{key}: {name!r} is not a torch device (cpu, cuda, auto)") from None
    if device.type == "cpu":
        return device
    checks = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if device.type not in checks or not checks[device.type]():
        raise ConfigError(
            f"{key}: {name!r} is not available on this machine; use cpu, auto"
            + (", cuda or cuda:N" if torch.cuda.is_available() else "")
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"{key}: {name!r}, but this machine has {torch.cuda.device_count()} CUDA devices"
        )
    return device


def load_run_config(run_dir: str | Path) -> Config:
    """The resolved config saved in a run directory (every section, as the run wrote it; an
    empty file or one without a mapping is refused, not read as the defaults)."""
    path = Path(run_dir) / CONFIG_NAME
    if not Path(run_dir).exists():
        raise RunError(f"{run_dir} does not exist")
    if Path(run_dir).is_file() and (Path(run_dir).parent / CONFIG_NAME).is_file():
        raise RunError(f"{run_dir} is a file of a run; give its folder {Path(run_dir).parent}")
    if not path.is_file():
        raise RunError(f"{run_dir} is not a spikerl run directory (no {CONFIG_NAME})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not data:
            found = "empty" if not data else f"a {type(data).__name__}, not a mapping"
            raise RunError(f"{path} is corrupt (it is {found}); the run cannot be read")
        return config_from_dict(data)
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        reason = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else "not valid YAML"
        raise RunError(f"{path} is corrupt ({reason}); the run cannot be read") from None
    except ConfigError as err:
        raise RunError(f"{path} is not a valid spikerl config: {err}") from None


def _check_resumable(cfg: Config, run_dir: Path) -> None:
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise RunError(
            f"cannot resume: no checkpoint in {run_dir} (if its start was stopped before the "
            "first checkpoint, the command without --resume starts it again)"
        )
    saved, given = config_to_dict(load_run_config(run_dir)), config_to_dict(cfg)
    if saved != given:
        raise RunError(
            f"cannot resume {run_dir}: its config.yaml differs from the given one: "
            f"{config_diff(saved, given, 'given')}"
        )


#: ``run.*`` settings that a resume may change (edited in the run's ``config.yaml``): where
#: and how the run executes and what it records, and ``total_steps`` to extend a run (a
#: schedule tied to the budget, the stepped slope or the reward curriculum, follows the new one).
RESUME_MAY_CHANGE = ("name", "keep_policies", "tensorboard", "device", "replay_on_device",
                     "threads", "progress", "checkpoint_every", "save_buffer",
                     "total_steps")  # fmt: skip


def check_checkpoint_config(cfg: Config, state: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume when the run's ``config.yaml`` was edited, after the checkpoint was
    written, in anything but :data:`RESUME_MAY_CHANGE` (another guide, learning rate or budget
    would silently mix two runs in one folder). Both sides are compared as this spikerl reads
    them, so keys added since the checkpoint take their defaults on both; a saved config this
    spikerl cannot read is not compared (the parts that matter are checked as they load)."""
    try:
        saved_cfg = config_from_dict(state.get("config") or {})
    except ConfigError:
        return
    saved, given = what_it_learns(config_to_dict(saved_cfg)), what_it_learns(config_to_dict(cfg))
    if saved != given:
        raise RunError(
            f"cannot resume {run_dir}: its config.yaml was changed after the checkpoint was "
            f"written: {config_diff(saved, given, 'config.yaml')}; put the values back (or "
            "start a new run with the new ones)"
        )
    if saved_cfg.run.total_steps != cfg.run.total_steps:
        _note_new_budget(saved_cfg.run.total_steps, cfg, state["progress"]["step"])


def _note_new_budget(old: int, cfg: Config, step: int) -> None:
    """Say what a resume with another ``run.total_steps`` changes from the next epoch on."""
    if cfg.run.total_steps <= step:
        _note(f"run.total_steps {old} -> {cfg.run.total_steps}: the checkpoint is at step "
              f"{step}, at or past the new budget; nothing more to train")  # fmt: skip
        return
    paced = []
    if cfg.env.curriculum_block:
        paced.append("the reward curriculum")
    if cfg.actor.kind != "ann" and cfg.actor.slope_schedule.kind == "stepped":
        paced.append("the stepped slope")
    follows = f"; {' and '.join(paced)} now pace{'s' * (len(paced) == 1)} to it" if paced else ""
    _note(f"run.total_steps {old} -> {cfg.run.total_steps}: the run trains to the new budget"
          f"{follows}")  # fmt: skip


def what_it_learns(data: dict[str, Any]) -> dict[str, Any]:
    """A config mapping without the ``run.*`` keys of :data:`RESUME_MAY_CHANGE`: what a run
    learns from, its budget aside (``run.total_steps`` paces the reward curriculum, the stepped
    slope and a TD3/SAC buffer smaller than ``algo.buffer_size``; a resume may extend it)."""
    run = {k: v for k, v in data["run"].items() if k not in RESUME_MAY_CHANGE}
    return {**data, "run": run}


def clear_interrupted_writes(run_dir: Path) -> None:
    """Remove what a killed trainer left in ``run_dir``: the temporary files of its own files
    (:data:`TRAINER_FILES`), e.g. a half-written checkpoint
    (:func:`~spikerl.atomic.remove_stale_temporaries`), with a note naming them. Called with
    the run folder's lock held, so no other trainer is writing them."""
    removed = remove_stale_temporaries(run_dir, TRAINER_FILES)
    if removed:
        names = ", ".join(str(path.relative_to(run_dir)) for path, _ in removed)
        mib = sum(size for _, size in removed) / 2**20
        _note(f"removed the temporary files of an interrupted write ({mib:.1f} MiB): {names}")


def _check_new_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse an existing folder, unless ``overwrite`` of a spikerl run, or a run whose start
    was killed before its first checkpoint (nothing to resume; the same command starts it
    again, with a note). (An unusable parent, a file or not writable, has already been refused
    by :func:`run_lock`, which creates the lock file in it.)"""
    if run_dir.exists() or run_dir.is_symlink():
        if not overwrite:
            if restarts(run_dir):
                return
            raise RunError(
                f"run directory {run_dir} already exists; pass --overwrite (overwrite=True) to "
                "replace it or --resume (resume=True) to continue it"
            )
        if not (run_dir / CONFIG_NAME).is_file():
            raise RunError(f"refusing to overwrite {run_dir}: it is not a spikerl run directory")
        others = entries_not_from_training(run_dir)
        if others:
            raise RunError(
                f"refusing to overwrite {run_dir}: it also holds {', '.join(others)}, which "
                "training did not write (the output of another command, e.g. spikerl convert, "
                "or your own files); move or delete them first"
            )


def restarts(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a start killed before its first checkpoint
    (:func:`_start_never_finished`), to start again: a note says so."""
    if not _start_never_finished(run_dir):
        return False
    _note(f"{run_dir} was stopped before its first checkpoint; starting it again")
    return True


def _start_never_finished(run_dir: Path) -> bool:
    """A run folder with its config but no checkpoint, holding nothing but training's own
    entries: what a start killed (SIGKILL, power loss) before its first checkpoint leaves."""
    return (
        run_dir.is_dir()
        and (run_dir / CONFIG_NAME).is_file()
        and not (run_dir / CHECKPOINT_NAME).exists()
        and not entries_not_from_training(run_dir)
    )


def entries_not_from_training(run_dir: Path) -> list[str]:
    """The names at the top of ``run_dir`` that training did not make (not in
    :data:`TRAINER_ENTRIES`, nor a temporary file of one), folders with a trailing ``/``.
    ``--overwrite`` refuses a folder that has any: the outputs of other commands (a
    ``converted/`` policy, ``energy.json``, a ``report/``) or a user's notes would be deleted
    with the run."""
    others = []
    for entry in sorted(run_dir.iterdir()):
        name = entry.name
        if name in TRAINER_ENTRIES or temporary_of(name) in TRAINER_ENTRIES:
            continue
        others.append(f"{name}/" if entry.is_dir() and not entry.is_symlink() else name)
    return others


def _create_run_dir(cfg: Config, run_dir: Path) -> None:
    """Create the folder (replacing one that :func:`_check_new_run_dir` let through; through a
    symbolic link, the folder it names, which keeps the link and the folder's lock) and write
    its ``config.yaml``."""
    real = run_dir.resolve()
    if real.exists():
        shutil.rmtree(real)
    try:
        real.mkdir(parents=True)
        (run_dir / CONFIG_NAME).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    except OSError as err:
        raise RunError(f"cannot create run directory {run_dir}: {err.strerror or err}") from None


class MetricsWriter:
    """CSV of evaluation rows (fixed columns), plus optional TensorBoard.

    The rows also live in the checkpoint, so on resume the CSV is rewritten from it: a file cut
    mid-row by a kill, or damaged, never keeps a half-written number.
    """

    def __init__(self, path: Path, columns: list[str], tensorboard_dir: Path | None) -> None:
        self.path, self.columns, self.tensorboard_dir = path, columns, tensorboard_dir
        self.tb: Any = None
        if tensorboard_dir is not None:
            try:
                import torch.utils.tensorboard  # noqa: F401
            except ImportError:
                raise MissingDependencyError(
                    "run.tensorboard: TensorBoard is not installed; pip install 'spikerl[tb]'"
                ) from None

    def damage(self, rows: list[dict[str, Any]]) -> str | None:
        """Why the CSV on disk disagrees with ``rows`` up to their last step, or None."""
        if not self.path.exists():
            return "it is missing" if rows else None
        raw = self.path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "it is not UTF-8 text"
        if text and not text.endswith("\n"):
            return "its last row was cut off"
        on_disk = list(csv.DictReader(text.splitlines()))
        last = rows[-1]["step"] if rows else -1
        kept = [r for r in on_disk if r.get("step", "").isdigit() and int(r["step"]) <= last]
        expected = [{c: _csv_text(row.get(c, "")) for c in self.columns} for row in rows]
        return None if kept == expected else "its rows differ from the checkpoint's"

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Replace the CSV by ``rows`` (atomically: temp file + rename)."""
        tmp = temporary_path(self.path)
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """On resume: rewrite the CSV from the checkpoint's ``rows``, with a note naming the
        damage when the file on disk disagreed (cut mid-row by a kill, edited, missing)."""
        damage = self.damage(rows)
        if damage is not None:
            _note(f"{self.path}: {damage}; rewritten from the checkpoint")
        self.rewrite(rows)

    def write(self, row: dict[str, Any]) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, restval="")
            if new:
                writer.writeheader()
            writer.writerow(row)
        self._tensorboard(row)

    def _tensorboard(self, row: dict[str, Any]) -> None:
        if self.tensorboard_dir is None:
            return
        if self.tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.tensorboard_dir))
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float) and math.isfinite(value):
                self.tb.add_scalar(key, value, row["step"])
        self.tb.flush()


def _csv_text(value: Any) -> str:
    """A value as ``csv`` writes it (for comparing rows read back from disk)."""
    return "" if value is None else str(value)


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Interruption


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, bool]]:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and stops after the current step.

    A second Ctrl-C (SIGINT) stops at once. A repeated SIGTERM does not: a sweep child asks
    for SIGTERM when its driver dies, and Linux sends that signal again each time the orphan
    is handed from one of the dying driver's threads to the next, so several may arrive for
    one death and the checkpoint must still be written."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------------------------
# Training


@dataclass
class _Session:
    """Everything the loop touches, built once per (re)start."""

    cfg: Config
    run_dir: Path
    env: Any
    learner: Learner
    buffer: ReplayBuffer
    device: torch.device
    metrics: MetricsWriter
    progress: _Progress
    obs: np.ndarray
    started: float = 0.0  # perf_counter at the start of this session
    wall_base: float = 0.0  # training seconds of earlier sessions
    slope: SlopeSchedule | None = None  # the spiking actor's surrogate-slope schedule

    def apply_slope(self) -> None:
        """Set the schedule's current slope on every spiking layer of the actor."""
        if self.slope is not None:
            self.learner.actor.set_surrogate_slope(self.slope.value())

    def wall_time(self) -> float:
        """Seconds of training over all sessions of the run, now."""
        return self.wall_base + time.perf_counter() - self.started


def _build_session(cfg: Config, run_dir: Path, device: torch.device) -> _Session:
    configure_process(cfg.run.threads)
    seed_everything(cfg.run.seed)  # for third-party code only: spikerl uses its own streams
    streams = SeedStreams(cfg.run.seed)
    env = make_env(cfg.env.id, normalize_obs=cfg.env.normalize_obs)
    env.action_space.seed(streams.integer("action_space"))
    obs_dim, act_dim = env_dims(env)
    learner = build_learner(cfg, obs_dim, act_dim, device)
    capacity = min(cfg.algo.buffer_size, cfg.run.total_steps)
    replay_seed = streams.sequence("replay")
    buffer = ReplayBuffer(
        obs_dim, act_dim, capacity, replay_seed, str(device), on_device=cfg.run.replay_on_device
    )
    columns = [
        "step",
        "episodes",
        "wall_time",
        "steps_per_sec",
        "eval/return_mean",
        "eval/return_std",
        "eval/length_mean",
        *(f"eval/{key}" for key in eval_info_keys(cfg.env.id)),
        "train/episode_return",
        *learner.metric_names,
        *diagnostic_names(learner.actor),
    ]
    slope = build_slope_schedule(cfg.actor, cfg.run.total_steps // cfg.run.eval_every)
    if slope is not None:
        columns.append("snn/slope")
    if cfg.env.curriculum_block:
        if not callable(getattr(env.unwrapped, "set_curriculum", None)):
            raise ConfigError(
                f"env.curriculum_block: {cfg.env.id} has no reward curriculum "
                "(set_curriculum); set it to 0"
            )
        columns.append("env/curriculum")
    tb_dir = run_dir / TENSORBOARD_DIR if cfg.run.tensorboard else None
    metrics = MetricsWriter(run_dir / METRICS_NAME, columns, tb_dir)
    obs, _ = env.reset(seed=streams.integer("env"))
    session = _Session(
        cfg, run_dir, env, learner, buffer, device, metrics, _Progress(), obs, time.perf_counter()
    )
    session.slope = slope
    session.apply_slope()
    return session


def _checkpoint_state(s: _Session) -> dict[str, Any]:
    p = s.progress
    return {
        "config": config_to_dict(s.cfg),
        "progress": dataclasses.asdict(p),
        "obs": torch.from_numpy(np.asarray(s.obs).copy()),
        "learner": s.learner.state_dict(),
        "buffer": s.buffer.state_dict(include_data=s.cfg.run.save_buffer),
        "slope": s.slope.state_dict() if s.slope is not None else None,
        "env": get_env_state(s.env),
        "rng": get_rng_state(),
    }


@contextmanager
def _checkpoint_errors() -> Iterator[None]:
    """Turn the errors of restoring a checkpoint into one-line :class:`CheckpointError`s."""
    try:
        yield
    except KeyError as err:  # a KeyError's message is its repr: unwrap it
        raise CheckpointError(f"cannot resume from this checkpoint: {err.args[0]}") from None
    except (RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint does not match this run's config: {err}") from None


def _best_policy_state(
    cfg: Config, step: int, eval_return: float, actor: torch.nn.Module, env: dict[str, Any]
) -> dict[str, Any]:
    """The contents of ``best.pt``: config, step, return and the actor's weights (what
    :func:`~spikerl.experiments.policy.load_policy` reads), plus ``env`` (the normaliser)."""
    return {
        "config": config_to_dict(cfg),
        "progress": {"step": step},
        "eval_return": eval_return,
        "learner": {"actor": actor.state_dict()},
        "env": env,
    }


def _restore(s: _Session, state: dict[str, Any]) -> None:
    with _checkpoint_errors():
        s.learner.load_state_dict(state["learner"])
        s.buffer.load_state_dict(state["buffer"])
        set_env_state(s.env, state["env"])
        set_rng_state(state["rng"])
        s.progress = _Progress(**state["progress"])
        if s.slope is not None and state.get("slope") is not None:
            s.slope.load_state_dict(state["slope"])
            s.apply_slope()
        s.obs = state["obs"].numpy()
        # checkpoints older than the time and row records: training time unknown
        known = "wall_time" in state["progress"]
        s.wall_base = s.progress.wall_time if known else float("nan")
        s.started = time.perf_counter()


def _save(s: _Session) -> None:
    s.progress.wall_time = s.wall_time()
    save_checkpoint(_checkpoint_state(s), s.run_dir / CHECKPOINT_NAME)


def save_policies(
    cfg: Config,
    run_dir: Path,
    step: int,
    eval_return: float,
    best: bool,
    actor: torch.nn.Module,
    env: dict[str, Any],
) -> None:
    """After an evaluation: ``best.pt`` when its return is the best so far (loadable by
    ``evaluate``), and with ``run.keep_policies`` the same contents as
    ``policies/step-<N>.pt``, the step zero-padded to 9 digits so the names sort by step."""
    if not (best or cfg.run.keep_policies):
        return
    state = _best_policy_state(cfg, step, eval_return, actor, env)
    if best:
        save_checkpoint(state, run_dir / BEST_NAME)
    if cfg.run.keep_policies:
        save_checkpoint(state, run_dir / POLICIES_DIR / f"step-{step:09d}.pt")


def _require_finite(what: str, values: Any, s: _Session) -> None:
    if not np.all(np.isfinite(values)):
        raise TrainingDiverged(
            f"non-finite {what} at env step {s.progress.step}; stopped. The last good checkpoint "
            f"is kept in {s.run_dir / CHECKPOINT_NAME}",
            s.run_dir,
        )


def _evaluate_and_log(
    s: _Session, since: float, steps_done: int, log_lines: bool
) -> tuple[float, dict]:
    """Evaluate, write a metrics row (CSV, checkpointed rows, best policy) and, with
    ``log_lines``, print it as one plain line; ``steps_done`` env steps took since ``since``."""
    cfg, p = s.cfg, s.progress
    norm = find_wrapper(s.env, ObservationNormalizer)
    result = evaluate_policy(
        s.learner.actor,
        cfg.env.id,
        cfg.run.seed,
        cfg.run.eval_episodes,
        normalizer_state=norm.state_dict() if norm is not None else None,
        device=s.device,
        curriculum=_curriculum(cfg, len(p.eval_steps) - 1) if cfg.env.curriculum_block else None,
    )
    elapsed = time.perf_counter() - since
    row: dict[str, Any] = {
        "step": p.step,
        "episodes": p.episodes,
        "wall_time": round(s.wall_time(), 3),
        "steps_per_sec": round(steps_done / elapsed, 2) if steps_done else "",
    }
    row.update(result.metrics())
    row.update(p.pop_train_means())
    diagnostics: dict[str, float] = {}
    if diagnostic_names(s.learner.actor):
        obs = torch.as_tensor(result.observations, dtype=torch.float32, device=s.device)
        diagnostics = spiking_diagnostics(s.learner.actor, obs)
        row.update(diagnostics)
    if cfg.env.curriculum_block:  # rho for the epoch that starts now (training and evaluation)
        row["env/curriculum"] = rho = _curriculum(cfg, len(p.eval_steps))
        s.env.unwrapped.set_curriculum(rho)
    if s.slope is not None:  # epoch = evaluations before this one; k holds until the next
        s.slope.update(len(p.eval_steps), row["eval/return_mean"])
        s.apply_slope()
        row["snn/slope"] = s.slope.value()
    s.metrics.write(row)
    p.metrics_rows.append(row)
    p.eval_steps.append(p.step)
    p.eval_returns.append(row["eval/return_mean"])
    best = row["eval/return_mean"] > p.best_return
    p.best_return = max(p.best_return, row["eval/return_mean"])
    normalizer = {k: v for k, v in get_env_state(s.env).items() if k == "normalizer"}
    save_policies(
        cfg, s.run_dir, p.step, row["eval/return_mean"], best, s.learner.actor, normalizer
    )
    if log_lines:
        print(_log_line(s.run_dir.name, row, cfg.run.total_steps), file=sys.stderr, flush=True)
    return row["eval/return_mean"], diagnostics


def _curriculum(cfg: Config, epoch: int) -> float:
    """Reward-curriculum progress after evaluation ``epoch`` (-1: before the first): it steps
    every ``env.curriculum_block`` evaluations and reaches 1 in the last of
    ``blocks = ceil(curriculum_end * evaluations / block)`` blocks,
    ``rho = min(1, floor(e / block) / (blocks - 1))`` (arXiv 2510.24461: every 10 epochs; its
    guide recipe reaches 1 at half the budget, ``env.curriculum_end = 0.5``)."""
    if epoch < 0:
        return 0.0
    block = cfg.env.curriculum_block
    evaluations = cfg.run.total_steps // cfg.run.eval_every
    blocks = math.ceil(round(cfg.env.curriculum_end * evaluations, 9) / block)  # 0.55 * 100
    return min(1.0, (epoch // block) / max(blocks - 1, 1))


def _log_line(name: str, row: dict[str, Any], total: int) -> str:
    """One plain line per evaluation: step, return, losses and first-layer firing rate."""
    parts = [f"{name} step {row['step']}/{total}", f"return {row['eval/return_mean']:.1f}"]
    for key in ("loss/critic", "loss/actor", "loss/proxy"):
        if isinstance(row.get(key), float):
            parts.append(f"{key.split('/')[1]} loss {row[key]:.4g}")
    if isinstance(row.get("snn/rate_h0"), float):
        parts.append(f"firing rate {row['snn/rate_h0']:.3f}")
    if row["steps_per_sec"] != "":
        parts.append(f"{row['steps_per_sec']:.1f} steps/s")
    return ", ".join(parts)


def _env_step(s: _Session, action: np.ndarray | None = None) -> None:
    """Act, step the env, store the transition and keep episode counters. After the warm-up
    the action is the learner's exploring one, or ``action`` when the caller computed it (the
    stacked seeds of :mod:`~spikerl.experiments.seeds_run` act together)."""
    cfg, p = s.cfg, s.progress
    if p.step < cfg.algo.learning_starts:
        action = s.env.action_space.sample()
    elif action is None:
        action = s.learner.act(s.obs, explore=True)
    next_obs, reward, terminated, truncated, _ = s.env.step(action)
    _require_finite("observation or reward", np.append(next_obs, reward), s)
    s.buffer.add(s.obs, action, float(reward), next_obs, terminated)
    p.episode_return += float(reward)
    p.episode_length += 1
    if terminated or truncated:
        p.finished_returns.append(p.episode_return)
        p.episodes += 1
        p.episode_return, p.episode_length = 0.0, 0
        next_obs, _ = s.env.reset()
        s.learner.policy.reset()  # a stateful actor starts every episode from zero state
    s.obs = next_obs


def _show_bar(cfg: Config) -> bool:
    """A progress bar only when asked for and stderr is a terminal; else plain log lines."""
    return cfg.run.progress and sys.stderr.isatty()


def _progress_bar(cfg: Config, initial: int, desc: str) -> tqdm:
    """The env-step progress bar (disabled where :func:`_show_bar` says no)."""
    return tqdm(total=cfg.run.total_steps, initial=initial, unit="step", dynamic_ncols=True,
                disable=not _show_bar(cfg), desc=desc, mininterval=1.0)  # fmt: skip


def _write_status(s: _Session, state: str, since: float, first_step: int, **extra: Any) -> None:
    """``status.json`` (:mod:`~spikerl.experiments.status`): state, live step, last return."""
    p = s.progress
    elapsed = time.perf_counter() - since
    write_status(
        s.run_dir,
        state=state,
        step=p.step,
        total_steps=s.cfg.run.total_steps,
        last_return=p.eval_returns[-1] if p.eval_returns else None,
        steps_per_sec=(p.step - first_step) / elapsed if elapsed > 0 else None,
        updated=time.time(),
        pid=os.getpid(),
        **extra,
    )


def _train_loop(s: _Session, stop: dict[str, bool], until: int | None = None) -> RunResult:
    """Train to ``run.total_steps`` (or to step ``until``, a checkpoint step) or a stop."""
    cfg, p = s.cfg, s.progress
    until = cfg.run.total_steps if until is None else until
    started, first_step = time.perf_counter(), p.step
    status_due = started + STATUS_EVERY
    _write_status(s, "running", started, first_step)
    last_return = p.eval_returns[-1] if p.eval_returns else float("nan")
    diagnostics: dict[str, float] = {}
    show_bar = _show_bar(cfg)
    bar = _progress_bar(cfg, p.step, s.run_dir.name)
    checkpoint_every = cfg.run.checkpoint_interval
    while p.step < until and not stop["stop"]:
        _env_step(s)
        if p.step >= cfg.algo.learning_starts and len(s.buffer) >= cfg.algo.batch_size:
            metrics = s.learner.update(s.buffer)
            _require_finite("loss", list(metrics.values()), s)
            p.add_train_metrics(metrics)
        p.step += 1
        bar.update(1)
        if p.step % cfg.run.eval_every == 0:
            last_return, diagnostics = _evaluate_and_log(
                s, started, p.step - first_step, log_lines=not show_bar
            )
            bar.set_postfix(eval_return=f"{last_return:.1f}", refresh=False)
        if p.step % checkpoint_every == 0 or p.step == cfg.run.total_steps or stop["stop"]:
            _save(s)
        if time.perf_counter() >= status_due:
            _write_status(s, "running", started, first_step)
            status_due = time.perf_counter() + STATUS_EVERY
    bar.close()
    finished = p.step >= cfg.run.total_steps
    _write_status(s, FINISHED if finished else "stopped", started, first_step)
    return _run_result(s, finished, diagnostics)


def settle_finished(s: Any, at: str) -> None:
    """A resumed run (a TD3/SAC or sequence session) with nothing left to train, finished
    ``at`` (``"step 400"``): a note says so, and nothing is written (no provenance entry, no
    new status) except a ``finished`` status where a kill came between the last checkpoint and
    that status."""
    _note(f"{s.run_dir} finished at {at}; nothing to train")
    if (read_status(s.run_dir) or {}).get("state") != FINISHED:
        _write_status(s, FINISHED, time.perf_counter(), s.progress.step)


def already_finished(s: _Session) -> bool:
    """Whether a resumed run has reached ``run.total_steps`` (then :func:`settle_finished`)."""
    if s.progress.step < s.cfg.run.total_steps:
        return False
    settle_finished(s, f"step {s.progress.step}")
    return True


def _run_result(s: _Session, finished: bool, diagnostics: dict[str, float]) -> RunResult:
    p = s.progress
    return RunResult(
        s.run_dir,
        p.step,
        list(p.eval_steps),
        list(p.eval_returns),
        interrupted=not finished,
        steps_per_sec=p.step / max(s.wall_time(), 1e-9),
        last_diagnostics=diagnostics,
    )


def train(
    cfg: Config,
    runs_root: str | Path = "runs",
    resume: bool = False,
    overwrite: bool = False,
    run_dir: str | Path | None = None,
) -> RunResult:
    """Train ``cfg`` in ``runs_root/<cfg.run_name>`` (or ``run_dir``); see module docstring.

    The run folder is locked for the whole call (:mod:`~spikerl.experiments.runlock`). Every
    check that can fail (device, env, optional dependencies, folder) runs before anything is
    written; a start that still fails removes the folder it created, and ``overwrite`` deletes
    the old folder only once the new run is fully built. It configures the calling process for
    training (:func:`~spikerl.experiments.process.configure_process`: torch's threads from
    ``run.threads``, the allocator), which stays so after it returns.

    Raises:
        RunError: the directory exists (without ``overwrite``/``resume``) or cannot be resumed.
        RunLocked: another live process is writing the directory.
        CheckpointError: the checkpoint to resume from is missing, corrupt or mismatched.
        TrainingDiverged: NaN/Inf in observations, rewards or losses.
    """
    if not isinstance(cfg, Config):
        raise UsageError(
            f"train() takes a Config (load_config(path, overrides)), not a {type(cfg).__name__}"
        )
    if resume and overwrite:
        raise RunError("--resume continues a run and --overwrite replaces it; choose one")
    run_dir = Path(run_dir) if run_dir is not None else Path(runs_root) / cfg.run_name
    device = resolve_device(cfg.run.device)  # fail before touching the run directory
    check_env(cfg.env.id)  # unknown ids and missing optional dependencies, before any file
    note_precision(cfg, device)
    with run_lock(run_dir) as lock:
        if lock.took_over is not None:
            _note(f"took over the lock of {run_dir} from process {lock.took_over}, which is gone")
        if resume:
            _check_resumable(cfg, run_dir)
            clear_interrupted_writes(run_dir)
        else:
            _check_new_run_dir(run_dir, overwrite)
        if cfg.algo.name == "sequence":  # its own epoch loop on the same run folder machinery
            from .sequence_run import train_sequence

            return train_sequence(cfg, run_dir, device, resume)
        # a stop signal from here on checkpoints the run (a second Ctrl-C during the start
        # removes the folder it made), so no window leaves a folder without a status
        with _stop_on_signals() as stop:
            session = _build_session(cfg, run_dir, device)
            abort_if_stopped(stop)
            if resume:
                _resume(session)
                if already_finished(session):
                    return _run_result(session, True, {})
            else:
                _start(session)
            record_provenance(
                run_dir, "resume" if resume else "start", device, torch.get_num_threads()
            )
            try:
                return _train_loop(session, stop)
            except Exception as err:  # the run folder says why it stopped; the caller reports
                _write_status(
                    session,
                    "failed",
                    time.perf_counter(),
                    session.progress.step,
                    error=f"{type(err).__name__}: {err}",
                )
                raise


def abort_if_stopped(stop: dict[str, bool]) -> None:
    """Before a start writes anything (``--overwrite`` deletes the old run then), a stop signal
    that came while the run was being built aborts it: nothing is written."""
    if stop["stop"]:
        raise KeyboardInterrupt


def note_precision(cfg: Config, device: torch.device) -> None:
    """A note when ``run.precision=bfloat16`` will be emulated (:func:`bfloat16_note`)."""
    note = bfloat16_note(cfg.run.precision, str(device))
    if note:
        _note(note)


def _start(s: _Session) -> None:
    """Create the folder, evaluate the initial policy and write the first checkpoint; a
    failure removes the folder again, so the same command can simply be repeated."""
    _create_run_dir(s.cfg, s.run_dir)
    try:
        _evaluate_and_log(s, time.perf_counter(), 0, log_lines=not _show_bar(s.cfg))
        _save(s)
    except BaseException:
        shutil.rmtree(s.run_dir, ignore_errors=True)
        raise


def _resume(s: _Session) -> None:
    """Restore the checkpoint; rewrite ``metrics.csv`` from it when the file disagrees."""
    # plain data (buffer, RNG, env state) must stay on the CPU; modules and optimisers move
    # their tensors to their own device inside load_state_dict
    state = load_checkpoint(s.run_dir / CHECKPOINT_NAME, "cpu", RESUME_ENTRIES)
    check_checkpoint_config(s.cfg, state, s.run_dir)
    _restore(s, state)
    if "metrics_rows" not in state["progress"]:  # an older checkpoint: keep the CSV as it is
        return
    s.metrics.restore(s.progress.metrics_rows)
