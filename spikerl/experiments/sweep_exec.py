"""Running a sweep: one ``spikerl train`` process per run, on a local pool or a Ray cluster.

Every run is a child process (``python -m spikerl.experiments.sweep_exec train ...``) whose
output goes to ``OUTPUT/logs/<run>.log``; a run that crashes takes nothing else down. The child
asks the kernel to send it SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``), so a
killed driver's runs checkpoint and stop instead of running on unattended.

What a run does is decided when it starts, from its folder on the (shared) output folder:

=====================================  ======================================================
``status.json`` says ``finished``      nothing (the driver skips it without a process)
a ``checkpoint.pt``                    ``train --resume``: continue exactly where it stopped
a folder without a checkpoint          ``train --overwrite``: it never got past its start
no folder                              ``train --config configs/<run>.yaml``
=====================================  ======================================================

So re-running a sweep skips finished runs, resumes interrupted ones and restarts failed starts;
a run folder is only ever written by :func:`~spikerl.experiments.run.train`, which checkpoints
atomically, so it is never half-written.

Backends share one scheduler (:func:`run_sweep`): ``local`` runs up to ``max_parallel``
children at once (default: usable cores / threads per run); ``ray`` submits each run as a Ray
task asking for ``threads`` CPUs (and ``gpus`` GPUs), connecting to ``address`` or
``RAY_ADDRESS`` (``ray.init``'s own rule), else starting a local instance.

Before it writes anything, :func:`run_sweep` checks what can be checked: every env id builds,
the output folder can be written, no run folder holds another config than the sweep asks for
(the file was edited), and the backend is reachable (a Ray address must accept a connection
within :data:`RAY_CONNECT_TIMEOUT` seconds). A refused sweep leaves an existing output folder
as it was.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..atomic import temporary_path, write_text_atomic
from ..errors import EXIT_INTERRUPTED, MissingDependencyError, SpikerlError, UsageError
from .config import config_diff, config_from_dict, config_to_dict
from .outputs import check_output_folder
from .run import CHECKPOINT_NAME, CONFIG_NAME
from .run_records import ENERGY_NAME, ReportError, read_manifest
from .status import FINISHED, read_status
from .sweep import CONFIGS_DIR, LOGS_DIR, MANIFEST_NAME, Sweep, SweepRun, check_envs

__all__ = [
    "RunTask",
    "SweepError",
    "SweepInputError",
    "TaskResult",
    "check_output",
    "run_sweep",
    "run_task",
    "sweep_states",
    "write_sweep_files",
]

LOG_TAIL_LINES = 15
RAY_CONNECT_TIMEOUT = 10.0  # seconds a Ray address gets to accept a connection


class SweepError(SpikerlError):
    """The sweep cannot run as asked (output folder, backend)."""


class SweepInputError(UsageError, SweepError):
    """The sweep's input is wrong (run folders that hold other configs, a malformed Ray
    address): exit status 2."""


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to run one sweep run (plain data: it travels to Ray nodes)."""

    name: str
    output: str
    threads: int
    energy: bool
    attempt: int = 1

    @property
    def run_dir(self) -> Path:
        return Path(self.output) / self.name

    @property
    def log_path(self) -> Path:
        return Path(self.output) / LOGS_DIR / f"{self.name}.log"

    @property
    def config_path(self) -> Path:
        return Path(self.output) / CONFIGS_DIR / f"{self.name}.yaml"


@dataclass(frozen=True)
class TaskResult:
    name: str
    returncode: int
    log_tail: str
    seconds: float


# --------------------------------------------------------------------------------------------
# The worker side: one run as a child process


def _train_args(task: RunTask) -> list[str]:
    run_dir = task.run_dir
    if (run_dir / CHECKPOINT_NAME).is_file():
        return ["train", "--resume", str(run_dir)]
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()  # killed between mkdir and config.yaml: nothing to keep
    args = ["train", "--config", str(task.config_path), "--runs-dir", task.output]
    return [*args, "--overwrite"] if run_dir.exists() else args


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)  # numpy/BLAS in the child stay within the run's cores
    env["SPIKERL_PARENT_PID"] = str(os.getpid())
    return env


