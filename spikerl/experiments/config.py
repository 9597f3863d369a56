"""Typed, validated run configuration.

A run is described by one frozen :class:`Config` made of nested frozen dataclasses. Presets are
YAML files whose nested mappings mirror the dataclasses; they are merged onto the defaults, and
dotted overrides (``algo.tau=0.01``) are merged onto the preset. Every value is checked against
its field's type, allowed choices and range, and unknown keys are rejected with the list of
allowed keys, so a typo fails before any training starts.

Each field is declared with :func:`param`, which stores its help text and bounds in the field
metadata; ``spikerl train --help-config`` prints them.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import textwrap
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import UsageError
from .argtypes import MAX_SEED

__all__ = [
    "ActorConfig",
    "AlgoConfig",
    "Config",
    "ConfigError",
    "EnvConfig",
    "ProxyConfig",
    "RunConfig",
    "SACConfig",
    "SlopeScheduleConfig",
    "config_from_dict",
    "config_to_dict",
    "describe_config",
    "format_config_help",
    "load_config",
    "parse_overrides",
    "read_yaml_mapping",
    "yaml_problem",
]

ActorKind = Literal["ann", "lif", "clif", "dn", "plif"]
MAX_RUN_NAME = 100  # characters; folder names stay well below filesystem limits (255 bytes)
SPIKING_ACTOR_KINDS = ("lif", "clif", "dn", "plif")


class ConfigError(UsageError):
    """A configuration key or value is invalid; the message names the key."""


def param(default: Any, help: str, lo: float | None = None, hi: float | None = None) -> Any:
    """Declare a config field with help text and an inclusive numeric range ``[lo, hi]``."""
    meta = {"help": help, "lo": lo, "hi": hi}
    if isinstance(default, list | dict):
        raise TypeError("config defaults must be immutable (use a tuple)")
    return field(default=default, metadata=meta)


class _Section:
    """Base of the config dataclasses: a section made in Python (``AlgoConfig(target="x")``,
    ``dataclasses.replace(cfg.actor, kind="lfi")``) is checked as a loaded one is, with the
    key named by its class (``AlgoConfig.target``), and its values take their field's type."""

    def __post_init__(self) -> None:
        section = type(self).__name__
        for f, tp in _field_types(type(self)):
            key, value = f"{section}.{f.name}", getattr(self, f.name)
            if dataclasses.is_dataclass(tp):
                if not isinstance(value, tp):
                    raise ConfigError(f"{key}: expected {tp.__name__}(...), got {value!r}")
            else:
                object.__setattr__(self, f.name, _coerce(key, value, tp, f.metadata))


