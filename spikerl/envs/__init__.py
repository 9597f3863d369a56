"""Environments: Gymnasium tasks with [-1, 1] actions, and state snapshots for exact resume."""

from .make import (
    EnvError,
    ObservationNormalizer,
    action_bounds,
    check_env,
    check_env_id,
    env_dims,
    find_wrapper,
    make_env,
    make_env_wrappers,
    missing_dependency,
)
from .state import get_env_state, set_env_state

__all__ = [
    "EnvError",
    "ObservationNormalizer",
    "action_bounds",
    "check_env",
    "check_env_id",
    "env_dims",
    "find_wrapper",
    "get_env_state",
    "make_env",
    "make_env_wrappers",
    "missing_dependency",
    "set_env_state",
]
