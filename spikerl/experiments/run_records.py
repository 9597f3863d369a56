"""The run folders a report reads: one :class:`RunRecord` per training run.

A report folder is either a *sweep folder*, whose ``sweep.json`` lists the runs (run ``i`` in
``DIR/<name>/``, with its method, env and seed), or a *plain folder of runs*: every direct
subfolder with a ``config.yaml`` is a run, labelled from its config by :func:`method_label`.

A run's state comes from ``status.json`` when the trainer wrote one (``running``, ``finished``,
``stopped`` or ``failed``, see :mod:`~spikerl.experiments.status`); without it a run is finished
when its last evaluation is at ``run.total_steps``. A ``running`` run whose trainer is gone (the
pid in its lock file, :mod:`~spikerl.experiments.runlock`, is dead on this host) is ``crashed``.
A listed run without a folder is ``missing``; a run whose files cannot be read is ``broken``.
Reports average finished runs only and list every other one (or, on request, also the
unfinished runs that have an evaluation curve, as they stand).
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import SpikerlError
from .config import config_to_dict
from .evaluation import eval_info_labels
from .run import CONFIG_NAME, METRICS_NAME, RunError, load_run_config, what_it_learns
from .runlock import lock_holder
from .status import FINISHED, read_status
from .sweep import MANIFEST_NAME, method_label

__all__ = [
    "ENERGY_NAME",
    "ENERGY_PRESETS",
    "METHOD_ORDER",
    "RETURN_COLUMN",
    "UNKNOWN",
    "ReportError",
    "RunRecord",
    "RunSet",
    "collect_runs",
    "method_label",
    "read_curve",
]

ENERGY_NAME = "energy.json"  # ``spikerl energy RUN --json RUN/energy.json``
RETURN_COLUMN = "eval/return_mean"
#: The guide-free evaluation of a sequence run (the actor alone from a cold state)
FREE_RETURN_COLUMN = "eval_free/return_mean"
ENERGY_PRESETS = ("45nm", "proxy-target")  # the presets a report shows, nJ per decision
# The row order of a plain folder's report, after paper Table 1 (arXiv 2505.24161): the ANN
# baseline, vanilla spiking actors, then proxy-target ones; other labels follow alphabetically.
METHOD_ORDER = (
    "ANN TD3", "PN-ANN", "SAC", "LIF", "CLIF", "DN", "PLIF",
    "PT-LIF", "PT-CLIF", "PT-DN", "PT-PLIF",
    "TD3BC+JSRL", "BC+JSRL", "TD3 (norm. Q)+JSRL", "TD3+JSRL", "BC", "BC online",
    "TD3BC offline", "TD3 offline", "TD3BC", "TD3 (norm. Q)", "TD3",
)  # fmt: skip
UNKNOWN = "?"  # method and env of a plain folder's run whose config cannot be read


class ReportError(SpikerlError):
    """A folder or file cannot be reported: a missing folder, one without runs, an unreadable
    ``sweep.json``; an unreadable file of one run only makes that run ``broken``."""


@dataclass(frozen=True)
class RunRecord:
    """One training run as a report sees it.

    ``steps``/``returns`` are the evaluation curve (``[E]`` env steps and ``eval/return_mean``);
    ``step``/``total_steps`` the progress; ``energy_nj`` the nJ per decision per preset of
    :data:`ENERGY_PRESETS` found in ``energy.json``; ``info`` the curves ``[E]`` of the env's
    declared evaluation info by label (the quadrotor's position error and crash rate; NaN where
    a row has none); ``problem`` why a run is ``broken`` (or the error of a ``failed`` one);
    ``included``: an unfinished run that a report averages as it stands (``spikerl report
    --include-unfinished``); ``free_returns`` the guide-free curve ``[E]`` of a sequence run
    (``eval_free/return_mean``, the deployment case; empty for other runs); ``learns`` the
    config without how it runs (:func:`~spikerl.experiments.run.what_it_learns`, as canonical
    JSON; "" when unreadable): two runs equal in it whose curves agree are copies of one run.
    """

    name: str
    method: str
    env: str
    seed: int | None
    state: str
    step: int | None = None
    total_steps: int | None = None
    steps: tuple[int, ...] = ()
    returns: tuple[float, ...] = ()
    energy_nj: Mapping[str, float] = field(default_factory=dict)
    problem: str = ""
    info: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    included: bool = False
    free_returns: tuple[float, ...] = ()
    learns: str = ""

    @property
    def finished(self) -> bool:
        return self.state == FINISHED

    @property
    def averaged(self) -> bool:
        """Whether a report's means count this run: finished, or included as it stands."""
        return self.finished or self.included

    @property
    def max_return(self) -> float:
        """Max average return: ``max_k R_k`` over the evaluation curve (NaN without one)."""
        return _peak(self.returns)

    @property
    def final_return(self) -> float:
        """The last evaluation's mean return (NaN without one)."""
        return _last(self.returns)

    @property
    def max_free_return(self) -> float:
        """The maximum of the guide-free curve (NaN for a run without one)."""
        return _peak(self.free_returns)

    @property
    def final_free_return(self) -> float:
        """The last guide-free evaluation's mean return (NaN for a run without one)."""
        return _last(self.free_returns)

    @property
    def progress(self) -> str:
        """``step/total`` env steps, then the problem if any: ``4000/10000: RuntimeError: ...``."""
        if self.step is None:
            return self.problem or "-"
        progress = f"{self.step}/{'-' if self.total_steps is None else self.total_steps}"
        return f"{progress}: {self.problem}" if self.problem else progress


