"""Environment construction: Gymnasium tasks with actions rescaled to [-1, 1].

:func:`make_env` builds a Gymnasium environment (MuJoCo v4 tasks as the papers report them, v5
for new work, classic control), rescales its Box action space to ``[-1, 1]`` so every agent uses
``max_action = 1``, optionally normalises observations with running statistics, and seeds it.
An unknown id fails with a list of close matches; an env whose optional dependency is missing
(Box2D, MuJoCo, pygame for rendering) fails with the package to install. Gymnasium's warnings
raised while building an env (such as "Hopper-v4 is out of date") are shown once per process,
without terminal colour codes.
"""

from __future__ import annotations

import difflib
import importlib
import re
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import MissingDependencyError, UsageError

__all__ = [
    "EnvError",
    "ObservationNormalizer",
    "action_bounds",
    "check_env",
    "check_env_id",
    "env_dims",
    "find_wrapper",
    "make_env",
    "make_env_wrappers",
    "missing_dependency",
]

#: Gymnasium env family (``gymnasium.envs.<family>``) -> what to install for it.
_INSTALL = {
    "box2d": 'pip install swig "gymnasium[box2d]"',
    "mujoco": 'pip install "gymnasium[mujoco]"',
    "classic_control": 'pip install "gymnasium[classic-control]"',
    "toy_text": 'pip install "gymnasium[toy-text]"',
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SHOWN_WARNINGS: set[tuple[type[Warning], str]] = set()


class EnvError(UsageError):
    """The environment id is unknown or the environment is unsuitable."""


def check_env_id(env_id: str) -> None:
    """Raise :class:`EnvError` listing close matches if ``env_id`` is not registered.

    Gymnasium's ``"module:EnvName-v0"`` form (a user package that registers its own envs on
    import) imports ``module`` first; a module that cannot be imported is an :class:`EnvError`.
    """
    registry = gym.envs.registry
    module, sep, env_id = env_id.rpartition(":")
    if sep:
        _import_env_module(module)
    if env_id in registry:
        return
    close = difflib.get_close_matches(env_id, list(registry), n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise EnvError(f"unknown environment id {env_id!r}.{hint}")


def _import_env_module(module: str) -> None:
    """Import the module named in a ``"module:EnvName-v0"`` id (it registers its envs)."""
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise EnvError(f"cannot import {module!r}, named in the environment id: {err}") from None


def _install_hint(env_id: str, err: Exception) -> str:
    """The install command for ``env_id``'s family, or the one gymnasium's message names."""
    entry_point = str(getattr(gym.spec(env_id), "entry_point", ""))
    family = entry_point.split(":")[0].split(".")[2:3]
    if entry_point.startswith("gymnasium.envs.") and family and family[0] in _INSTALL:
        return _INSTALL[family[0]]
    found = re.search(r"pip install [^`'\n]+", str(err))
    return found.group(0).strip().rstrip(".") if found else "install the package it names"


def missing_dependency(env_id: str, err: Exception) -> MissingDependencyError:
    """A :class:`MissingDependencyError` for gymnasium's ``DependencyNotInstalled`` ``err``."""
    named = re.match(r"\s*([\w.\-]+) is not installed", _ANSI.sub("", str(err)))
    what = named.group(1) if named else "an optional dependency"
    return MissingDependencyError(
        f"environment {env_id!r} needs {what}, which is not installed: {_install_hint(env_id, err)}"
    )


def _gym_make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, **kwargs)`` with typed dependency errors and tidy warnings.

    ``DependencyNotInstalled`` becomes :class:`MissingDependencyError` naming ``env_id`` and
    the package to install; warnings are re-emitted once per process without colour codes.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            env = gym.make(env_id, **kwargs)
        except gym.error.DependencyNotInstalled as err:
            raise missing_dependency(env_id, err) from None
    for warning in caught:
        _reemit(warning)
    return env


def _reemit(warning: warnings.WarningMessage) -> None:
    """Show a caught warning once per process (same category and text), colour codes stripped."""
    text = _ANSI.sub("", str(warning.message))
    key = (warning.category, text)
    if key in _SHOWN_WARNINGS:
        return
    _SHOWN_WARNINGS.add(key)
    # Keep gymnasium's module so its own filter (DeprecationWarnings shown to users) applies.
    module = "gymnasium.envs" if "gymnasium" in warning.filename else None
    warnings.warn_explicit(
        text, warning.category, warning.filename, warning.lineno or 0, module=module
    )


def check_env(env_id: str) -> None:
    """Build ``env_id`` once and close it, so a run can fail before it writes anything.

    Raises :class:`EnvError` for an unknown or unsuitable id (no Box action space) and
    :class:`MissingDependencyError` when the env needs a package that is not installed.
    """
    make_env(env_id).close()


class ObservationNormalizer(gym.ObservationWrapper):
    """Running mean/std normalisation ``(s - mean) / sqrt(var + eps)``, clipped to +-clip.

    Statistics update only while ``update`` is True (training env); evaluation envs copy the
    training statistics with :meth:`load_state_dict` and keep them frozen.
    """

    def __init__(self, env: gym.Env, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__(env)
        shape = env.observation_space.shape
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4
        self.clip, self.eps, self.update = clip, eps, True

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if self.update:
            self._update(np.asarray(observation, np.float64))
        normed = (observation - self.mean) / np.sqrt(self.var + self.eps)
        return np.clip(normed, -self.clip, self.clip).astype(np.float32)

    def _update(self, x: np.ndarray) -> None:
        # Welford/Chan update with a batch of one sample.
        self.count += 1.0
        delta = x - self.mean
        self.mean = self.mean + delta / self.count
        self.var = self.var + (delta * (x - self.mean) - self.var) / self.count

    def state_dict(self) -> dict[str, Any]:
        """The running statistics: ``mean`` and ``var`` (float64 arrays) and ``count``."""
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (arrays or tensors); ``update`` is left as it is."""
        self.mean = np.array(state["mean"], np.float64)
        self.var = np.array(state["var"], np.float64)
        self.count = float(state["count"])


_MUJOCO_WARNINGS: set[str] = set()


def _route_mujoco_warnings(env_id: str) -> None:
    """Send MuJoCo's own warnings (printed to stderr by every model compile, e.g. the v4 XML's
    deprecated ``settotalmass``) to Python's ``warnings``, each distinct message once per
    process, so batched evaluations over many envs do not repeat them."""
    entry = getattr(gym.spec(env_id.rpartition(":")[2]), "entry_point", "")
    if not isinstance(entry, str) or "mujoco" not in entry:
        return
    try:
        import mujoco
    except ImportError:
        return  # gym.make reports the missing dependency

    def forward(message: str) -> None:
        if message not in _MUJOCO_WARNINGS:
            _MUJOCO_WARNINGS.add(message)
            warnings.warn(f"MuJoCo: {message.strip()}", RuntimeWarning, stacklevel=2)

    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(forward)


def make_env(
    env_id: str,
    seed: int | None = None,
    normalize_obs: bool = False,
    render_mode: str | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Build ``env_id`` with actions in [-1, 1] and float32 observations.

    Args:
        env_id: a registered Gymnasium id, e.g. ``Hopper-v4``, ``HalfCheetah-v5``, ``Pendulum-v1``.
        seed: seeds the first ``reset`` and the action space (for uniform warm-up sampling).
        normalize_obs: wrap with :class:`ObservationNormalizer`.
        render_mode: passed to ``gym.make`` (``"rgb_array"`` for videos).
        kwargs: further ``gym.make`` keyword arguments.
    """
    check_env_id(env_id)
    _route_mujoco_warnings(env_id)
    env = _gym_make(env_id, render_mode=render_mode, **kwargs)
    if not isinstance(env.action_space, gym.spaces.Box):
        raise EnvError(
            f"{env_id} has a {type(env.action_space).__name__} action space; "
            "spikerl agents need a continuous Box action space"
        )
    if not (np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)):
        ones = np.ones(env.action_space.shape, np.float32)
        env = gym.wrappers.RescaleAction(env, -ones, ones)
    space = env.observation_space
    float_space = gym.spaces.Box(
        space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32
    )
    env = gym.wrappers.TransformObservation(env, lambda o: np.asarray(o, np.float32), float_space)
    if normalize_obs:
        env = ObservationNormalizer(env)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def env_dims(env: gym.Env) -> tuple[int, int]:
    """Observation and action dimensions ``(n, m)`` of a flat Box environment."""
    return int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))


