"""An atomic write replaces the whole file or nothing, and what a killed writer left behind
can be cleared."""

import os
import subprocess
import sys

import pytest

from spikerl.atomic import (
    remove_stale_temporaries,
    temporary_of,
    temporary_path,
    write_output,
    write_text_atomic,
)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.md"
    path.write_text("old")
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.md"]


def test_a_failed_write_keeps_the_old_content(tmp_path, monkeypatch):
    path = tmp_path / "out.md"
    path.write_text("old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("spikerl.atomic.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.md"]


def test_the_temporary_file_is_named_by_the_writing_process(tmp_path):
    assert temporary_path(tmp_path / "checkpoint.pt") == tmp_path / (
        f".checkpoint.pt.tmp-{os.getpid()}"
    )


@pytest.mark.parametrize(
    ("name", "target"),
    [
        (".checkpoint.pt.tmp-42", "checkpoint.pt"),
        (".a.tmp-1.tmp-7", "a.tmp-1"),
        ("checkpoint.pt", None),
        ("checkpoint.pt.tmp-42", None),  # not hidden: not ours
        (".checkpoint.pt.tmp-x", None),  # no pid
        (".tmp-42", None),
        ("..tmp-42", None),
    ],
)
def test_temporary_of_names_the_file_being_written(name, target):
    assert temporary_of(name) == target
    if target is not None:
        assert temporary_of(temporary_path(target).name) == target


def test_temporaries_of_gone_writers_are_removed_and_live_ones_kept(tmp_path):
    (tmp_path / "policies").mkdir()
    dead = _dead_pid()
    names = ("checkpoint.pt", "metrics.csv", "energy.json", "policies/step-*.pt")
    stale = [tmp_path / f".checkpoint.pt.tmp-{dead}", tmp_path / f"policies/.step-5.pt.tmp-{dead}"]
    for i, path in enumerate(stale):
        path.write_bytes(b"x" * (10 + i))
    live_writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = [
            temporary_path(tmp_path / "metrics.csv"),  # this process's own
            tmp_path / f".energy.json.tmp-{live_writer.pid}",  # another live process's
            tmp_path / "checkpoint.pt",  # not a temporary file
            tmp_path / f".results.csv.tmp-{dead}",  # not one of the names: another command's
        ]
        for path in kept:
            path.write_text("keep")
        removed = remove_stale_temporaries(tmp_path, names)
    finally:
        live_writer.kill()
        live_writer.wait()
    assert removed == [(stale[0], 10), (stale[1], 11)]
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "keep" for p in kept)


def test_write_output_creates_missing_folders_and_fails_as_one_error(tmp_path):
    from spikerl.export.npz import ExportError

    path = tmp_path / "new" / "deeper" / "out.txt"
    write_output(path, lambda tmp: tmp.write_text("one"))
    assert path.read_text() == "one"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match=r"^cannot write .*file/out\.txt: a file is in the way"):
        write_output(tmp_path / "file" / "out.txt", lambda tmp: tmp.write_text("two"), ExportError)

    def broken(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(ExportError, match="No space left on device"):
        write_output(path, broken, ExportError)
    assert path.read_text() == "one"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]