def _peak(curve: tuple[float, ...]) -> float:
    """The maximum of an evaluation curve (NaN without one)."""
    return max(curve) if curve else math.nan


def _last(curve: tuple[float, ...]) -> float:
    """The last point of an evaluation curve (NaN without one)."""
    return curve[-1] if curve else math.nan


class RunSet(NamedTuple):
    """The runs of a report folder and the baseline its ``sweep.json`` names (or None)."""

    folder: Path
    records: list[RunRecord]
    baseline: str | None


def collect_runs(folder: str | Path) -> RunSet:
    """Every run of a sweep folder (manifest order) or a plain folder of runs.

    A plain folder's runs are sorted by :data:`METHOD_ORDER`, env, seed and name.
    Raises :class:`ReportError` when ``folder`` is missing, not a folder or holds no runs.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ReportError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ReportError(f"{folder} is a file; expected a sweep folder or a folder of runs")
    if (folder / MANIFEST_NAME).is_file():
        baseline, records = _sweep_records(folder)
        if not records:
            raise ReportError(f"{folder / MANIFEST_NAME} lists no runs")
        return RunSet(folder, records, baseline)
    if (folder / CONFIG_NAME).is_file():
        raise ReportError(f"{folder} is a single run; report the folder that holds it")
    records = sorted(_plain_records(folder), key=_plain_order)
    if not records:
        raise ReportError(
            f"{folder} holds no runs (no {MANIFEST_NAME}, no subfolder with a config)"
        )
    return RunSet(folder, records, None)


def _plain_records(folder: Path) -> list[RunRecord]:
    return [
        _read_run(sub, None)
        for sub in sorted(folder.iterdir())
        if sub.is_dir() and (sub / CONFIG_NAME).is_file()
    ]


def _plain_order(r: RunRecord) -> tuple[Any, ...]:
    base = r.method.split(" [")[0]  # a sequence method behind another guide: beside its own
    rank = METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER)
    return rank, r.method, r.env, -1 if r.seed is None else r.seed, r.name


def read_manifest(folder: Path) -> tuple[dict[str, Any], list[tuple[str, str, str, int]]]:
    """A sweep folder's ``sweep.json`` and its runs' ``(name, method, env, seed)``, checked;
    :class:`ReportError` when it cannot be read or is not a version-1 manifest."""
    path = folder / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path} cannot be read: {err}") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or data.get("version") != 1:
        raise ReportError(f"{path} is not a version-1 sweep manifest (a 'runs' list)")
    return data, [_manifest_labels(entry, f"{path}: runs[{i}]") for i, entry in enumerate(runs)]


def _sweep_records(folder: Path) -> tuple[str | None, list[RunRecord]]:
    """The manifest's baseline and its runs; a listed run without a folder is ``missing``."""
    data, entries = read_manifest(folder)
    records = []
    for labels in entries:
        run_dir = folder / labels[0]
        if run_dir.is_dir():
            records.append(_read_run(run_dir, labels))
        else:
            records.append(RunRecord(*labels, state="missing"))
    baseline = data.get("baseline")
    return (baseline if isinstance(baseline, str) else None), records


