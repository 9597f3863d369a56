"""The NumPy runtime against the torch policies it was exported from."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from spikerl.errors import UsageError
from spikerl.export import ExportError, export_npz
from spikerl.nets import DeterministicActor, SpikingActor, direct_lif_network
from spikerl.runtime import PolicyFileError, load_policy

OBS, ACT = 5, 2


def population_actor(kind, obs=OBS, act=ACT):
    torch.manual_seed(0)
    actor = SpikingActor(obs, act, neuron=kind, hidden=[24, 16], timesteps=5, pop_in=4, pop_out=3)
    with torch.no_grad():  # larger weights: every layer fires, the comparisons mean something
        for linear in actor.linears:
            linear.weight.mul_(3.0)
    return actor


def controller(obs=OBS, act=ACT):
    torch.manual_seed(1)
    net = direct_lif_network(obs, act, [24, 16], timesteps=1, stateful=True, inputs=obs - 1)
    with torch.no_grad():
        for linear in net.linears:
            linear.weight.mul_(3.0)
    return net


def converted(model, alpha, obs=OBS, act=ACT):
    from spikerl.convert.build import ConversionSettings, build_converted
    from spikerl.convert.source import source_from_module

    torch.manual_seed(2)
    source = source_from_module(DeterministicActor(obs, act, [24, 16]))
    _, hidden = source.hidden_activations(torch.randn(256, obs))
    thetas = [h.detach().flatten(1).max(0).values * 0.7 for h in hidden]
    thetas[0][3] = 0.0  # a unit with threshold 0 emits exactly 0
    return build_converted(source, thetas, ConversionSettings(model, 6, alpha))


ACTORS = {
    kind: (lambda k=kind, **d: population_actor(k, **d)) for kind in ("lif", "plif", "clif", "dn")
}
ACTORS["stateful LIF controller"] = controller
for _model in ("if", "snm", "mt", "mt_signed", "dc", "dc-mt"):
    ACTORS[f"converted {_model}, CRPI 0.5"] = lambda m=_model, **d: converted(m, 0.5, **d)
ACTORS["converted if, no CRPI"] = lambda **d: converted("if", 0.0, **d)


def observation_stream(steps=60, batch=3, seed=0):
    """A smooth random walk, like an episode's observations."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0.0, 0.3, size=(steps, batch, OBS)), axis=0)


def run_torch(actor, stream, dtype):
    actor = actor.to(dtype)
    state, actions, counts = None, [], []
    with torch.no_grad():
        for obs in stream:
            trace = actor.trace(torch.as_tensor(obs, dtype=dtype), state)
            state = trace.state if actor.stateful else None
            actions.append(trace.action.numpy())
            counts.append([c.numpy() for c in trace.spike_counts])
    return np.stack(actions), counts


def run_numpy(policy, stream):
    policy.reset()
    actions, counts = [], []
    for obs in stream:
        action, layer_counts = policy.trace(obs)
        actions.append(action)
        counts.append(layer_counts)
    return np.stack(actions), counts


@pytest.mark.parametrize("name", list(ACTORS))
def test_float64_runtime_matches_torch_spike_for_spike(name, tmp_path):
    actor = ACTORS[name]().double()
    path = export_npz(actor, tmp_path / "p.npz")
    stream = observation_stream()
    expected_actions, expected_counts = run_torch(actor, stream, torch.float64)
    actions, counts = run_numpy(load_policy(path), stream)
    for step, (got, want) in enumerate(zip(counts, expected_counts, strict=True)):
        for layer, (g, w) in enumerate(zip(got, want, strict=True)):
            np.testing.assert_array_equal(g, w, err_msg=f"step {step}, layer {layer}")
    assert sum(c.sum() for step in counts for c in step) > 0  # the network is not silent
    # products sum in another order (NumPy's BLAS), so the actions agree to float64 rounding
    np.testing.assert_allclose(actions, expected_actions, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(ACTORS))