def _spawn(args: list[str], log, threads: int) -> int:
    """Run ``spikerl ARGS`` as a child writing to ``log``; SIGTERM it if we are interrupted."""
    cmd = [sys.executable, "-m", "spikerl.experiments.sweep_exec", *args]
    log.write(f"$ spikerl {' '.join(args)}\n")
    log.flush()
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_child_env(threads)
    )
    with _CHILDREN_LOCK:
        _CHILDREN.add(proc)
    try:
        return proc.wait()
    except BaseException:  # Ray's cancel or the driver stopping: let the run checkpoint
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=120)
        raise
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(proc)


_CHILDREN: set[subprocess.Popen] = set()  # this process's running children
_CHILDREN_LOCK = threading.Lock()


def terminate_children() -> None:
    """SIGTERM every running child (a trainer checkpoints and stops on SIGTERM)."""
    with _CHILDREN_LOCK:
        for proc in _CHILDREN:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _measure_energy(task: RunTask, log) -> int:
    """``spikerl energy RUN --json RUN/energy.json``, written via a temp file and a rename."""
    target = task.run_dir / ENERGY_NAME
    if target.is_file():
        return 0
    tmp = temporary_path(target)
    code = _spawn(["energy", str(task.run_dir), "--json", str(tmp)], log, task.threads)
    if code == 0:
        os.replace(tmp, target)
    return code


def run_task(task: RunTask) -> TaskResult:
    """Train (or resume) one run, then measure its energy if asked; the log gets everything."""
    started = time.perf_counter()
    task.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(task.log_path, "a", encoding="utf-8") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"=== {task.name}: attempt {task.attempt}, {stamp}, host {os.uname()[1]} ===\n")
        code = _spawn(_train_args(task), log, task.threads)
        if code == 0 and task.energy:
            code = _measure_energy(task, log)
        log.write(f"=== exit status {code} ===\n")
    return TaskResult(task.name, code, _log_tail(task.log_path), time.perf_counter() - started)


def _die_with_parent() -> None:
    """Linux: ask for SIGTERM when the parent dies (PR_SET_PDEATHSIG = 1); exit if it already
    has. Elsewhere a killed driver's runs keep going and finish on their own."""
    parent = os.environ.get("SPIKERL_PARENT_PID")
    if not sys.platform.startswith("linux") or parent is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    if str(os.getppid()) != parent:
        sys.exit(EXIT_INTERRUPTED)


# --------------------------------------------------------------------------------------------
# Backends


class Backend(Protocol):
    slots: int

    def submit(self, task: RunTask) -> Any: ...

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, TaskResult]]: ...

    def close(self) -> None: ...


class LocalBackend:
    """Up to ``slots`` child processes at once, each waited on by a pool thread."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._pool = cf.ThreadPoolExecutor(max_workers=slots, thread_name_prefix="spikerl-run")

    def submit(self, task: RunTask) -> cf.Future:
        return self._pool.submit(run_task, task)

    def wait(self, handles: list[cf.Future], timeout: float) -> list[tuple[Any, TaskResult]]:
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return [(h, h.result()) for h in done]

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _check_reachable(
    address: str, node_ip: Callable[[], str], timeout: float = RAY_CONNECT_TIMEOUT
) -> None:
    """Open and close a TCP connection to a Ray ``HOST:PORT`` (or ``ray://HOST:PORT``), so an
    unreachable address fails in seconds; ``ray.init`` would retry it for many minutes. As Ray
    does, a local host (``127.0.0.1``) means this node's IP (``node_ip()``). Only the port is
    checked: a listener there that is not a Ray head still meets Ray's own wait."""
    if address in ("local", "auto"):
        return
    client = address.startswith("ray://")
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise SweepInputError(
            f"Ray address {address!r}: expected HOST:PORT (the head's `ray start --port`)"
        )
    dialled = node_ip() if host in _LOCAL_HOSTS and not client else host
    try:
        socket.create_connection((dialled, int(port)), timeout=timeout).close()
    except OSError as err:
        timed_out = isinstance(err, TimeoutError)
        reason = f"no answer in {timeout:.0f} s" if timed_out else (err.strerror or str(err))
        via = f" (Ray dials this node's IP, {dialled})" if dialled != host else ""
        raise SweepError(
            f"cannot reach Ray at {address}{via}: {reason}; is a head node running there "
            "(`ray start --head --port=PORT`)?"
        ) from None


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")  # Ray replaces these with the node's IP


def _import_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "the ray backend needs Ray, which is not installed: pip install 'spikerl[ray]'"
        ) from None
    return ray


