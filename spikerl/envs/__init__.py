"""Environments: Gymnasium tasks with [-1, 1] actions, and state snapshots for exact resume."""

from .make import (
    EnvError,
    ObservationNormalizer,
    check_env_id,
    env_dims,
    find_wrapper,
    make_env,
)
from .state import get_env_state, set_env_state

__all__ = [
    "EnvError",
    "ObservationNormalizer",
    "check_env_id",
    "env_dims",
    "find_wrapper",
    "get_env_state",
    "make_env",
    "set_env_state",
]
