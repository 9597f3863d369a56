"""Output paths of the subcommands, checked before the work that fills them.

A command that evaluates, measures or benchmarks for minutes and only then finds that it cannot
write its ``--csv`` or ``--json`` has wasted the minutes: every output path is checked first.
Missing parent folders are allowed (the writer creates them); what is refused, in one line
naming the option, is a path that is a folder where a file is meant (or a file where a folder
is meant), a path under a file or in a folder this process cannot create files in, and a
file that a run or a sweep keeps its state in (a run folder's ``config.yaml``,
``checkpoint.pt``, ``metrics.csv``, ``best.pt``, ``status.json``, ``provenance.yaml``, its kept
``policies/``, a sweep's ``sweep.json``): only training and sweeps write those; and the file
the command itself reads (``spikerl export p.npz -o p.npz``). The check writes nothing that
stays: its probe file is removed at once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import UsageError

__all__ = ["check_output_file", "check_output_folder"]


def check_output_file(
    path: str | Path,
    option: str,
    example: str | Path = "",
    reads: Iterable[str | Path | None] = (),
) -> None:
    """Refuse (:class:`~spikerl.errors.UsageError`) an output file path that cannot be written;
    ``option`` names it in the message, e.g. ``--csv``; ``example``, a file path to suggest
    when a folder is given; ``reads``, the files the command reads (a policy to evaluate,
    export or measure), which it must not replace."""
    path = Path(path)
    if path.is_dir():
        such_as = f" such as {example}" if example else ""
        raise UsageError(f"{option} {path}: is a folder; give a file path{such_as}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path}: the file exists and is read-only")
    read = next((r for r in reads if r is not None and _same_file(path, Path(r))), None)
    if read is not None:
        raise UsageError(f"{option} {path}: is {read}, which this command reads; give another path")
    owner = _state_file_owner(path)
    if owner:
        raise UsageError(
            f"{option} {path}: is a file {owner} keeps its state in; give another file path"
        )
    _check_creatable(path.parent, f"{option} {path}")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file (links and ``..`` followed)."""
    try:
        return a.is_file() and b.is_file() and os.path.samefile(a, b)
    except OSError:
        return False


def _state_file_owner(path: Path) -> str:
    """``"the run <folder>"`` or ``"the sweep <folder>"`` when ``path`` is an existing file
    that training or a sweep keeps its state in, else ``""``."""
    from .run import CONFIG_NAME, POLICIES_DIR, TRAINER_ENTRIES
    from .sweep import CONFIGS_DIR, MANIFEST_NAME

    if not path.is_file():
        return ""
    path = path.resolve()  # ``.`` or ``..`` named, symlinks followed
    folder = path.parent
    if folder.name == POLICIES_DIR and (folder.parent / CONFIG_NAME).is_file():
        return f"the run {folder.parent}"
    if path.name in TRAINER_ENTRIES and (folder / CONFIG_NAME).is_file():
        return f"the run {folder}"
    if path.name == MANIFEST_NAME and (folder / CONFIGS_DIR).is_dir():
        return f"the sweep {folder}"
    return ""


def check_output_folder(path: str | Path, option: str, why: str = "") -> None:
    """Refuse an output folder path that is a file, or cannot be created or written in;
    ``why``, a reason a folder is meant, is added to the message for a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is a file; give a folder{f' ({why})' if why else ''}")
    _check_creatable(path, f"{option} {path}")


def _check_creatable(folder: Path, label: str) -> None:
    """``folder`` exists and takes new files, or its nearest existing ancestor does."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{label}: {existing} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".spikerl-write-probe-", dir=existing)
    except OSError as err:
        raise UsageError(f"{label}: cannot write in {existing} ({err.strerror or err})") from None
    os.close(handle)
    os.unlink(probe)