class RayBackend:
    """Each run is a Ray task asking for ``threads`` CPUs and ``gpus`` GPUs."""

    def __init__(self, address: str | None, threads: int, gpus: float, slots: int | None):
        ray = self._ray = _import_ray()
        # no address: a fresh local instance ("local"), never a stale cluster that an earlier
        # `ray start` left in Ray's temp folder
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        _check_reachable(address, ray.util.get_node_ip_address)
        local = {"num_cpus": usable_cores()} if address == "local" else {}
        try:
            ray.init(address=address, log_to_driver=False, include_dashboard=False, **local)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = "a new local instance" if address == "local" else address
            raise SweepError(f"cannot start or reach Ray at {where}: {err}") from None
        self._remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(run_task)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = slots or max(1, cpus // threads)

    def submit(self, task: RunTask) -> Any:
        return self._remote.remote(task)

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, TaskResult]]:
        ready, _ = self._ray.wait(handles, num_returns=len(handles), timeout=timeout)
        return [(ref, self._result(ref)) for ref in ready]

    def _result(self, ref: Any) -> TaskResult:
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as err:  # the worker died, the node was lost, ...
            return TaskResult("?", 1, f"Ray task failed: {type(err).__name__}: {err}", 0.0)

    def cancel(self, handles: list[Any]) -> None:
        for ref in handles:
            self._ray.cancel(ref)

    def close(self) -> None:
        self._ray.shutdown()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def make_backend(
    name: str, sweep: Sweep, max_parallel: int | None, address: str | None
) -> LocalBackend | RayBackend:
    if name == "local":
        return LocalBackend(max_parallel or max(1, usable_cores() // sweep.threads))
    if name == "ray":
        return RayBackend(address, sweep.threads, sweep.gpus, max_parallel)
    raise SweepError(f"unknown backend {name!r}; choose one of ['local', 'ray']")


# --------------------------------------------------------------------------------------------
# The driver


@dataclass
class RunState:
    """The driver's view of one run."""

    run: SweepRun
    state: str = "pending"  # pending, running, finished, skipped, failed, stopped, conflict
    attempts: int = 0
    step: int = 0
    last_return: float | None = None
    steps_per_sec: float | None = None
    error: str = ""
    started: float = 0.0
    seconds: float = 0.0

    @property
    def total_steps(self) -> int:
        return self.run.config.run.total_steps

    @property
    def done(self) -> bool:
        return self.state in ("finished", "skipped")

    def take(self, status: dict[str, Any]) -> None:
        """Env steps, last return and steps/s from the run's ``status.json``."""
        self.step = int(status.get("step") or self.step)
        self.last_return = status.get("last_return", self.last_return)
        self.steps_per_sec = status.get("steps_per_sec", self.steps_per_sec)


def _config_text(run: SweepRun) -> str:
    return yaml.safe_dump(config_to_dict(run.config), sort_keys=False)


def _existing_config(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's saved config, with every key a config of this spikerl has (so a key added
    by an upgrade, at its default, is no conflict); None where there is none to read."""
    try:
        saved = yaml.safe_load((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    try:
        return config_to_dict(config_from_dict(saved))
    except SpikerlError:  # not a valid config: compared as it is, so it conflicts
        return saved


def sweep_states(sweep: Sweep, backend: str) -> list[RunState]:
    """Each run's state from its folder (to run, finished: skipped, or conflicting: its folder
    holds another config), after the env ids of the runs still to run are checked
    (:func:`~spikerl.experiments.sweep.check_envs`; built on the local backend, looked up for
    Ray); reads only."""
    states = [initial_state(run, sweep.output, sweep.energy) for run in sweep.runs]
    check_envs([st.run for st in states if st.state == "pending"], build=backend == "local")
    return states


def check_output(sweep: Sweep, states: list[RunState]) -> None:
    """Refuse, before anything is written, an output folder that cannot be written or whose
    run folders hold other configs than the sweep asks for (``states``: :func:`sweep_states`)."""
    check_output_folder(sweep.output, "the sweep output folder")
    _check_not_another_sweep(sweep)
    conflicts = [st for st in states if st.state == "conflict"]
    if conflicts:
        raise SweepInputError(_conflict_message(conflicts, sweep.output))


def _check_not_another_sweep(sweep: Sweep) -> None:
    """Refuse an output folder that is a run folder, or whose manifest lists runs with a
    folder there that this sweep does not have (writing this sweep's manifest would drop them
    from its report); a sweep resumed, extended, shrunk before its runs started, or renamed
    may write there."""
    out = sweep.output
    if (out / CONFIG_NAME).is_file():
        raise SweepInputError(
            f"the sweep output folder {out} is a run folder; choose a new --output"
        )
    manifest = out / MANIFEST_NAME
    if not manifest.is_file():
        return
    try:
        saved, entries = read_manifest(out)
    except ReportError as err:
        raise SweepInputError(
            f"the sweep output folder {out} holds an unreadable {MANIFEST_NAME} ({err}); "
            "nothing was written or started: choose a new --output"
        ) from None
    wanted = {run.name for run in sweep.runs}
    dropped = sorted({name for name, *_ in entries} - wanted)
    dropped = [name for name in dropped if (out / name).is_dir()]
    if dropped:
        raise SweepInputError(
            f"the sweep output folder {out} holds the runs {_first_names(dropped)} of the sweep "
            f"{saved.get('name')!r}, which this sweep does not have (its {MANIFEST_NAME} would "
            "drop them from the report); nothing was written or started: choose a new "
            "--output, or move those run folders out"
        )


def _conflict_message(conflicts: list[RunState], out: Path) -> str:
    names = [st.run.name for st in conflicts]
    return (
        f"{len(names)} run folder(s) in {out} hold another config than this sweep asks for "
        f"(was the sweep file edited?): {_first_names(names)}; {conflicts[0].error}. Nothing "
        "was written or started: choose a new --output, undo the change, or remove those run "
        "folders"
    )


def _first_names(names: list[str]) -> str:
    """``a, b, c and 4 more``: the first three of ``names`` and how many follow."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def write_sweep_files(sweep: Sweep) -> None:
    """Create the output folder and write the manifest and each run's config."""
    out = sweep.output
    try:
        for folder in (out, out / LOGS_DIR, out / CONFIGS_DIR):
            folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / MANIFEST_NAME, json.dumps(sweep.manifest(), indent=1) + "\n")
        for run in sweep.runs:
            write_text_atomic(out / CONFIGS_DIR / f"{run.name}.yaml", _config_text(run))
    except OSError as err:
        raise SweepError(
            f"cannot write the sweep output folder {out}: {err.strerror or err}"
        ) from None


