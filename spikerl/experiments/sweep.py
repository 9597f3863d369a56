"""Sweep files: a grid of runs (methods x environments x seeds x any config key) from one YAML.

A sweep file names a base preset, shared overrides, the axes of the grid and an output folder::

    name: pt-table1-short
    base: ../td3_pendulum.yaml          # optional; relative to this file
    set:                                # optional overrides shared by every run
      run.total_steps: 6000
    methods:                            # optional labelled axis: label -> overrides
      ANN TD3: {actor.kind: ann, algo.target: polyak}
      PT-LIF: {actor.kind: lif, algo.target: proxy}
    axes:                               # key -> list of values; the grid is their product
      env.id: [Pendulum-v1, InvertedPendulum-v4]
      run.seed: [0, 1, 2]
    zip:                                # optional: keys whose lists advance together
      - {algo.tau: [0.005, 0.01], algo.gamma: [0.99, 0.98]}
    exclude:                            # optional: drop every run matching all of a mapping
      - {method: PT-LIF, env.id: Pendulum-v1}
    where:                              # optional: extra overrides for matching runs
      - when: {method: PT-LIF, env.id: InvertedPendulum-v4}
        set: {algo.proxy.lr: 0.003}
    output: runs/sweeps/pt-table1-short # relative to the current directory
    baseline: ANN TD3                   # the report's default APG baseline
    retries: 1                          # re-runs of a crashed run (each resumes its checkpoint)
    threads: 1                          # torch threads per run (run.threads)
    energy: false                       # measure energy per decision after each run
    gpus: 0                             # GPUs per run (Ray backend; run.device=cuda)

:func:`load_sweep` validates the file and expands it: the grid is the product of ``methods``,
each ``axes`` entry and each ``zip`` group, minus ``exclude`` matches, with ``where`` patches
applied. ``exclude`` and ``when`` match on config keys and on ``method`` (the label). Every
run's config is built and validated at load time, so a bad value fails before anything runs,
naming the run. Before a sweep (or its ``--dry-run``) starts anything, :func:`check_envs`
builds each distinct environment of the runs still to run once, so an unknown env id or a
missing optional dependency fails before anything runs too.

Run names derive stably from the run's own axis values, in the order method, env, other axes,
seed: ``pt-lif_Pendulum-v1_s0``, ``lif_Hopper-v4_slope-2.0_s3``. Names that would collide (or
exceed :data:`~spikerl.experiments.config.MAX_RUN_NAME`) get a hash of their overrides
appended, so a name never depends on which other runs the grid holds.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import (
    MAX_RUN_NAME,
    Config,
    ConfigError,
    SequenceConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    read_yaml_mapping,
)

__all__ = [
    "MANIFEST_NAME",
    "SWEEP_KEYS",
    "Sweep",
    "SweepRun",
    "check_envs",
    "expand",
    "load_sweep",
    "method_label",
    "sequence_label",
]

MANIFEST_NAME = "sweep.json"
LOGS_DIR, CONFIGS_DIR = "logs", "configs"
RESERVED_NAMES = frozenset({LOGS_DIR, CONFIGS_DIR, "report"})
SWEEP_KEYS = {
    "name": "sweep name (default: the file's stem)",
    "base": "base preset YAML, relative to the sweep file (default: built-in defaults)",
    "set": "mapping of overrides shared by every run",
    "methods": "mapping label -> overrides: a labelled axis",
    "axes": "mapping config key -> list of values; the grid is their product",
    "zip": "list of mappings key -> list; each mapping's lists advance together",
    "exclude": "list of mappings; a run matching every key of one is dropped",
    "where": "list of {when: mapping, set: mapping}: extra overrides for matching runs",
    "output": "output folder, relative to the current directory",
    "baseline": "method label the report compares against (APG)",
    "retries": "times a crashed run is re-run (from its checkpoint), default 1",
    "threads": "torch threads per run, default 1",
    "energy": "measure energy per decision after each run (energy.json), default false",
    "gpus": "GPUs requested per run on the Ray backend, default 0",
}
_ENV_KEY, _SEED_KEY = "env.id", "run.seed"


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its folder name, labels and the overrides that make it."""

    name: str
    method: str
    env: str
    seed: int
    overrides: dict[str, Any]
    config: Config = field(compare=False, repr=False)

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "env": self.env,
            "seed": self.seed,
            "overrides": self.overrides,
        }