def _manifest_labels(entry: Any, where: str) -> tuple[str, str, str, int]:
    """``(name, method, env, seed)`` of one manifest entry, checked."""
    keys = {"name": str, "method": str, "env": str, "seed": int}
    if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in keys.items()):
        raise ReportError(f"{where} needs name, method, env (strings) and seed (an integer)")
    if entry["name"] in ("", ".", "..") or "/" in entry["name"]:
        raise ReportError(f"{where}: name {entry['name']!r} is not a plain folder name")
    return entry["name"], entry["method"], entry["env"], entry["seed"]


def _read_run(run_dir: Path, labels: tuple[str, str, str, int] | None) -> RunRecord:
    """The record of one run folder; ``labels`` (name, method, env, seed) come from a manifest,
    or, when None, from the run's config."""
    try:
        cfg = load_run_config(run_dir)
    except RunError as err:
        name, method, env, seed = labels or (run_dir.name, UNKNOWN, UNKNOWN, None)
        return RunRecord(name, method, env, seed, state="broken", problem=str(err))
    name, method, env, seed = labels or (run_dir.name, method_label(cfg), cfg.env.id, cfg.run.seed)
    try:
        rows = _metric_rows(run_dir / METRICS_NAME)  # read once: curve and info stay aligned
        steps, returns = _curve(rows, run_dir / METRICS_NAME)
        free = _optional_curve(rows, run_dir / METRICS_NAME, FREE_RETURN_COLUMN)
        info = _info_curves(rows, run_dir / METRICS_NAME, _declared_info(cfg.env.id))
        energy = _read_energy(run_dir / ENERGY_NAME)
    except ReportError as err:
        return RunRecord(name, method, env, seed, state="broken", problem=str(err))
    status = _status(run_dir)
    total = status.get("total_steps", cfg.run.total_steps)
    if status:
        state, step = status["state"], status.get("step", steps[-1] if steps else None)
    else:  # no status.json (an older trainer): finished iff the last evaluation is at the end
        state = FINISHED if steps and steps[-1] == total else "unfinished"
        step = steps[-1] if steps else None
    if state == FINISHED and not steps:
        problem = f"{run_dir / METRICS_NAME} has no evaluations, but the run is finished"
        return RunRecord(name, method, env, seed, state="broken", problem=problem)
    problem = str(status.get("error") or "")
    learns = json.dumps(what_it_learns(config_to_dict(cfg)), sort_keys=True)
    return RunRecord(name, method, env, seed, state, step, total, steps, returns, energy,
                     problem, info, free_returns=free, learns=learns)  # fmt: skip


def _status(run_dir: Path) -> dict[str, Any]:
    """``status.json`` ({} if absent or unreadable), with ``running`` turned into ``crashed``
    when the trainer is gone (SIGKILL leaves ``running`` behind, see
    :mod:`~spikerl.experiments.status`)."""
    status = _valid_status(run_dir)
    if status.get("state") != "running" or _trainer_alive(run_dir):
        return status
    status = _valid_status(run_dir)  # read again: the trainer may have finished meanwhile
    return {**status, "state": "crashed"} if status.get("state") == "running" else status


def _valid_status(run_dir: Path) -> dict[str, Any]:
    """``status.json`` if it has a string ``state`` and integer steps, else {} (not trusted)."""
    status = read_status(run_dir) or {}
    steps = (status.get(k, 0) for k in ("step", "total_steps"))
    ok = isinstance(status.get("state"), str) and all(isinstance(v, int) for v in steps)
    return status if ok else {}


