"""Writing a file so that a reader (or a kill) never sees it half written."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import SpikerlError

__all__ = [
    "remove_stale_temporaries",
    "temporary_of",
    "temporary_path",
    "write_atomic",
    "write_output",
    "write_text_atomic",
]

_TMP_MARK = ".tmp-"


def temporary_path(path: str | Path) -> Path:
    """Where ``path`` is written before the rename that makes it whole:
    ``.<name>.tmp-<pid>`` beside it, named by the writing process."""
    path = Path(path)
    return path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}")


def temporary_of(name: str) -> str | None:
    """The file name that a :func:`temporary_path` named ``name`` was writing, or None if
    ``name`` is not such a temporary file (``.checkpoint.pt.tmp-42`` -> ``checkpoint.pt``)."""
    target, mark, pid = name.rpartition(_TMP_MARK)
    if not (mark and pid.isdigit() and target.startswith(".") and len(target) > 1):
        return None
    return target[1:]


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``:
    the old content stays whole until the new one is complete. A failed write removes the
    temporary file and raises."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """:func:`write_atomic` of ``text`` (UTF-8)."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _writer_is_gone(tmp: Path) -> bool:
    """Whether the process named in a :func:`temporary_path` no longer exists."""
    pid = tmp.name.rpartition(_TMP_MARK)[2]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, under another user
        return False
    return False


def remove_stale_temporaries(folder: str | Path, names: Iterable[str]) -> list[tuple[Path, int]]:
    """Delete the temporary files in ``folder`` of the files ``names`` (glob patterns relative
    to ``folder``, e.g. ``policies/step-*.pt``) whose writer is gone: a process killed in the
    middle of a write (SIGKILL, power loss) leaves one that nothing else removes, as large as
    the file it was writing (a checkpoint with its replay buffer: hundreds of MB). A live
    writer's file is kept, and so is every temporary file of another name (another command may
    be writing it). Returns the removed paths with their sizes in bytes."""
    folder, removed = Path(folder), []
    candidates = set()
    for name in names:
        pattern = Path(name)
        candidates.update(folder.glob(str(pattern.parent / f".{pattern.name}{_TMP_MARK}*")))
    for tmp in sorted(candidates):
        if tmp.is_file() and not tmp.is_symlink() and _writer_is_gone(tmp):
            size = tmp.stat().st_size
            tmp.unlink(missing_ok=True)
            removed.append((tmp, size))
    return removed


def write_output(
    path: str | Path, write: Callable[[Path], object], error: type[SpikerlError] = SpikerlError
) -> None:
    """Write the output file ``path`` atomically with ``write(tmp)``, creating missing folders;
    a failure is one ``error`` line (the old file, if any, stays whole)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder is needed, on the way to path
        raise error(f"cannot write {path}: a file is in the way of its folder") from None
    except OSError as err:
        raise error(f"cannot write {path}: {err.strerror or err}") from None
    try:
        write_atomic(path, write)
    except OSError as err:
        raise error(f"cannot write {path}: {err.strerror or err}") from None