def initial_state(run: SweepRun, out: Path, energy: bool) -> RunState:
    state = RunState(run)
    run_dir = out / run.name
    if not run_dir.exists():
        return state
    saved = _existing_config(run_dir)
    wanted = config_to_dict(run.config)
    if saved is not None and saved != wanted:
        state.state = "conflict"
        state.error = f"{run.name}/{CONFIG_NAME} has {config_diff(saved, wanted, 'the sweep')}"
        return state
    status = read_status(run_dir) or {}
    state.take(status)
    if status.get("state") == FINISHED and (not energy or (run_dir / ENERGY_NAME).is_file()):
        state.state = "skipped"
    return state


@dataclass
class SweepResult:
    states: list[RunState]
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def failed(self) -> list[RunState]:
        return [s for s in self.states if s.state == "failed"]


def _refresh_live(states: list[RunState], out: Path) -> None:
    """Read each running run's ``status.json`` (written by the child about every 2 s)."""
    for st in states:
        if st.state != "running":
            continue
        status = read_status(out / st.run.name)
        if status and status.get("pid") is not None and status.get("updated", 0) >= st.started:
            st.take(status)


def _finish(
    st: RunState, result: TaskResult, retries: int, queue: list[RunState], out: Path, stopping: bool
) -> None:
    """Classify a returned run: finished, stopped, queued for a retry, or failed."""
    st.seconds += result.seconds
    status = read_status(out / st.run.name) or {}
    st.take(status)
    if result.returncode == 0 and status.get("state") == FINISHED:
        st.state = "finished"
    elif result.returncode == EXIT_INTERRUPTED or stopping:
        st.state, st.error = "stopped", ""
    elif st.attempts <= retries:
        st.state, st.error = "pending", result.log_tail
        queue.append(st)  # retried from its checkpoint
    else:
        st.state, st.error = "failed", result.log_tail