def test_float64_runtime_matches_torch_over_a_pendulum_episode(name, tmp_path):
    """A whole episode, the env driven by the runtime: the torch policy sees the same
    observations and fires the same spikes at every step."""
    import gymnasium as gym

    actor = ACTORS[name](obs=3, act=1).double()
    policy = load_policy(export_npz(actor, tmp_path / "p.npz"))
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    policy.reset()
    state, done, steps = None, False, 0
    with torch.no_grad():
        while not done:
            action, counts = policy.trace(obs[None])
            trace = actor.trace(torch.as_tensor(obs[None], dtype=torch.float64), state)
            state = trace.state if actor.stateful else None
            for got, want in zip(counts, trace.spike_counts, strict=True):
                np.testing.assert_array_equal(got, want.numpy(), err_msg=f"step {steps}")
            np.testing.assert_allclose(action, trace.action.numpy(), rtol=0, atol=1e-12)
            obs, _, terminated, truncated, _ = env.step(2.0 * action[0].astype(np.float32))
            done, steps = terminated or truncated, steps + 1
    assert steps == 200


@pytest.mark.parametrize("name", list(ACTORS))
def test_float32_runtime_within_tolerance(name, tmp_path):
    actor = ACTORS[name]()
    path = export_npz(actor, tmp_path / "p.npz")
    stream = observation_stream(seed=3)
    expected_actions, expected_counts = run_torch(actor, stream, torch.float32)
    actions, counts = run_numpy(load_policy(path, dtype="float32"), stream)
    assert actions.dtype == np.float32
    total = sum(w.sum() for step in expected_counts for w in step)
    differing = sum(
        np.abs(g - w).sum() for gs, ws in zip(counts, expected_counts, strict=True)
        for g, w in zip(gs, ws, strict=True)
    )  # fmt: skip
    assert differing <= 1e-3 * total  # a spike may flip where a membrane sits at threshold
    np.testing.assert_allclose(actions, expected_actions, atol=1e-4)


def test_stateful_reset_by_row_and_batch_check(tmp_path):
    policy = load_policy(export_npz(controller().double(), tmp_path / "c.npz"))
    stream = observation_stream(steps=5, batch=2)
    for obs in stream:
        policy.trace(obs)
    carried = [f.copy() for f in policy.state[0]]
    policy.reset(np.array([True, False]))
    assert not policy.state[0][0][0].any() and np.array_equal(policy.state[0][0][1], carried[0][1])
    with pytest.raises(ValueError, match="call reset"):
        policy.decide(stream[0][:1])
    policy.reset()
    assert policy.decide(stream[0][0]).shape == (ACT,)


def test_act_normalises_and_scales_to_env_bounds(tmp_path):
    actor = population_actor("lif").double()
    norm = {"mean": np.full(OBS, 0.5), "var": np.full(OBS, 4.0), "count": 10}
    bounds = (np.array([-2.0, 0.0]), np.array([2.0, 1.0]))
    policy = load_policy(export_npz(actor, tmp_path / "p.npz", norm, bounds))
    raw = np.linspace(-3, 3, OBS).astype(np.float32)
    x = np.clip((raw - 0.5) / np.sqrt(4.0 + 1e-8), -10, 10).astype(np.float32)
    a = policy.decide(x)
    np.testing.assert_allclose(policy.act(raw), bounds[0] + (bounds[1] - bounds[0]) * (a + 1) / 2)
    for bad in (np.zeros(OBS + 1), np.zeros((2, 2, OBS)), 1.0):
        with pytest.raises(UsageError, match=rf"this policy takes \({OBS},\) or a batch"):
            policy.act(bad)