def find_wrapper(env: gym.Env, cls: type) -> Any:
    """The first wrapper of type ``cls`` in ``env``'s stack, or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, cls):
            return env
        env = env.env
    return None


#: The wrappers :func:`make_env` puts around what ``gym.make`` returns.
_MAKE_ENV_WRAPPERS = (ObservationNormalizer, gym.wrappers.TransformObservation,
                      gym.wrappers.RescaleAction)  # fmt: skip


def make_env_wrappers(env: gym.Env) -> list[gym.Wrapper]:
    """The wrappers :func:`make_env` added to ``env`` (the float32 cast, the observation
    normaliser, the action rescaling), outermost first; not those ``gym.make`` added below
    them (time limit, order checks, an env's registered wrappers)."""
    found = []
    while isinstance(env, _MAKE_ENV_WRAPPERS):
        found.append(env)
        env = env.env
    return found


def action_bounds(env_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The bounds of ``env_id``'s own action space, which :func:`make_env` maps [-1, 1] onto
    (the ``action_bounds`` that make an exported policy act in env units), or None when the env
    already acts in [-1, 1]. Raises :class:`EnvError` for an unbounded action space."""
    env = make_env(env_id)
    rescale = find_wrapper(env, gym.wrappers.RescaleAction)
    space = rescale.env.action_space if rescale is not None else None
    env.close()
    if space is None:
        return None
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise EnvError(f"{env_id}: unbounded action space; it cannot be rescaled")
    return low, high