@dataclass(frozen=True)
class Sweep:
    """A validated, expanded sweep file."""

    name: str
    source: Path
    output: Path
    runs: tuple[SweepRun, ...]
    baseline: str | None = None
    retries: int = 1
    threads: int = 1
    energy: bool = False
    gpus: float = 0.0

    def manifest(self) -> dict[str, Any]:
        """``sweep.json``: what :mod:`~spikerl.experiments.report` reads."""
        return {
            "version": 1,
            "name": self.name,
            "source": str(self.source),
            "baseline": self.baseline,
            "runs": [run.manifest_entry() for run in self.runs],
        }


def method_label(cfg: Config) -> str:
    """The papers' name of a config's method: ``ANN TD3``, ``PN-ANN``, ``LIF``, ``PT-LIF``,
    ``SAC`` (arXiv 2505.24161 Table 1 naming; PN-ANN is its appendix's ANN with a proxy), and
    for sequence training :func:`sequence_label`."""
    if cfg.algo.name == "sac":
        return "SAC"
    if cfg.algo.name == "sequence":
        return sequence_label(cfg)
    proxy = cfg.algo.target == "proxy"
    if cfg.actor.kind == "ann":
        return "PN-ANN" if proxy else "ANN TD3"
    kind = cfg.actor.kind.upper()
    return f"PT-{kind}" if proxy else kind


PRESET_GUIDE = SequenceConfig().guide  # the presets' guide, the config default


def sequence_label(cfg: Config) -> str:
    """arXiv 2510.24461's names for sequence training: the loss (``BC`` without a Q term,
    ``TD3`` with the plain Q term and no BC term, ``TD3 (norm. Q)`` with TD3+BC's normalised Q
    term and no BC term, else ``TD3BC``), then ``offline`` on a fixed dataset, ``+JSRL`` when a
    guide jump-starts the online collection, or ``online`` for online BC without one:
    ``TD3BC+JSRL``, ``BC``, ``TD3BC offline``, ``TD3``, ``BC+JSRL``
    (``configs/quadrotor/guided_bc.yaml``) and the ablation's ``TD3 (norm. Q)+JSRL``,
    ``TD3BC`` and ``TD3 (norm. Q)``. A guide other than the presets' (``builtin-v2``, the
    config default) is named after it, ``TD3BC+JSRL [builtin-v1]``, and the critic targets at
    the policy's actions (``target_action: policy``) too, ``TD3BC+JSRL [policy target]``, so
    runs of different settings never average as seeds of one method."""
    label, seq = _sequence_loss_label(cfg), cfg.algo.sequence
    guide = "builtin-v1" if seq.guide == "builtin" else _shown_path(seq.guide)  # one name
    notes = [guide] if guide not in ("", PRESET_GUIDE) else []
    if seq.target_action == "policy":
        notes.append("policy target")
    return f"{label} [{', '.join(notes)}]" if notes else label


def _shown_path(guide: str) -> str:
    """A guide file (stored absolute) as the user named it: relative to the working folder
    where it lies below it."""
    path = Path(guide)
    if not path.is_absolute():  # a name, or a config written before guides were made absolute
        return guide
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return guide


def _sequence_loss_label(cfg: Config) -> str:
    seq = cfg.algo.sequence
    if seq.q_term == "none":
        loss = "BC"
    elif seq.bc_weight == 0:
        loss = "TD3" if seq.q_term == "plain" else "TD3 (norm. Q)"
    else:
        loss = "TD3BC"
    if not seq.online:
        return loss if loss == "BC" else f"{loss} offline"
    if seq.guide and seq.guide_steps > 0:
        return f"{loss}+JSRL"
    return "BC online" if loss == "BC" else loss


# --------------------------------------------------------------------------------------------
# Reading and validating the file


def _mapping(data: Any, key: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"sweep key '{key}': expected a mapping, got {data!r}")
    return {str(k): v for k, v in data.items()}


def _mappings(data: Any, key: str) -> list[dict[str, Any]]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(f"sweep key '{key}': expected a list of mappings, got {data!r}")
    return [_mapping(item, f"{key}[{i}]") for i, item in enumerate(data)]


def _values(key: str, values: Any) -> list[Any]:
    if not isinstance(values, list) or not values:
        raise ConfigError(
            f"sweep axis '{key}': expected a non-empty list of values, got {values!r}"
        )
    return values


def _int_key(data: Mapping[str, Any], key: str, default: int, lo: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f"sweep key '{key}': expected an integer >= {lo}, got {value!r}")
    return value