class _StopRequest:
    """SIGTERM to the driver stops the sweep as Ctrl-C does (children are told to stop)."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: Any) -> None:
            self.requested = True

        signal.signal(signal.SIGTERM, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGTERM, previous)


def run_sweep(
    sweep: Sweep,
    backend: str = "local",
    max_parallel: int | None = None,
    address: str | None = None,
    retries: int | None = None,
    display: Any = None,
) -> SweepResult:
    """Run every unfinished run of ``sweep``; see the module docstring.

    Env ids, the output folder and the backend are checked before anything is written
    (:func:`check_output`). ``display`` (a
    :class:`~spikerl.experiments.sweep_progress.SweepDisplay`) is told about every change; by
    default one is made for stderr. Ctrl-C or SIGTERM stops submitting, lets the running runs
    checkpoint and stop, and returns with ``interrupted`` set.
    """
    from .sweep_progress import SweepDisplay

    started = time.perf_counter()
    states = sweep_states(sweep, backend)
    check_output(sweep, states)
    pending = any(st.state == "pending" for st in states)
    engine = make_backend(backend, sweep, max_parallel, address) if pending else None
    display = display or SweepDisplay()
    result = SweepResult(states)
    try:
        write_sweep_files(sweep)
        if engine is not None:
            result.interrupted = _Scheduler(sweep, engine, states, display, retries).run()
    finally:
        if engine is not None:
            engine.close()
    display.close(states)
    result.seconds = time.perf_counter() - started
    return result


class _Scheduler:
    """Keeps ``engine.slots`` runs in flight, retries crashes, stops cleanly when told."""

    def __init__(self, sweep: Sweep, engine, states: list[RunState], display, retries) -> None:
        self.sweep, self.engine, self.states, self.display = sweep, engine, states, display
        self.retries = sweep.retries if retries is None else retries
        self.queue = [st for st in states if st.state == "pending"]
        self.inflight: dict[Any, RunState] = {}
        self.stopping = False
        self.stop = _StopRequest()

    def run(self) -> bool:
        """Run until every queued run is done; True if it was interrupted."""
        with self.stop.installed():
            while self.queue or self.inflight:
                self._submit()
                try:
                    done = self.engine.wait(list(self.inflight), timeout=1.0)
                except KeyboardInterrupt:
                    self._interrupt()
                    continue
                if self.stop.requested and not self.stopping:
                    self._interrupt()
                for handle, task_result in done:
                    st = self.inflight.pop(handle)
                    _finish(
                        st, task_result, self.retries, self.queue, self.sweep.output, self.stopping
                    )
                    self.display.event(st)
                _refresh_live(self.states, self.sweep.output)
                self.display.update(self.states)
        return self.stopping

    def _submit(self) -> None:
        sweep = self.sweep
        while self.queue and len(self.inflight) < self.engine.slots and not self.stopping:
            st = self.queue.pop(0)
            st.attempts += 1
            st.state, st.started = "running", time.time()
            output = str(sweep.output.resolve())  # Ray workers run in folders of their own
            task = RunTask(st.run.name, output, sweep.threads, sweep.energy, st.attempts)
            self.inflight[self.engine.submit(task)] = st
            self.display.event(st)

    def _interrupt(self) -> None:
        """Stop submitting; tell running children to checkpoint and stop; keep waiting."""
        if self.stopping:
            return
        self.stopping = True
        self.queue.clear()
        if isinstance(self.engine, RayBackend):
            self.engine.cancel(list(self.inflight))
        else:
            terminate_children()
        self.display.note(
            "stopping: running runs checkpoint and stop; run the same command to continue"
        )


def main(argv: list[str]) -> int:
    """The child process: ``spikerl`` with this process bound to its parent's life."""
    _die_with_parent()
    from ..cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
