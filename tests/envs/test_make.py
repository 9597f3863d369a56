"""Env ids: registered ids, gymnasium's ``module:EnvName-v0`` form, one-line errors."""

from __future__ import annotations

import pytest

from spikerl.envs import EnvError, check_env_id, make_env


def test_module_prefixed_ids_import_the_module_that_registers_the_env():
    env_id = "tests.experiments.crashing_env:CrashOnce-v0"
    check_env_id(env_id)
    env = make_env(env_id, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3,) and env.action_space.shape == (1,)
    env.close()


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        ("no_such_package.envs:Thing-v0", "cannot import 'no_such_package.envs'"),
        ("tests.experiments.crashing_env:Nope-v0", "unknown environment id 'Nope-v0'"),
        ("Pendulm-v1", "Close matches: Pendulum-v1"),
    ],
)
def test_bad_ids_are_env_errors_naming_the_problem(env_id, message):
    with pytest.raises(EnvError) as err:
        check_env_id(env_id)
    assert message in str(err.value) and "\n" not in str(err.value)