def _check_keys(data: Mapping[str, Any], path: Path) -> None:
    unknown = [k for k in data if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(
            f"{path}: unknown sweep key '{unknown[0]}'; allowed keys: {sorted(SWEEP_KEYS)}"
        )


# --------------------------------------------------------------------------------------------
# Expansion


@dataclass
class _Point:
    """A grid point being built: overrides, the method label and name tokens by role."""

    overrides: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    tokens: list[tuple[int, str]] = field(default_factory=list)  # (order, token)


def _slug(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-").lower() or "x"


def _token(key: str, value: Any) -> tuple[int, str]:
    if key == _ENV_KEY:
        return 1, str(value).rpartition(":")[2].replace("/", "-")  # module:Env-v0 -> Env-v0
    if key == _SEED_KEY:
        return 3, f"s{value}"
    return 2, f"{key.rsplit('.', 1)[-1].replace('_', '-')}-{_slug(value)}"


def _factors(
    methods: Mapping[str, Any], axes: Mapping[str, Any], zips: list[dict[str, Any]]
) -> list[list[_Point]]:
    """One list of partial points per grid dimension."""
    factors = []
    if methods:
        factors.append(
            [
                _Point(_mapping(o, f"methods.{label}"), label, [(0, _slug(label))])
                for label, o in methods.items()
            ]
        )
    for key, values in axes.items():
        factors.append([_Point({key: v}, None, [_token(key, v)]) for v in _values(key, values)])
    for i, group in enumerate(zips):
        lists = {key: _values(key, values) for key, values in group.items()}
        lengths = {len(v) for v in lists.values()}
        if len(lengths) != 1:
            raise ConfigError(f"sweep key 'zip[{i}]': its lists differ in length {sorted(lengths)}")
        factors.append(
            [
                _Point(
                    dict(zip(lists, row, strict=True)),
                    None,
                    [_token(k, v) for k, v in zip(lists, row, strict=True)],
                )
                for row in zip(*lists.values(), strict=True)
            ]
        )
    return factors


def _combine(parts: Iterable[_Point]) -> _Point:
    point = _Point()
    for part in parts:
        clash = set(point.overrides) & set(part.overrides)
        if clash:
            raise ConfigError(f"sweep: key '{sorted(clash)[0]}' is set by two axes; use one")
        point.overrides.update(part.overrides)
        point.method = part.method or point.method
        point.tokens.extend(part.tokens)
    return point


_MISSING = object()


def _matches(point: _Point, pattern: Mapping[str, Any], label: str) -> bool:
    for key, value in pattern.items():
        actual = label if key == "method" else point.overrides.get(key, _MISSING)
        if actual != value:
            return False
    return True


def _overrides_list(overrides: Mapping[str, Any]) -> list[str]:
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]


def _build_config(base: Path | None, shared: Mapping[str, Any], point: _Point) -> Config:
    try:
        return load_config(base, _overrides_list({**shared, **point.overrides}))
    except ConfigError as err:
        where = ", ".join(f"{k}={v}" for k, v in point.overrides.items()) or "shared settings"
        raise ConfigError(f"sweep run ({where}): {err}") from None


def _name(point: _Point, method: str) -> str:
    tokens = sorted(point.tokens, key=lambda t: t[0])  # stable: keeps the file's order per role
    if not any(order in (0, 2) for order, _ in tokens):  # no axis names the method
        tokens.insert(0, (0, _slug(method)))
    return "_".join(token for _, token in tokens)


def _digest(overrides: Mapping[str, Any]) -> str:
    text = json.dumps(overrides, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _unique_names(runs: list[SweepRun]) -> list[SweepRun]:
    """Append an overrides hash to names that collide or are too long."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.name] = counts.get(run.name, 0) + 1
    out = []
    for run in runs:
        name = run.name
        if counts[name] > 1 or len(name) > MAX_RUN_NAME or name in RESERVED_NAMES:
            name = f"{name[: MAX_RUN_NAME - 9]}_{_digest(run.overrides)}"
        out.append(_renamed(run, name))
    seen: set[str] = set()
    for run in out:
        if run.name in seen:  # the same overrides twice: a value repeated, or two labels
            settings = ", ".join(f"{k}={v}" for k, v in run.overrides.items()) or "none"
            raise ConfigError(
                f"sweep: the run {run.name} is listed twice (the same settings: {settings}); "
                "remove the repeated value, or the method that repeats another"
            )
        seen.add(run.name)
    return out


def _renamed(run: SweepRun, name: str) -> SweepRun:
    data = config_to_dict(run.config)
    data["run"]["name"] = name
    return SweepRun(name, run.method, run.env, run.seed, run.overrides, config_from_dict(data))


def _method_of(
    point: _Point, base: Path | None, shared: Mapping[str, Any], axis_keys: set[str]
) -> str:
    """The method label: the ``methods`` label, else the non-env, non-seed axis values, else
    :func:`method_label` of the point's config."""
    if point.method is not None:
        return point.method
    extra = [f"{k}={v}" for k, v in point.overrides.items() if k in axis_keys]
    return ", ".join(extra) if extra else method_label(_build_config(base, shared, point))


def expand(data: Mapping[str, Any], source: Path, threads: int = 1) -> list[SweepRun]:
    """The runs of a sweep mapping (see module docstring), validated, in grid order."""
    base = data.get("base")
    if base is not None and not isinstance(base, str):
        raise ConfigError(f"sweep key 'base': expected a file path, got {base!r}")
    base_path = (source.parent / base) if base else None
    shared = _mapping(data.get("set"), "set")
    methods = _mapping(data.get("methods"), "methods")
    axes = _mapping(data.get("axes"), "axes")
    zips = _mappings(data.get("zip"), "zip")
    excludes = _mappings(data.get("exclude"), "exclude")
    patches = _where(data.get("where"))
    axis_keys = {k for k in axes if k not in (_ENV_KEY, _SEED_KEY)}
    axis_keys |= {k for group in zips for k in group if k not in (_ENV_KEY, _SEED_KEY)}
    # the sweep decides threads (the scheduler's CPU request) and logs go to files, not bars
    shared = {**shared, "run.threads": threads, "run.progress": False}
    runs = []
    for parts in itertools.product(*_factors(methods, axes, zips)):
        point = _combine(parts)
        label = _method_of(point, base_path, shared, axis_keys)
        if any(_matches(point, pattern, label) for pattern in excludes):
            continue
        for when, extra in patches:
            if _matches(point, when, label):
                point.overrides.update(extra)
        cfg = _build_config(base_path, shared, point)
        runs.append(
            SweepRun(_name(point, label), label, cfg.env.id, cfg.run.seed, point.overrides, cfg)
        )
    if not runs:
        raise ConfigError(f"{source}: the sweep has no runs (every combination is excluded)")
    return _unique_names(runs)


def _where(data: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    patches = []
    for i, item in enumerate(_mappings(data, "where")):
        if set(item) != {"when", "set"}:
            raise ConfigError(f"sweep key 'where[{i}]': expected exactly the keys 'when' and 'set'")
        patches.append(
            (_mapping(item["when"], f"where[{i}].when"), _mapping(item["set"], f"where[{i}].set"))
        )
    return patches


def check_envs(runs: Iterable[SweepRun], build: bool = True) -> None:
    """Build each distinct env id of ``runs`` once, as ``spikerl train`` does before it
    writes anything: an unknown id (with close matches) or a missing optional dependency raises
    its :class:`~spikerl.errors.UsageError` naming the runs. Gymnasium's warnings (a ``-v4``
    id is out of date, ...) are left to the runs' logs. ``build=False`` only looks the ids up
    (a Ray driver need not have the packages its workers simulate with)."""
    from ..envs import check_env, check_env_id
    from ..errors import SpikerlError

    check = check_env if build else check_env_id
    by_env: dict[str, list[str]] = {}
    for run in runs:
        by_env.setdefault(run.env, []).append(run.name)
    for env_id, names in by_env.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check(env_id)
        except SpikerlError as err:
            runs = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
            raise type(err)(f"sweep run {runs} ({_ENV_KEY}={env_id}): {err}") from None


def load_sweep(path: str | Path, output: str | Path | None = None) -> Sweep:
    """Read, validate and expand the sweep file at ``path`` (``output`` overrides its own)."""
    path = Path(path)
    data = read_yaml_mapping(path, "sweep file")
    _check_keys(data, path)
    threads = _int_key(data, "threads", 1, 1)
    out = output if output is not None else data.get("output")
    if not isinstance(out, str | Path) or not str(out):
        raise ConfigError(f"{path}: sweep key 'output' (the output folder) is required")
    gpus = data.get("gpus", 0)
    if isinstance(gpus, bool) or not isinstance(gpus, int | float) or gpus < 0:
        raise ConfigError(f"sweep key 'gpus': expected a number >= 0, got {gpus!r}")
    energy = data.get("energy", False)
    if not isinstance(energy, bool):
        raise ConfigError(f"sweep key 'energy': expected true or false, got {energy!r}")
    baseline = data.get("baseline")
    runs = expand(data, path, threads)
    if baseline is not None and baseline not in {r.method for r in runs}:
        methods = sorted({r.method for r in runs})
        raise ConfigError(
            f"sweep key 'baseline': {baseline!r} is not a method of this sweep; "
            f"choose one of {methods}"
        )
    return Sweep(
        name=str(data.get("name") or path.stem),
        source=path,
        output=Path(out),
        runs=tuple(runs),
        baseline=baseline,
        retries=_int_key(data, "retries", 1, 0),
        threads=threads,
        energy=energy,
        gpus=float(gpus),
    )
