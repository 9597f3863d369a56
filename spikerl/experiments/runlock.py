"""One writer per run folder.

A run folder ``runs/<name>`` is locked by the process that writes it (``train``, with or without
``--overwrite`` or ``--resume``) through the lock file ``runs/.<name>.lock`` beside it: an
exclusive ``fcntl.flock`` held for the whole run, with the holder's pid, host and command written
into the file for the message a second writer gets. The lock file lives beside the folder so that
``--overwrite`` can delete and recreate the folder while holding it.

The operating system releases a ``flock`` when its process dies, even by ``kill -9``, so a lock
left by a dead process is never in the way: the next writer takes it over and says so. A clean
exit deletes the lock file (while still holding it; a writer that locked the deleted file sees
that the path now names another file and tries again). POSIX only (Linux, macOS), like the rest
of spikerl's run handling.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from pathlib import Path
from typing import IO, Any

from ..errors import SpikerlError

__all__ = ["RunLocked", "lock_holder", "lock_path", "run_lock"]


class RunLocked(SpikerlError):
    """Another live process is writing the run folder."""


def lock_path(run_dir: Path) -> Path:
    """The lock file of ``run_dir``: ``<parent>/.<name>.lock`` of the real folder (symbolic
    links resolved), so every path to one folder, a link to it included, names one lock."""
    real = Path(run_dir).resolve()
    return real.parent / f".{real.name}.lock"


def lock_holder(run_dir: Path) -> dict[str, str]:
    """The ``pid``, ``host`` and ``command`` in ``run_dir``'s lock file ({} if there is none).

    Read without locking: a reader that took the lock, even briefly, could make a trainer
    starting at that instant fail with :class:`RunLocked`.
    """
    try:
        with open(lock_path(Path(run_dir)), encoding="utf-8") as handle:
            return _read_holder(handle)
    except (OSError, UnicodeDecodeError):
        return {}


def _read_holder(handle: IO[str]) -> dict[str, str]:
    handle.seek(0)
    fields = dict(line.split("=", 1) for line in handle.read().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in fields.items()}


class run_lock:  # noqa: N801 (used as a context manager, like open)
    """``with run_lock(run_dir):`` holds the run folder's lock or raises :class:`RunLocked`.

    ``took_over`` is the pid of a dead previous holder whose lock was taken over (or None).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.path = Path(run_dir), lock_path(Path(run_dir))
        self.took_over: str | None = None
        self._handle: IO[str] | None = None

    def __enter__(self) -> run_lock:
        parent = self.path.parent
        if parent.exists() and not parent.is_dir():
            raise SpikerlError(f"runs directory {parent} is a file, not a directory")
        handle = self._acquire()
        previous = _read_holder(handle).get("pid")
        if previous and previous != str(os.getpid()):
            self.took_over = previous
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"pid={os.getpid()}\nhost={socket.gethostname()}\ncommand={' '.join(sys.argv)[:200]}\n"
        )
        handle.flush()
        self._handle = handle
        return self

    def _acquire(self) -> IO[str]:
        """Open and lock the lock file; retry if it was deleted and recreated meanwhile."""
        while True:
            handle = self._open()
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(handle)
                handle.close()
                raise RunLocked(
                    f"run folder {self.run_dir} is in use by process {holder.get('pid', '?')} "
                    f"on {holder.get('host', '?')} ({holder.get('command', 'spikerl')}); wait "
                    "for it to finish or stop it first"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return handle
            handle.close()

    def _open(self) -> IO[str]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until exit)
        except OSError as err:
            raise SpikerlError(
                f"cannot create run folders in {self.path.parent}: {err.strerror or err}"
            ) from None

    def __exit__(self, *exc: Any) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            self.path.unlink(missing_ok=True)
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