def test_exports_from_before_obs_dim_take_the_whole_observation(tmp_path):
    """Files written before the encoder recorded ``obs_dim`` know only the columns they read:
    any observation at least that wide is accepted, as it was."""
    import json

    path = export_npz(controller().double(), tmp_path / "c.npz")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    spec = json.loads(str(arrays.pop("spec")))
    del spec["encoder"]["obs_dim"]
    np.savez(tmp_path / "old.npz", spec=np.array(json.dumps(spec)), **arrays)
    old, new = load_policy(tmp_path / "old.npz"), load_policy(path)
    obs = observation_stream(steps=1, batch=2)[0]
    np.testing.assert_array_equal(old.decide(obs), new.decide(obs))
    with pytest.raises(UsageError, match=rf"takes \(n >= {OBS - 1},\)"):
        old.decide(np.zeros(OBS - 2))


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_env_policy_acts_as_the_export_of_a_stateful_controller(env_id, tmp_path):
    """EnvPolicy (torch, the env's own wrappers) against the exported runtime, for a stateful
    controller with a normaliser, in a batch with per-row resets; MountainCarContinuous acts in
    [-1, 1] already (no rescaling)."""
    from spikerl.envs import action_bounds
    from spikerl.experiments.policy import EnvPolicy

    torch.manual_seed(2)
    net = direct_lif_network(2, 1, [16, 8], timesteps=1, stateful=True).double()
    if env_id == "Pendulum-v1":  # three observations: the network reads the first two
        net = direct_lif_network(3, 1, [16, 8], timesteps=1, stateful=True, inputs=2).double()
    n = 3 if env_id == "Pendulum-v1" else 2
    norm = {"mean": np.linspace(-0.5, 0.5, n), "var": np.linspace(0.5, 2.0, n), "count": 10.0}
    exported = load_policy(export_npz(net, tmp_path / "p.npz", norm, action_bounds(env_id)))
    policy = EnvPolicy(net.float(), env_id, norm, device="auto")
    rng = np.random.default_rng(0)
    for step in range(6):
        if step == 3:
            mask = np.array([True, False, True])
            policy.reset(mask)
            exported.reset(mask)
        obs = rng.normal(size=(3, n)).astype(np.float32)
        np.testing.assert_allclose(policy.act(obs), exported.act(obs), atol=1e-5)