@functools.cache
def _field_types(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class EnvConfig(_Section):
    id: str = param("Pendulum-v1", "Gymnasium environment id (MuJoCo v4/v5 tasks, classic control)")
    normalize_obs: bool = param(
        False, "running mean/std observation normalisation, shared by actor, proxy and critic"
    )
    curriculum_block: int = param(
        0,
        "evaluations per reward-curriculum step for envs with set_curriculum (the quadrotor): "
        "rho = min(1, floor(e / block) / (blocks - 1)) after evaluation e; 0 = off",
        lo=0,
    )
    curriculum_end: float = param(
        1.0,
        "share of the run's evaluations over which the curriculum reaches rho = 1: the blocks are "
        "ceil(curriculum_end * evaluations / curriculum_block) (1 = in the last block, "
        "0.5 = over the first half as the guide recipe of arXiv 2510.24461 Sec. 7)",
        lo=1e-6,
        hi=1.0,
    )


@dataclass(frozen=True)
class SlopeScheduleConfig(_Section):
    kind: Literal["fixed", "stepped", "adaptive"] = param(
        "fixed",
        "surrogate slope over training: fixed (actor.slope), stepped (actor.slope to end in "
        "stages) or adaptive (from actor.slope, following the evaluation return)",
    )
    end: float = param(100.0, "stepped: final slope k_end", lo=1e-6)
    stages: int = param(10, "stepped: number of equal stages n", lo=1)
    min: float = param(1.0, "adaptive: lowest slope k_min", lo=1e-6)
    max: float = param(100.0, "adaptive: highest slope k_max", lo=1e-6)
    window: int = param(10, "adaptive: evaluations averaged (M)", lo=1)
    order: float = param(3.0, "adaptive: scheduling order p", lo=1e-6)
    return_ref: float = param(400.0, "adaptive: return that maps to s = 1 (R_ref)", lo=1e-9)
    weight_p: float = param(0.5, "adaptive: weight of the normalised return (w_p)", lo=1e-9)
    weight_d: float = param(0.5, "adaptive: weight of its first difference (w_d)", lo=0.0)


@dataclass(frozen=True)
class ActorConfig(_Section):
    kind: ActorKind = param("ann", "actor type: ann or a spiking neuron model")
    network: Literal["population", "direct"] = param(
        "population",
        "spiking actor layout: population (PopSAN encoder/decoder, arXiv 2505.24161) or direct "
        "(analog input, LIF with learnable leak and threshold, readout of the summed output "
        "spikes; arXiv 2510.24461 Sec. 5; needs actor.kind=lif, pop_in/pop_out unused)",
    )
    hidden: tuple[int, ...] = param((256, 256), "hidden layer sizes", lo=1)
    inputs: int = param(
        0,
        "direct network: leading observation entries it reads (0: all; 18 = the quadrotor "
        "state of its 146-d privileged observation)",
        lo=0,
    )
    timesteps: int = param(5, "SNN ticks per decision (T)", lo=1, hi=1000)
    pop_in: int = param(10, "encoder neurons per observation dimension", lo=1)
    pop_out: int = param(10, "output-population neurons per action dimension", lo=1)
    surrogate: Literal[
        "rectangular", "sigmoid", "fast_sigmoid", "fast_sigmoid_normalized", "arctan", "triangle"
    ] = param("rectangular", "surrogate gradient of the spike function (docs/core.md)")
    slope: float = param(
        1.0, "surrogate steepness (1.0 = rectangle of half-width 0.5, height 1)", lo=1e-6
    )
    plif_lr: float = param(1e-4, "learning rate of PLIF leak parameters (own Adam group)", lo=0.0)
    slope_schedule: SlopeScheduleConfig = field(default_factory=SlopeScheduleConfig)


@dataclass(frozen=True)
class ProxyConfig(_Section):
    hidden: tuple[int, ...] = param((512, 512), "proxy ReLU network hidden sizes", lo=1)
    lr: float = param(1e-3, "proxy Adam learning rate", lo=0.0, hi=1.0)
    updates: int = param(3, "K: proxy regression steps per training iteration", lo=1, hi=100)


@dataclass(frozen=True)
class SACConfig(_Section):
    alpha: float = param(0.2, "initial entropy temperature", lo=0.0)
    autotune: bool = param(True, "tune alpha towards target entropy -|A|")
    lr_alpha: float = param(3e-4, "temperature learning rate", lo=0.0, hi=1.0)


@dataclass(frozen=True)
class SequenceConfig(_Section):
    """Guided sequence training of a stateful spiking actor (arXiv 2510.24461 Secs. 6-10)."""

    window: int = param(100, "L: window steps per sampled sequence", lo=1)
    burn_in: int = param(50, "W: window steps that only warm the actor state (no loss)", lo=0)
    lookahead: int = param(2, "n of the n-step critic targets", lo=1)
    stride: int = param(50, "window starts are multiples of it (plus one end-aligned)", lo=1)
    min_len: int = param(100, "episodes shorter than this are not stored (padded if < L)", lo=1)
    q_term: Literal["normalized", "plain", "none"] = param(
        "normalized",
        "actor Q term: normalized (TD3+BC, alpha / mean|Q|), plain (TD3) or none (BC only)",
    )
    alpha: float = param(2.5, "TD3+BC alpha", lo=0.0)
    target_action: Literal["buffer", "policy"] = param(
        "buffer",
        "critic target action at x_{t+n'}: buffer (the stored action) or policy (the actor's "
        "output from the same unroll where that step lies in [W, L), else the stored action)",
    )
    bc_weight: float = param(0.2, "lambda_0: weight of the BC term at the start", lo=0.0)
    bc_decay: float = param(0.99, "lambda <- decay * lambda once per round", lo=0.0, hi=1.0)
    guide: str = param(
        "builtin-v2",
        "guide policy: a shipped quadrotor guide (builtin-v2, the newest; builtin or "
        "builtin-v1, the first), a run folder or checkpoint of an ANN actor on the full "
        "observation (a relative path is stored absolute when the run starts), or '' (no guide)",
    )
    guide_steps: int = param(450, "L_g at the start: steps the guide flies each episode", lo=0)
    guide_steps_min: int = param(50, "L_g never drops below this", lo=0)
    guide_steps_drop: int = param(25, "L_g decrease per round", lo=0)
    round_epochs: int = param(10, "epochs per round (L_g and lambda steps)", lo=1)
    seed_steps: int = param(
        100_000, "guide-flown steps stored before training (200 episodes of 500)", lo=0
    )
    online: bool = param(True, "collect new episodes every epoch (False: the seed data only)")
    num_envs: int = param(20, "drones collecting in parallel (vector env)", lo=1)
    updates: int = param(100, "updates per epoch", lo=1)
    explore_std: float = param(0.0, "Gaussian exploration noise on actor actions", lo=0.0)
    eval_guide_steps: int = param(50, "guide steps of each evaluation episode (W)", lo=0)


@dataclass(frozen=True)
class AlgoConfig(_Section):
    name: Literal["td3", "sac", "sequence"] = param(
        "td3", "learning algorithm (sequence: guided sequence training of a stateful SNN)"
    )
    target: Literal["polyak", "proxy"] = param(
        "polyak", "TD3 target policy: Polyak-averaged actor copy, or proxy ReLU network"
    )
    lr_actor: float = param(3e-4, "actor Adam learning rate", lo=0.0, hi=1.0)
    lr_critic: float = param(3e-4, "critic Adam learning rate", lo=0.0, hi=1.0)
    batch_size: int = param(256, "minibatch size", lo=1)
    gamma: float = param(0.99, "discount factor", lo=0.0, hi=1.0)
    tau: float = param(0.005, "Polyak factor of target networks", lo=0.0, hi=1.0)
    policy_delay: int = param(2, "critic updates per actor update (d)", lo=1)
    expl_noise: float = param(0.1, "exploration noise std, fraction of max_action", lo=0.0)
    target_noise: float = param(0.2, "target policy noise std, fraction of max_action", lo=0.0)
    noise_clip: float = param(0.5, "target noise clip, fraction of max_action", lo=0.0)
    learning_starts: int = param(25_000, "uniform-random warm-up env steps (W)", lo=0)
    buffer_size: int = param(1_000_000, "replay capacity in transitions", lo=1)
    critic_hidden: tuple[int, ...] = param((256, 256), "critic hidden sizes", lo=1)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    sac: SACConfig = field(default_factory=SACConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)


@dataclass(frozen=True)
class RunConfig(_Section):
    name: str = param("", "run directory name under runs/ (default: derived from the config)")
    seed: int = param(0, "random seed", lo=0, hi=MAX_SEED)
    total_steps: int = param(1_025_000, "env steps including warm-up", lo=1)
    eval_every: int = param(5_000, "env steps between evaluations", lo=1)
    eval_episodes: int = param(10, "deterministic episodes per evaluation", lo=1)
    checkpoint_every: int = param(0, "env steps between checkpoints (0: at every evaluation)", lo=0)
    save_buffer: bool = param(True, "store the replay buffer in checkpoints (exact resume)")
    keep_policies: bool = param(
        False,
        "also keep the policy of every evaluation as policies/step-<N>.pt (what best.pt holds: "
        "the actor's weights), e.g. to choose one afterwards by a longer evaluation",
    )
    tensorboard: bool = param(False, "also log to TensorBoard (needs spikerl[tb])")
    device: str = param("cpu", "torch device: cpu, cuda, cuda:N or auto")
    replay_on_device: bool = param(
        False,
        "keep the TD3/SAC replay buffer in run.device's memory (for GPU runs: each sampled "
        "batch is gathered there instead of copied from the host; the same batches)",
    )
    threads: int = param(0, "torch CPU threads (0: leave torch's default)", lo=0)
    precision: Literal["float32", "bfloat16"] = param(
        "float32",
        "number format of the actor's matrix products in TD3 and sequence updates: float32, "
        "or bfloat16 autocast (fast on CPUs with AMX or AVX512-BF16 and on GPUs; critics, "
        "parameters, optimiser and neuron states and acting stay float32)",
    )
    compile: bool = param(
        False,
        "run the spiking layers' tick loops through torch.compile (fused element-wise "
        "kernels, needs a C++ compiler; compiles for about 25 s at the start; on a CPU slower "
        "than the default C kernel, 0.91-0.96x: for machines without it, docs/performance.md)",
    )
    progress: bool = param(True, "show a progress bar")

    @property
    def checkpoint_interval(self) -> int:
        """Env steps between checkpoints: ``checkpoint_every``, or ``eval_every`` when 0."""
        return self.checkpoint_every or self.eval_every


@dataclass(frozen=True)
class Config(_Section):
    env: EnvConfig = field(default_factory=EnvConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_run_name(self.run.name)
        _check_budgets(self.algo, self.run)
        if self.algo.name == "sac" and self.actor.kind != "ann":
            raise ConfigError(
                "actor.kind: SAC supports only 'ann' actors for now; spiking actors train with "
                "algo.name=td3"
            )
        if self.algo.name == "sac" and self.run.precision != "float32":
            raise ConfigError(
                "run.precision: SAC runs in float32 only (its log-probabilities need it); "
                "bfloat16 is for algo.name td3 or sequence"
            )
        if self.actor.kind == "ann" and self.actor.slope_schedule.kind != "fixed":
            raise ConfigError(
                "actor.slope_schedule.kind: a slope schedule needs a spiking actor "
                f"(actor.kind one of {list(SPIKING_ACTOR_KINDS)})"
            )
        if self.actor.network == "direct" and self.actor.kind != "lif":
            raise ConfigError(
                f"actor.network: 'direct' uses its own LIF neurons (learnable leak and "
                f"threshold); set actor.kind=lif, not {self.actor.kind!r}"
            )
        schedule = self.actor.slope_schedule
        if schedule.min > schedule.max:
            raise ConfigError(
                f"actor.slope_schedule.min ({schedule.min}) is above actor.slope_schedule.max "
                f"({schedule.max})"
            )
        if self.algo.name == "sac" and self.algo.target == "proxy":
            raise ConfigError("algo.target: 'proxy' is a TD3 target; SAC uses 'polyak'")
        if self.env.curriculum_end != 1.0 and not self.env.curriculum_block:
            raise ConfigError(
                "env.curriculum_end: paces a reward curriculum, which is off "
                "(env.curriculum_block = 0); set env.curriculum_block or leave this at 1"
            )
        if self.algo.name == "sequence":
            _check_sequence(self)
            if self.run.replay_on_device:
                raise ConfigError(
                    "run.replay_on_device: the sequence method's episode buffer stays on the "
                    "host for now; set it for algo.name td3 or sac"
                )

    @property
    def run_name(self) -> str:
        """The run's directory name: ``run.name`` or ``<algo>-<method>-<actor>-<env>-s<seed>``
        (a namespaced or module-prefixed env id contributes its last part, ``/`` as ``-``).
        The method: ``pt-`` for TD3's proxy target; for the sequence method its objective and
        data (``td3bc-jsrl-``, ``bc-jsrl-``, ``offline-bc-``, ``offline-td3bc-``, ``td3-``; then
        ``policy-target-`` for ``target_action: policy``), so the presets of one comparison do
        not share a folder."""
        if self.run.name:
            return self.run.name
        tag = ""
        if self.algo.name == "td3":
            tag = {"polyak": "", "proxy": "pt-"}[self.algo.target]
        elif self.algo.name == "sequence":
            tag = _sequence_method(self.algo.sequence) + "-"
        env = self.env.id.rpartition(":")[2].replace("/", "-")  # spikerl/Quadrotor-v0, pkg:Env
        return f"{self.algo.name}-{tag}{self.actor.kind}-{env}-s{self.run.seed}"


def _sequence_method(seq: SequenceConfig) -> str:
    """``td3bc``, ``td3`` or ``bc`` (the actor's Q term), jump-started (``-jsrl``: the guide
    flies part of every collected episode) or ``offline-`` (the seed data only)."""
    objective = {"normalized": "td3bc", "plain": "td3", "none": "bc"}[seq.q_term]
    if not seq.online:
        method = f"offline-{objective}"
    else:
        method = f"{objective}-jsrl" if seq.guide_steps > 0 else objective
    return f"{method}-policy-target" if seq.target_action == "policy" else method


def _check_sequence(cfg: Config) -> None:
    """The sequence method's own constraints: a stateful LIF actor and sizes that fit."""
    seq = cfg.algo.sequence
    if cfg.actor.kind != "lif" or cfg.actor.network != "direct":
        raise ConfigError(
            "algo.name: 'sequence' trains the stateful direct LIF controller; set "
            "actor.kind=lif and actor.network=direct"
        )
    if cfg.algo.target != "polyak":
        raise ConfigError("algo.target: the sequence method uses Polyak target critics")
    if cfg.env.normalize_obs:
        raise ConfigError(
            "env.normalize_obs: the sequence method reads the quadrotor's observation as it "
            "is (the guide and the critics were made on it); set env.normalize_obs=false"
        )
    if seq.burn_in >= seq.window:
        raise ConfigError(
            f"algo.sequence.burn_in ({seq.burn_in}) must be below algo.sequence.window "
            f"({seq.window}), or no window step carries a loss"
        )
    if seq.guide_steps_min > seq.guide_steps:
        raise ConfigError(
            f"algo.sequence.guide_steps_min ({seq.guide_steps_min}) is above "
            f"algo.sequence.guide_steps ({seq.guide_steps}); L_g only ever drops"
        )
    if cfg.algo.buffer_size < max(seq.window, seq.min_len):
        raise ConfigError(
            f"algo.buffer_size ({cfg.algo.buffer_size} steps) cannot hold one stored episode "
            f"(algo.sequence.min_len {seq.min_len}, window {seq.window})"
        )
    if seq.q_term == "none" and seq.bc_weight == 0:
        raise ConfigError("algo.sequence: q_term 'none' with bc_weight 0 leaves no actor loss")
    if not seq.online and seq.seed_steps == 0:
        raise ConfigError("algo.sequence: online=false trains on the seed data; set seed_steps")


def _check_run_name(name: str) -> None:
    """``run.name`` must be a plain folder name of at most :data:`MAX_RUN_NAME` characters."""
    if name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(f"run.name: {name!r} must be a plain folder name (no '/', '.', '..')")
    if len(name) > MAX_RUN_NAME:
        raise ConfigError(
            f"run.name: {len(name)} characters is too long; allowed at most {MAX_RUN_NAME}"
        )


def _check_budgets(algo: AlgoConfig, run: RunConfig) -> None:
    """Sizes that are valid alone but not together: a buffer below one batch, no evaluation."""
    if algo.buffer_size < algo.batch_size:
        raise ConfigError(
            f"algo.buffer_size ({algo.buffer_size}) is smaller than algo.batch_size "
            f"({algo.batch_size}); the replay buffer could never fill one batch"
        )
    if run.eval_every > run.total_steps:
        raise ConfigError(
            f"run.eval_every ({run.eval_every}) is larger than run.total_steps "
            f"({run.total_steps}); the run would never evaluate after the start"
        )


# --------------------------------------------------------------------------------------------
# Conversion between dataclasses and plain mappings, with validation.


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        return f"list of {typing.get_args(tp)[0].__name__}"
    return getattr(tp, "__name__", str(tp))


def _parse_number(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def _coerce_number(key: str, value: Any, tp: type) -> int | float:
    if isinstance(value, str):
        value = _parse_number(value)  # YAML reads 1e4 as a string
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if tp is int else "a number"
        raise ConfigError(f"{key}: expected {kind}, got {value!r}")
    if tp is int:
        if not math.isfinite(value) or value != int(value):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    return float(value)


def _coerce(key: str, value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    """Check ``value`` against type ``tp`` and the range in ``meta``; return the typed value."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(choices)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) == 0:
            raise ConfigError(f"{key}: expected a non-empty {_type_name(tp)}, got {value!r}")
        (item_tp, _) = typing.get_args(tp)
        return tuple(_coerce(f"{key}[{i}]", v, item_tp, meta) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    value = _coerce_number(key, value, tp)
    lo, hi = meta.get("lo"), meta.get("hi")
    if not math.isfinite(value):
        raise ConfigError(f"{key}: {value!r} is not a finite number; allowed {_bounds(lo, hi)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{key}: {value!r} is out of range; allowed {_bounds(lo, hi)}")
    return value


def _bounds(lo: float | None, hi: float | None) -> str:
    """Allowed values of a numeric field: ``[0, 4294967295]`` or ``finite values >= 1e-06``."""
    if lo is not None and hi is not None:
        return f"[{lo}, {hi}]"
    if lo is not None:
        return f"finite values >= {lo}"
    if hi is not None:
        return f"finite values <= {hi}"
    return "finite values"


def _unknown_key_error(key: str, allowed: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], allowed, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key '{key}'.{hint} Allowed keys here: {sorted(allowed)}")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise _unknown_key_error(prefix + str(key), list(fields))
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(prefix + name, value, tp, fields[name].metadata)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build a validated :class:`Config` from a nested mapping (missing keys take defaults)."""
    return _build(Config, data or {}, "")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain-Python mapping of a config (tuples become lists), suitable for YAML."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = config_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def flatten_config(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config mapping as ``{"algo.tau": 0.005, ...}``."""
    flat: dict[str, Any] = {}
    for key, value in (data if isinstance(data, dict) else {}).items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_diff(saved: Any, wanted: Mapping[str, Any], label: str, limit: int = 3) -> str:
    """Where two nested config mappings differ, for a message:
    ``algo.learning_starts=100 (<label>: 200)`` for up to ``limit`` keys."""
    old, new = flatten_config(saved), flatten_config(dict(wanted))
    unset = "(unset)"
    keys = [k for k in {**old, **new} if old.get(k, unset) != new.get(k, unset)]
    parts = [f"{k}={old.get(k, unset)} ({label}: {new.get(k, unset)})" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"{len(keys) - limit} more keys")
    return ", ".join(parts) or "no config mapping"


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``extra`` merged over ``base``, section by section. A section of ``base`` that is not a
    mapping (``actor: 7``) is an error where ``extra`` sets keys in it, as it would be alone,
    not silently replaced."""
    merged = dict(base)
    for key, value in extra.items():
        old = merged.get(key)
        if isinstance(value, Mapping) and old is not None and not isinstance(old, Mapping):
            raise ConfigError(f"{prefix}{key}: expected a mapping, got {old!r}")
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            merged[key] = _deep_merge(dict(old), value, f"{prefix}{key}.")
        else:
            merged[key] = value
    return merged


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["algo.tau=0.01", "actor.hidden=[64,64]"]`` into a nested mapping (YAML values)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key=value, e.g. run.seed=3")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"{key}: cannot parse value {raw!r}: {yaml_problem(err)}") from None
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override")
        node[parts[-1]] = value
    return nested


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML preset (or the defaults when ``path`` is None) and apply dotted overrides.

    A preset may start from another one: ``base: other.yaml`` (relative to the preset) is
    loaded first and the preset's own keys are merged over it, recursively.
    """
    if isinstance(overrides, str):  # would be read character by character
        raise ConfigError(
            f"overrides: a list of 'key=value' strings, not one string: [{overrides!r}]"
        )
    data = {} if path is None else _read_preset(Path(path), ())
    data = _deep_merge(data, parse_overrides(overrides or []))
    cfg = config_from_dict(data)
    _check_it_learns(cfg)
    return _with_absolute_guide(cfg)


def _with_absolute_guide(cfg: Config) -> Config:
    """``algo.sequence.guide`` given as a file path is read from the working directory when the
    config is made and kept as an absolute path, so the run's saved config names the same guide
    wherever it is resumed or evaluated from. (Shipped names, ``builtin*``, and ``''`` stay.)"""
    guide = cfg.algo.sequence.guide
    if not guide or guide.startswith("builtin"):
        return cfg
    sequence = dataclasses.replace(cfg.algo.sequence, guide=str(Path(guide).expanduser().resolve()))
    return dataclasses.replace(cfg, algo=dataclasses.replace(cfg.algo, sequence=sequence))


def _check_it_learns(cfg: Config) -> None:
    """A new TD3/SAC config must update its networks at least once. (Checked where configs
    are made, not where a run's saved config is read: an old run stays readable.)"""
    algo, run = cfg.algo, cfg.run
    if algo.name != "sequence" and algo.learning_starts >= run.total_steps:
        raise ConfigError(
            f"algo.learning_starts ({algo.learning_starts}) is not below run.total_steps "
            f"({run.total_steps}); the run would never update its networks (lower "
            "algo.learning_starts)"
        )


def _read_preset(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """A preset's mapping with its ``base`` chain merged in (a cycle is a ConfigError)."""
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError(f"config file {str(path)!r}: 'base' presets form a cycle: {cycle}")
    data = read_yaml_mapping(path, "config file")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"config file {str(path)!r}: base must be a YAML file path")
    return _deep_merge(_read_preset(path.parent / base, (*chain, resolved)), data)


def _read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; a missing file, a folder or a binary file is a ConfigError."""
    if path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is a directory; expected a YAML file")
    if not path.exists():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {str(path)!r} is not a text YAML file (not UTF-8)") from None
    except OSError as err:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {err.strerror or err}") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """A one-line description of a YAML error: what is wrong and where (line, column)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (plain YAML keeps the
    last one silently, so a mistyped file would train with a value its reader did not see)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor``, expanded below
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml_mapping(path: str | Path, what: str = "YAML file") -> dict[str, Any]:
    """The top-level mapping of a YAML file (empty file: ``{}``), with one-line errors; a key
    given twice in one mapping is an error."""
    path = Path(path)
    text = _read_text(path, what)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except yaml.reader.ReaderError:  # control characters such as NUL: a binary file
        raise ConfigError(
            f"{what} {str(path)!r} is not a text YAML file (binary characters)"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def describe_config(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Rows ``(key, type, default, help)`` for every leaf field, for ``--help-config``."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe_config(tp, f"{prefix}{f.name}."))
            continue
        meta = f.metadata
        lo, hi = meta.get("lo"), meta.get("hi")
        rng = "" if lo is None and hi is None else f" in [{lo}, {'inf' if hi is None else hi}]"
        rows.append((prefix + f.name, _type_name(tp) + rng, repr(f.default), meta.get("help", "")))
    return rows


def format_config_help(width: int = 96) -> str:
    """``--help-config`` text: one left-aligned block per key, grouped by section.

    Each block is ``key  type  default: value`` with the help text wrapped under it, indented;
    no line is longer than ``width``.
    """
    blocks: list[str] = []
    section = None
    for key, tp, default, text in describe_config():
        group = key.rpartition(".")[0]
        if group != section:
            section = group
            blocks.append(f"\n[{group}]")
        head = textwrap.fill(f"{key}  {tp}  default: {default}", width, subsequent_indent="    ")
        body = textwrap.fill(text, width, initial_indent="    ", subsequent_indent="    ")
        blocks.append(f"{head}\n{body}" if text else head)
    return "\n".join(blocks).lstrip("\n")
