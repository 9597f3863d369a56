"""``spikerl/Quadrotor-v0`` against its spec: checker, determinism, single = batched, physics
invariants (hover, free fall, energy, spin, torque signs, motor lag), reward, termination, start
distribution and observation layout."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import spikerl  # noqa: F401  (registers the env)
from spikerl.envs.quadrotor import (
    CURRICULUM_END,
    CURRICULUM_START,
    QuadrotorEnv,
    QuadrotorError,
    QuadrotorParams,
    QuadrotorVectorEnv,
    sample_start,
)
from spikerl.envs.quadrotor.core import (
    SCALAR,
    Physics,
    reward_terms,
    rk4_step,
    rotation,
    weighted_reward,
)
from spikerl.envs.quadrotor.env import state_to_mapping
from spikerl.envs.quadrotor.params import TaskOptions

ENV_ID = "spikerl/Quadrotor-v0"
P = QuadrotorParams()
NO_THRUST = {"thrust_coefficients": (0.0, 0.0, 0.0)}
FREE = {"position_limit": 1e9}  # physics tests: no box


def _env(**kwargs) -> QuadrotorEnv:
    return QuadrotorEnv(**{**FREE, **kwargs})


def _state(env: QuadrotorEnv) -> dict[str, np.ndarray]:
    s = np.array(env._state)
    return {"p": s[0:3], "q": s[3:7], "v": s[7:10], "w": s[10:13], "u": s[13:17]}


def _set(env, **state):
    env.reset(seed=0, options={"state": state})


# -- 1. checker, spaces --------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*Box observation space:UserWarning")
@pytest.mark.parametrize("history", [32, 0])
def test_gymnasium_checker_and_spaces(history):
    env = gym.make(ENV_ID, history_length=history)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (18 + 4 * history,)
    assert env.observation_space.dtype == np.float32 and env.action_space.shape == (4,)
    obs, _ = env.reset(seed=1)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert env.spec.max_episode_steps == env.unwrapped.options.max_steps == 500


def test_make_vec_uses_the_numpy_batch_env():
    venv = gym.make_vec(ENV_ID, num_envs=8, vectorization_mode="vector_entry_point")
    assert isinstance(venv, QuadrotorVectorEnv)
    obs, info = venv.reset(seed=0)
    assert obs.shape == (8, 146) and obs.dtype == np.float32
    obs, reward, term, trunc, info = venv.step(np.zeros((8, 4)))
    assert reward.shape == term.shape == trunc.shape == (8,)
    assert info["reward_terms"].shape == (8, 5) and info["rotor_speeds"].shape == (8, 4)


# -- 2. determinism, single = batched -------------------------------------------------------


def _rollout(env, seed, actions):
    out = [env.reset(seed=seed)[0]]
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        out.append(np.concatenate([obs, [r, term, trunc]]))
        if term or trunc:
            out.append(env.reset()[0])
    return out


def test_same_seed_same_trajectory_other_seed_differs():
    actions = np.random.default_rng(0).uniform(-1, 1, (500, 4))
    a, b = _rollout(QuadrotorEnv(), 5, actions), _rollout(QuadrotorEnv(), 5, actions)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    first = QuadrotorEnv().reset(seed=6)[0]
    assert not np.array_equal(first, a[0])


RANDOMISED = {"obs_noise": "l2f_v1", "randomize_mass": (0.02, 0.035), "action_noise_std": 0.05}


@pytest.mark.parametrize(
    ("n", "options"), [(1, {}), (7, {}), (64, {}), (7, RANDOMISED)], ids=["1", "7", "64", "noisy"]
)
def test_vector_drone_i_is_a_single_env_seeded_s_plus_i_bit_for_bit(n, options):
    seed, steps = 11, 300
    actions = np.random.default_rng(n).uniform(-1.3, 1.3, (steps, n, 4))  # some clipped
    venv = QuadrotorVectorEnv(n, **options)
    singles = [QuadrotorEnv(**options) for _ in range(n)]
    vobs, _ = venv.reset(seed=seed)
    for i, env in enumerate(singles):
        assert np.array_equal(env.reset(seed=seed + i)[0], vobs[i])
    pending = [False] * n
    resets = 0
    for t in range(steps):
        vobs, vrew, vterm, vtrunc, vinfo = venv.step(actions[t])
        for i, env in enumerate(singles):
            if pending[i]:  # NEXT_STEP autoreset: this step is the reset
                obs, (rew, term, trunc) = env.reset()[0], (0.0, False, False)
                pending[i], resets = False, resets + 1
            else:
                obs, rew, term, trunc, info = env.step(actions[t, i])
                pending[i] = term or trunc
                assert np.array_equal(info["reward_terms"], vinfo["reward_terms"][i])
            assert np.array_equal(obs, vobs[i]) and rew == vrew[i]
            assert (term, trunc) == (vterm[i], vtrunc[i])
    assert resets > 0  # random commands crash drones: autoresets were compared too


EXPLICIT_STARTS = [
    {
        "position": [0.3, -0.2, -0.4],
        "velocity": [0.5, 0.0, -0.8],
        "rotor_speeds": [0.1, 0.9, 0.4, 0.0],
    },
    {"quaternion": [0.9, 0.3, -0.2, 0.1], "angular_velocity": [0.7, -0.4, 0.2]},
    {},
]


@pytest.mark.parametrize("options", [{}, RANDOMISED], ids=["nominal", "noisy"])
def test_vector_explicit_starts_follow_single_envs_bit_for_bit(options):
    steps = 120
    actions = np.random.default_rng(3).uniform(-1, 1, (steps, 3, 4))
    venv = QuadrotorVectorEnv(3, autoreset_mode="SameStep", **options)
    vobs, _ = venv.reset(seed=5, options={"state": EXPLICIT_STARTS})
    singles = [QuadrotorEnv(**options) for _ in EXPLICIT_STARTS]
    done = np.zeros(3, bool)
    for i, (env, start) in enumerate(zip(singles, EXPLICIT_STARTS, strict=True)):
        assert np.array_equal(env.reset(seed=5 + i, options={"state": start})[0], vobs[i])
    for t in range(steps):
        vobs, vrew, vterm, vtrunc, _ = venv.step(actions[t])
        for i in np.flatnonzero(~done):
            obs, rew, term, trunc, _ = singles[i].step(actions[t, i])
            assert (rew, term, trunc) == (vrew[i], vterm[i], vtrunc[i])
            if not (term or trunc):
                assert np.array_equal(obs, vobs[i])
        done |= vterm | vtrunc
    assert done[0]  # the low, falling start crashed under random commands: compared to the end


def test_vector_one_explicit_start_for_every_drone_then_drawn_autoresets():
    venv = QuadrotorVectorEnv(4, autoreset_mode="SameStep")
    obs, _ = venv.reset(seed=0, options={"state": EXPLICIT_STARTS[0]})
    assert (obs == obs[0]).all()
    first_drawn, _ = QuadrotorVectorEnv(4).reset(seed=0)  # nothing was drawn for the start
    restarted = np.zeros(4, bool)
    for _ in range(200):
        obs, _, term, trunc, _ = venv.step(np.ones((4, 4)))  # full thrust: all leave the box
        first = (term | trunc) & ~restarted
        assert np.array_equal(obs[first], first_drawn[first])
        restarted |= first
    assert restarted.all()


def test_explicit_state_values_are_checked_in_one_error_and_round_trip_as_a_mapping():
    for bad in ({"position": ["a", 0, 0]}, {"position": [0, 0]}, {"velocity": None}):
        with pytest.raises(QuadrotorError, match="expected 3 finite numbers"):
            QuadrotorVectorEnv(2).reset(options={"state": bad})
    drawn = QuadrotorVectorEnv(1)
    obs, _ = drawn.reset(seed=9)
    again = QuadrotorVectorEnv(1)
    start = state_to_mapping([col[0] for col in drawn._state])
    assert np.allclose(again.reset(options={"state": start})[0], obs, atol=1e-7)
    with pytest.raises(QuadrotorError, match="17 numbers"):
        state_to_mapping(np.zeros(16))


@pytest.mark.parametrize(
    "bad", [[{}], 3, [{}, {}, {}, 5]], ids=["too-few", "number", "not-mapping"]
)
def test_vector_explicit_start_refuses_bad_shapes_in_one_error(bad):
    with pytest.raises(QuadrotorError, match="one mapping or a list of 4 mappings"):
        QuadrotorVectorEnv(4).reset(options={"state": bad})


def test_same_step_autoreset_returns_final_obs():
    venv = QuadrotorVectorEnv(4, autoreset_mode="SameStep")
    venv.reset(seed=0)
    actions = np.ones((4, 4))  # full thrust: every drone leaves the box
    for _ in range(200):
        obs, _, term, trunc, info = venv.step(actions)
        if (term | trunc).any():
            break
    done = term | trunc
    assert info["_final_obs"].tolist() == done.tolist()
    assert np.abs(info["final_obs"][done, 0:3]).max() > 0.6  # the state that ended
    assert np.abs(obs[done, 0:3]).max() <= 0.5  # already a new start


# -- 3-7. physics -------------------------------------------------------------------------


def test_hover_thrust_equals_the_weight():
    assert 0.98 <= 4 * P.thrust(0.667) / (P.mass * P.gravity) <= 1.02
    assert P.thrust(1.0) == pytest.approx(0.1302) and P.thrust(0.0) == 0.0213
    assert P.hover_speed() == pytest.approx(0.6600, abs=1e-4)
    u_star = P.hover_speed()
    env = _env()
    _set(env, rotor_speeds=[u_star] * 4)
    for _ in range(500):
        env.step([2 * u_star - 1] * 4)
    s = _state(env)
    assert np.abs(s["p"]).max() < 1e-6 and np.abs(s["v"]).max() < 1e-6


def test_nominal_hover_command_accelerates_upward_by_0155():
    env = _env()
    _set(env, rotor_speeds=[0.667] * 4)
    env.step([0.334] * 4)
    assert _state(env)["v"][2] / 0.01 == pytest.approx(0.155, rel=0.01)


def test_free_fall_is_exact_and_zero_command_is_not_zero_thrust():
    env = _env(params=NO_THRUST)
    v0 = np.array([0.3, -0.2, 0.7])
    _set(env, position=[0.1, 0.2, 0.3], velocity=v0, rotor_speeds=[0.0] * 4)
    for k in range(1, 101):
        env.step([-1.0] * 4)
        t = 0.01 * k
        s = _state(env)
        assert s["p"][2] == pytest.approx(0.3 + v0[2] * t - 0.5 * 9.81 * t * t, abs=1e-9)
        assert s["v"][2] == pytest.approx(v0[2] - 9.81 * t, abs=1e-9)
    assert np.array_equal(s["q"], [1, 0, 0, 0]) and np.array_equal(s["w"], [0, 0, 0])
    env = _env()
    _set(env, rotor_speeds=[0.0] * 4)
    env.step([-1.0] * 4)
    assert _state(env)["v"][2] / 0.01 == pytest.approx(4 * 0.0213 / 0.027 - 9.81, rel=1e-6)


def test_energy_without_thrust_is_conserved():
    env = _env(params=NO_THRUST)
    _set(env, position=[0, 0, 1.0], velocity=[0.5, -1.0, 2.0], rotor_speeds=[0.0] * 4)

    def energy():
        s = _state(env)
        return 0.5 * P.mass * (s["v"] ** 2).sum() + P.mass * P.gravity * s["p"][2]

    e0 = energy()
    for _ in range(300):
        env.step([-1.0] * 4)
    assert energy() == pytest.approx(e0, rel=1e-9)


def test_torque_free_spin_conserves_energy_and_momentum_and_unit_quaternion():
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=3)
    w0 *= 5.0 * rng.uniform() / np.linalg.norm(w0)
    env = _env()
    _set(env, angular_velocity=w0, rotor_speeds=[0.5] * 4)
    J = np.array(P.inertia)

    def invariants():
        w = _state(env)["w"]
        return 0.5 * (J * w * w).sum(), np.linalg.norm(J * w)

    e0, h0 = invariants()
    for _ in range(500):
        obs, *_ = env.step([0.0] * 4)
        q = _state(env)["q"]
        assert abs(np.linalg.norm(q) - 1.0) < 1e-12
        R = obs[3:12].astype(np.float64).reshape(3, 3)
        assert np.abs(R.T @ R - np.eye(3)).max() < 1e-6 and np.linalg.det(R) == pytest.approx(
            1, abs=1e-6
        )
    e, h = invariants()
    assert e == pytest.approx(e0, rel=1e-6) and h == pytest.approx(h0, rel=1e-6)


def test_equal_thrust_without_spin_keeps_the_attitude():
    env = _env()
    q0 = np.array([0.9, 0.1, -0.3, 0.2]) / np.linalg.norm([0.9, 0.1, -0.3, 0.2])
    _set(env, quaternion=q0, rotor_speeds=[0.6] * 4)
    for _ in range(100):
        env.step([0.2] * 4)
    assert np.abs(_state(env)["q"] - q0).max() < 1e-12


def _torque(u):
    """Angular acceleration after one step from rest with rotor speeds ``u`` held."""
    env = _env()
    _set(env, rotor_speeds=u)
    env.step([2 * x - 1 for x in u])
    return _state(env)["w"]


def test_torque_signs():
    w = _torque([0.5, 0.7, 0.7, 0.5])  # rotors 2, 3 at x < 0
    assert w[1] > 0 and abs(w[0]) < 1e-12 and abs(w[2]) < 1e-9
    w = _torque([0.5, 0.5, 0.7, 0.7])  # rotors 3, 4 at y > 0
    assert w[0] > 0 and abs(w[1]) < 1e-12 and abs(w[2]) < 1e-9
    w = _torque([0.5, 0.7, 0.5, 0.7])  # d = (-1, +1, -1, +1): yaw only, sign of sum d_i T_i
    assert w[2] > 0 and abs(w[0]) < 1e-12 and abs(w[1]) < 1e-12


def test_motor_lag_and_clipping():
    env = _env()
    _set(env, rotor_speeds=[0.2] * 4)
    env.step([0.8] * 4)  # u_des = 0.9
    expected = 0.9 + (0.2 - 0.9) * math.exp(-0.01 / 0.072)
    assert _state(env)["u"] == pytest.approx([expected] * 4, abs=1e-6)
    env.step([5.0, -5.0, 2.0, -2.0])
    u = _state(env)["u"]
    assert (u >= 0).all() and (u <= 1).all()
    assert env._history[-4:] == [1.0, -1.0, 1.0, -1.0]
    with pytest.raises(ValueError):
        env.step([np.nan, 0, 0, 0])


# -- 8. reward ----------------------------------------------------------------------------


def test_reward_at_the_target_is_the_survival_term_and_terms_match_by_hand():
    opt = TaskOptions()
    a_h = opt.action_hover
    assert a_h == pytest.approx(0.334)
    rest = (0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5)
    terms = reward_terms(rest, (a_h,) * 4, a_h, "qz", SCALAR)
    assert weighted_reward(terms, CURRICULUM_START) == 1.0
    s = (0.1, -0.2, 0.3, 1, 0, 0, 0, 0.5, 0, -1, 0.2, 0, 0, 0.5, 0.5, 0.5, 0.5)
    a = (0.0, 0.5, 1.0, -1.0)
    pos, vel, ori, act, ang = reward_terms(s, a, a_h, "qz", SCALAR)
    assert (pos, vel, ori, ang) == pytest.approx((0.14, 1.25, 0.0, 0.04))
    assert act == pytest.approx(sum((x - a_h) ** 2 for x in a))
    c = CURRICULUM_END
    expected = 1 - c.position * 0.14 - c.velocity * 1.25 - c.action * act
    assert weighted_reward((pos, vel, ori, act, ang), c) == pytest.approx(expected)


def test_orientation_costs():
    roll = 0.4  # rotation about x: qz = 0
    q = (math.cos(roll / 2), math.sin(roll / 2), 0.0, 0.0)
    s = (0, 0, 0, *q, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5)
    assert reward_terms(s, (0,) * 4, 0.0, "qz", SCALAR)[2] == 0.0
    assert reward_terms(s, (0,) * 4, 0.0, "angle", SCALAR)[2] == pytest.approx(roll)
    yaw = (math.cos(0.3), 0.0, 0.0, math.sin(0.3))
    s = (0, 0, 0, *yaw, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5)
    qz = math.sin(0.3)
    assert reward_terms(s, (0,) * 4, 0.0, "qz", SCALAR)[2] == pytest.approx(
        2 * math.acos(1 - qz * qz)
    )
    assert reward_terms(s, (0,) * 4, 0.0, "qz_abs", SCALAR)[2] == pytest.approx(
        2 * math.acos(1 - qz)
    )


def test_curriculum_is_linear_and_reaches_every_vector_drone():
    env = QuadrotorEnv()
    env.set_curriculum(0.0)
    assert env.coefficients == CURRICULUM_START
    env.set_curriculum(1.0)
    assert env.coefficients == CURRICULUM_END
    env.set_curriculum(0.5)
    assert env.coefficients.position == pytest.approx(1.5)
    assert env.coefficients.velocity == pytest.approx(0.1025)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(QuadrotorError, match="rho"):
            env.set_curriculum(bad)
    with pytest.raises(QuadrotorError, match="finite"):
        env.set_reward_coefficients(position=float("inf"))
    venv = QuadrotorVectorEnv(3)
    venv.reset(seed=0)
    venv.set_curriculum(1.0)
    _, reward, _, _, info = venv.step(np.zeros((3, 4)))
    expected = weighted_reward(tuple(info["reward_terms"].T), CURRICULUM_END)
    assert np.array_equal(reward, expected)


# -- 9. termination, truncation ------------------------------------------------------------


def test_leaving_the_box_terminates_and_500_steps_truncate():
    env = QuadrotorEnv()
    env.reset(seed=0, options={"state": {"position": [0.61, 0, 0]}})
    _, _, term, trunc, _ = env.step([0.334] * 4)
    assert term and not trunc
    u_star = P.hover_speed()
    env.reset(seed=0, options={"state": {"rotor_speeds": [u_star] * 4}})
    for k in range(500):
        _, _, term, trunc, info = env.step([2 * u_star - 1] * 4)
        assert not term and trunc == (k == 499)
    assert info["step"] == 500


def test_a_nan_state_terminates_with_a_finite_observation():
    env = QuadrotorEnv()
    env.reset(seed=0)
    state = list(env._state)
    state[7] = float("nan")
    env._state = tuple(state)
    obs, reward, term, _, info = env.step([0.0] * 4)
    assert term and info["nonfinite"] and np.isfinite(obs).all() and math.isfinite(reward)


@pytest.mark.parametrize("bad", [float("inf"), 1e300])  # inf, and beyond float32's range
def test_unbounded_states_give_finite_float32_observations_in_both_envs(bad):
    single, batch = QuadrotorEnv(), QuadrotorVectorEnv(2)
    single.reset(seed=0)
    batch.reset(seed=0)
    state = list(single._state)
    state[10] = bad  # angular velocity x
    single._state = tuple(state)
    batch._state = tuple(np.array([x, x]) for x in state)
    first = single._observation()
    assert np.isfinite(first).all() and first[15] == np.finfo(np.float32).max
    assert np.array_equal(batch._observations(np.arange(2))[0], first)


# -- 10. start distribution ------------------------------------------------------------------


def test_start_distribution_over_10k_resets():
    rng = np.random.default_rng(0)
    opt = TaskOptions()
    starts = np.array([sample_start(rng, opt)[0] for _ in range(10_000)])
    p, q, v, u = starts[:, 0:3], starts[:, 3:7], starts[:, 7:10], starts[:, 13:17]
    guidance = np.all(p == 0, axis=1) & np.all(v == 0, axis=1)
    assert 0.09 <= guidance.mean() <= 0.11
    assert np.abs(p).max() <= 0.5 and np.abs(v).max() <= 1.0
    angle = 2 * np.arccos(np.minimum(1.0, np.abs(q[:, 0])))
    assert angle.max() <= math.pi / 2 + 1e-12 and angle[~guidance].mean() > 0.5
    assert np.abs(np.linalg.norm(q, axis=1) - 1).max() < 1e-12
    assert (u >= 0).all() and (u <= 1).all() and abs(u.mean() - 0.5) < 0.01
    env = QuadrotorEnv()
    obs, _ = env.reset(seed=4)
    u0 = np.array(env._state[13:17])
    assert np.array_equal(obs[18:].reshape(32, 4), np.tile(2 * u0 - 1, (32, 1)).astype(np.float32))


def test_observation_layout_and_history_order():
    env = QuadrotorEnv(history_length=3)
    q = np.array([0.8, 0.2, -0.4, 0.4]) / np.linalg.norm([0.8, 0.2, -0.4, 0.4])
    env.reset(seed=0, options={"state": {"position": [0.1, 0.2, 0.3], "quaternion": q}})
    actions = [[0.1, 0.2, 0.3, 0.4], [-0.1, -0.2, -0.3, -0.4], [0.5, 0.5, -0.5, -0.5]]
    for a in actions:
        obs, *_ = env.step(a)
    s = np.array(env._state)
    assert np.array_equal(obs[0:3], s[0:3].astype(np.float32))
    assert np.array_equal(obs[3:12], np.array(rotation(*s[3:7]), dtype=np.float32))
    assert np.array_equal(obs[12:18], s[7:13].astype(np.float32))
    assert np.array_equal(obs[18:], np.array(actions, dtype=np.float32).ravel())
    w, x, y, z = q
    R = np.array(rotation(w, x, y, z)).reshape(3, 3)
    v = np.array([1.0, 2.0, 3.0])  # R rotates body to world: compare with the quaternion product
    qv = np.array([0, *v])

    def mul(a, b):
        return np.array([
            a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
            a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
            a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
            a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
        ])  # fmt: skip

    rotated = mul(mul(q, qv), q * np.array([1, -1, -1, -1]))[1:]
    assert np.allclose(R @ v, rotated, atol=1e-12)


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": {"mass": -0.1}}, "quadrotor mass: must be > 0"),
        ({"params": {"dt": 0.0}}, "quadrotor dt: must be > 0"),
        ({"params": {"inertia": (1e-5, 0.0, 1e-5)}}, "quadrotor inertia: must be > 0"),
        ({"position_limit": 0.4}, "position_limit: 0.4 m excludes start positions"),
        ({"init": "upside"}, "quadrotor init: 'upside' is not allowed"),
        ({"history": 3}, "unknown option 'history'"),
        ({"params": {"weight": 1}}, "unknown option 'params.weight'"),
        ({"randomize_mass": (0.03, 0.02)}, "randomize_mass: expected (lo, hi) with lo <= hi"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(kwargs, message):
    with pytest.raises(QuadrotorError) as err:
        QuadrotorEnv(**kwargs)
    assert message in str(err.value)


def test_mass_randomisation_is_reported_and_seeded():
    env = QuadrotorEnv(randomize_mass=(0.020, 0.035))
    masses = {env.reset(seed=s)[1]["mass"] for s in range(20)}
    assert len(masses) == 20 and min(masses) >= 0.020 and max(masses) <= 0.035
    assert (
        env.reset(seed=3)[1]["mass"]
        == QuadrotorEnv(randomize_mass=(0.020, 0.035)).reset(seed=3)[1]["mass"]
    )
    scaled = QuadrotorEnv(randomize_mass=(0.035, 0.035), mass_scales_thrust=True)
    scaled.reset(seed=0)
    assert scaled._physics.c2 == pytest.approx(P.thrust_coefficients[2] * 0.035 / 0.027)
    assert isinstance(scaled._physics, Physics)


def test_rk4_is_exact_for_constant_acceleration():
    ph = Physics.nominal(QuadrotorParams(**NO_THRUST))
    s = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    out = rk4_step(s, (0.0,) * 4, ph, SCALAR)
    assert out[2] == pytest.approx(1.0 + 2.0 * 0.01 - 0.5 * 9.81 * 1e-4, abs=1e-15)


def test_env_snapshots_restore_mid_episode_exactly():
    from spikerl.envs import get_env_state, make_env, set_env_state

    actions = np.random.default_rng(2).uniform(-0.2, 0.6, (60, 4))
    env = make_env(ENV_ID, seed=0)
    for a in actions[:30]:
        env.step(a)
    snap = get_env_state(env)
    reference = [env.step(a)[0] for a in actions[30:]]
    other = make_env(ENV_ID, seed=99)
    set_env_state(other, snap)
    replay = [other.step(a)[0] for a in actions[30:]]
    assert all(np.array_equal(x, y) for x, y in zip(reference, replay, strict=True))


@pytest.mark.slow
def test_a_long_random_run_stays_finite():
    """1e5 drone-steps of uniform random commands (with autoresets): no NaN or inf anywhere."""
    venv = QuadrotorVectorEnv(100)
    obs, _ = venv.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(1000):
        obs, reward, term, trunc, info = venv.step(rng.uniform(-1, 1, (100, 4)))
        assert np.isfinite(obs).all() and np.isfinite(reward).all()
        assert not info["nonfinite"].any()