def _trainer_alive(run_dir: Path) -> bool:
    """Whether the process named in the run's lock file lives (one on another host counts)."""
    holder = lock_holder(run_dir)
    if not holder.get("pid", "").isdigit():
        return False
    if holder.get("host", socket.gethostname()) != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)  # signal 0: only asks whether the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _metric_rows(path: Path) -> list[dict[str, str]]:
    """The complete rows of a ``metrics.csv`` ([] if there is none yet)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{path} cannot be read: {err}") from None
    lines = text.splitlines()
    if text and not text.endswith("\n"):
        lines = lines[:-1]
    return list(csv.DictReader(lines))


def _info_curves(
    rows: list[dict[str, str]], path: Path, labels: Mapping[str, str]
) -> dict[str, tuple[float, ...]]:
    """The curves of the declared evaluation info ``eval/<key>``, by label (NaN if empty)."""
    return {
        label: _column(rows, path, f"eval/{key}", blank_as_nan=True)
        for key, label in labels.items()
        if rows and f"eval/{key}" in rows[0]
    }


def _declared_info(env_id: str) -> dict[str, str]:
    """The env's declared evaluation info labels; none when the env cannot be looked up."""
    try:
        return eval_info_labels(env_id)
    except SpikerlError:  # e.g. a custom env whose module is gone: report the returns only
        return {}


def read_curve(path: Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The evaluation curve of a ``metrics.csv``: env steps and ``eval/return_mean``, ``[E]``.

    A missing file is an empty curve (no evaluation yet). A last line without its newline is
    being written by the trainer and is left out. An unreadable file is a :class:`ReportError`.
    """
    return _curve(_metric_rows(path), path)


def _curve(rows: list[dict[str, str]], path: Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Steps and returns of the rows of ``path`` (see :func:`read_curve`)."""
    if rows and not {"step", RETURN_COLUMN} <= set(rows[0]):
        raise ReportError(f"{path} has no 'step' and '{RETURN_COLUMN}' columns")
    try:
        steps = tuple(int(r["step"]) for r in rows)
    except (TypeError, ValueError):
        raise ReportError(f"{path} holds a step that is not a whole number") from None
    return steps, _column(rows, path, RETURN_COLUMN)


def _optional_curve(rows: list[dict[str, str]], path: Path, column: str) -> tuple[float, ...]:
    """The values of ``column`` in every row, or () when the file has no such column."""
    return _column(rows, path, column) if rows and column in rows[0] else ()


def _column(
    rows: list[dict[str, str]], path: Path, column: str, *, blank_as_nan: bool = False
) -> tuple[float, ...]:
    """``column`` of every row as floats: finite numbers, or with ``blank_as_nan`` numbers and
    NaN for a blank cell (an evaluation info the env did not report); anything else is a
    :class:`ReportError` naming the file and column."""
    try:
        values = tuple(
            math.nan if blank_as_nan and not r[column] else float(r[column]) for r in rows
        )
    except (TypeError, ValueError):
        raise ReportError(f"{path}: {column} holds a value that is not a number") from None
    if not blank_as_nan and not all(math.isfinite(v) for v in values):
        raise ReportError(f"{path}: {column} holds a non-finite value")
    return values


def _read_json(path: Path) -> Any:
    """The JSON value in ``path``, or None when there is no such file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path} cannot be read: {err}") from None


def _read_energy(path: Path) -> dict[str, float]:
    """nJ per decision per preset of :data:`ENERGY_PRESETS` from an ``EnergyReport.to_dict()``
    dump: in its ``energy`` rows the run's own row comes first for each preset."""
    data = _read_json(path)
    if data is None:
        return {}
    rows = data.get("energy") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ReportError(f"{path} is not a spikerl energy report (no 'energy' rows)")
    ours: dict[str, Any] = {}
    for row in rows:  # ratio rows have no energy_nj; a NaN energy was written as null
        if "energy_nj" in row and row.get("preset") in ENERGY_PRESETS:
            ours.setdefault(row["preset"], row["energy_nj"])
    return {k: float(v) for k, v in ours.items() if isinstance(v, int | float)}