def test_refusals_and_bad_files(tmp_path):
    with pytest.raises(ExportError, match="not a spiking network"):
        export_npz(DeterministicActor(OBS, ACT, [8]), tmp_path / "a.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(PolicyFileError, match="not a readable .npz"):
        load_policy(tmp_path / "junk.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(PolicyFileError, match="not a readable .npz"):
        load_policy(tmp_path / "empty.npz")
    good = export_npz(population_actor("lif"), tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(PolicyFileError, match="not a readable .npz"):
        load_policy(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(PolicyFileError, match="no JSON 'spec'"):
        load_policy(tmp_path / "other.npz")


def test_runtime_imports_neither_torch_nor_gymnasium(tmp_path):
    path = export_npz(population_actor("clif"), tmp_path / "p.npz")
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['gymnasium'] = None\n"
        "import numpy as np\n"
        "from spikerl.runtime import load_policy\n"
        f"p = load_policy({str(path)!r}, dtype='float32')\n"
        f"print(p.decide(np.zeros({OBS})).shape)\n"
        "assert 'torch' not in [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"({ACT},)"


def test_export_command_writes_a_policy_that_acts_like_the_run(tmp_path, capsys):
    from spikerl.cli import main
    from spikerl.errors import UsageError
    from spikerl.experiments.policy import EnvPolicy
    from spikerl.experiments.policy import load_policy as load_run_policy
    from tests.conftest import TINY

    sets = [a for o in (*TINY, "actor.kind=lif", "run.total_steps=200", "run.name=r",
                        "env.normalize_obs=true") for a in ("--set", o)]  # fmt: skip
    assert main(["train", *sets, "--runs-dir", str(tmp_path)]) == 0
    out = tmp_path / "r.npz"
    assert main(["export", str(tmp_path / "r"), "--format", "numpy", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    policy = load_policy(out)
    actor, _, normalizer = load_run_policy(tmp_path / "r")
    raw = np.array([0.3, -0.2, 1.5], np.float32)
    x = np.clip((raw - normalizer["mean"]) / np.sqrt(normalizer["var"] + 1e-8), -10, 10)
    with torch.no_grad():
        expected = actor(torch.as_tensor(x.astype(np.float32))[None]).numpy()[0]
    # Pendulum's torque bounds are +-2: act() returns env actions
    np.testing.assert_allclose(policy.act(raw), 2.0 * expected, atol=1e-5)
    # ... as the run's EnvPolicy does in torch, one observation or a batch
    env_policy = EnvPolicy.load(tmp_path / "r")
    np.testing.assert_allclose(env_policy.act(raw), policy.act(raw), atol=1e-5)
    batch = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(
        env_policy.act(batch), np.stack([policy.act(row) for row in batch]), atol=1e-5
    )
    for bad in (np.zeros(4), np.zeros((2, 2, 3)), np.float32(1.0)):
        with pytest.raises(UsageError, match="Pendulum-v1 policies take"):
            env_policy.act(bad)
    assert policy.spec["source"]["env"] == "Pendulum-v1"
    ann = [a for o in (*TINY, "run.total_steps=200", "run.name=a") for a in ("--set", o)]
    assert main(["train", *ann, "--runs-dir", str(tmp_path)]) == 0
    assert main(["export", str(tmp_path / "a"), "-o", str(tmp_path / "a.npz")]) == 1
    assert "not a spiking network" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "r"), "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("reset", ["hard", "soft", "soft_detached"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("start", ["carried", "zero"])
@pytest.mark.parametrize("decay", ["per-neuron", "0-d", "one"])
def test_the_in_place_layer_loop_is_the_tick_function_bit_for_bit(reset, dtype, start, decay):
    """The fast T-tick loop (keep masks, a free first tick from the zero state, no product by a
    decay of 1, 0-d parameters) against :func:`lif_tick` tick by tick."""
    from spikerl.runtime.neurons import lif_layer, lif_tick

    rng = np.random.default_rng(0)
    currents = rng.normal(0.4, 0.6, size=(7, 3, 50)).astype(dtype)
    decays = {"per-neuron": rng.random(50).astype(dtype), "0-d": np.asarray(0.75, dtype),
              "one": 1.0}  # fmt: skip
    params = {"decay": decays[decay], "v_th": np.asarray(0.5, dtype), "reset": reset}
    if start == "carried":
        state = (rng.normal(size=(3, 50)).astype(dtype), (rng.random((3, 50)) > 0.5).astype(dtype))
    else:
        state = (np.zeros((3, 50), dtype), np.zeros((3, 50), dtype))
    outputs, (v, s) = lif_layer(currents, state if start == "carried" else None, params)
    assert outputs.dtype == v.dtype == dtype
    for tick, current in enumerate(currents):
        spikes, state = lif_tick(current, state, params)
        np.testing.assert_array_equal(outputs[tick], spikes)
    np.testing.assert_array_equal(v, state[0])
    np.testing.assert_array_equal(s, state[1])
    assert 0 < outputs.mean() < 1


@pytest.mark.parametrize("reset", ["hard", "soft", "soft_detached"])
def test_a_nan_membrane_spikes_as_in_the_tick_function(reset):
    """NaN <= v_th and NaN > v_th are both false: the hard reset's keep mask is not 1 - s
    there, so the layer falls back to the tick function (a NaN sensor reading fires nothing)."""
    from spikerl.runtime.neurons import lif_layer, lif_tick

    currents = np.full((4, 1, 3), 0.8)
    currents[1, 0, 1] = np.nan
    params = {"decay": np.asarray(0.75), "v_th": np.asarray(0.5), "reset": reset}
    outputs, (v, s) = lif_layer(currents, None, params)
    state = (np.zeros((1, 3)), np.zeros((1, 3)))
    for tick, current in enumerate(currents):
        spikes, state = lif_tick(current, state, params)
        np.testing.assert_array_equal(outputs[tick], spikes)
    assert outputs[1:, 0, 1].sum() == 0 and np.isnan(v[0, 1])


def conv_converted(model):
    """A converted image policy: strided, padded, grouped convolutions and average pooling."""
    from torch import nn

    from spikerl.convert.build import ConversionSettings, build_converted
    from spikerl.convert.source import source_from_module

    torch.manual_seed(7)
    actor = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, groups=2),
        nn.ReLU(), nn.AvgPool2d(2, padding=1, count_include_pad=False), nn.Flatten(),
        nn.Linear(54, 8), nn.ReLU(), nn.Linear(8, 2),
    )  # fmt: skip
    source = source_from_module(actor, input_shape=(3, 12, 12))
    _, hidden = source.hidden_activations(torch.rand(64, 3 * 12 * 12))
    thetas = [h.flatten(1).max(0).values * 0.7 for h in hidden]
    return build_converted(source, thetas, ConversionSettings(model, 6, 0.5))


@pytest.mark.parametrize("model", ["if", "mt_signed", "dc"])
def test_convolutional_stages_of_converted_image_policies(model, tmp_path):
    from spikerl.export import network_from_spec, network_spec, quantize_policy, write_c
    from spikerl.runtime import Policy, compile_policy, find_compiler

    actor = conv_converted(model).double()
    stream = np.random.default_rng(0).random((20, 2, 3 * 12 * 12))
    want_actions, want_counts = run_torch(actor, stream, torch.float64)
    policy = load_policy(export_npz(actor, tmp_path / "p.npz"))
    assert policy.layers[0]["stage"]["ops"][0]["op"] == "conv2d"
    for source in (policy, network_from_spec(policy.spec, policy.arrays, torch.float64)):
        run = run_numpy if source is policy else lambda n, s: run_torch(n, s, torch.float64)
        actions, counts = run(source, stream)
        for got, want in zip(counts, want_counts, strict=True):
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w)
        np.testing.assert_allclose(actions, want_actions, rtol=0, atol=1e-12)
    spec, arrays = network_spec(actor)
    q_spec, q_arrays = quantize_policy(spec, arrays)  # 8-bit stages: every conv channel scaled
    assert q_arrays[q_spec["layers"][0]["stage"]["ops"][0]["weight"]].dtype == np.int8
    q_actions, _ = run_numpy(Policy(q_spec, q_arrays, "float32"), stream)
    assert np.abs(q_actions - want_actions).max() < 0.2  # close to the float policy
    if find_compiler() is None:
        pytest.skip("no C compiler on this machine")
    write_c(spec, arrays, tmp_path / "c")  # the C export runs the stages too
    compiled = compile_policy(tmp_path / "c", double=True, trace=True)
    for step, obs in enumerate(stream[:, :1]):
        np.testing.assert_allclose(compiled.decide(obs[0]), want_actions[step, 0], atol=1e-12)
        counts = compiled.spike_counts()
        np.testing.assert_array_equal(counts, np.concatenate([c[0] for c in want_counts[step]]))
    write_c(q_spec, q_arrays, tmp_path / "c8")  # and 8-bit stages, against the 8-bit runtime
    compiled = compile_policy(tmp_path / "c8", double=True)
    q_actions, _ = run_numpy(Policy(q_spec, q_arrays, "float64"), stream)
    for step, obs in enumerate(stream[:, :1]):
        np.testing.assert_allclose(compiled.decide(obs[0]), q_actions[step, 0], atol=1e-12)
    with pytest.raises(ValueError, match="8-bit already"):
        quantize_policy(q_spec, q_arrays)
