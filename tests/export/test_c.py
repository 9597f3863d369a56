"""The C export against the NumPy runtime: compiled with the system C compiler."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikerl.export import ExportError, network_spec, quantize_policy, write_c, write_npz
from spikerl.runtime import CompileError, Policy, compile_policy, find_compiler, load_policy
from tests.runtime.test_runtime import (
    ACT,
    ACTORS,
    OBS,
    observation_stream,
    population_actor,
    run_numpy,
)

pytestmark = pytest.mark.skipif(find_compiler() is None, reason="no C compiler on this machine")


def run_c(compiled, stream):
    """Actions and per-layer spike counts of one observation row per decision."""
    compiled.reset()
    actions, counts = [], []
    for obs in stream:
        actions.append(compiled.decide(obs[0]))
        counts.append(compiled.spike_counts())
    return np.stack(actions), counts


def flat_counts(numpy_counts):
    return [np.concatenate([layer[0] for layer in step]) for step in numpy_counts]


@pytest.mark.parametrize("name", list(ACTORS))
def test_double_build_matches_the_float64_runtime_spike_for_spike(name, tmp_path):
    spec, arrays = network_spec(ACTORS[name]().double())
    write_c(spec, arrays, tmp_path)
    stream = observation_stream(batch=1)
    want_actions, want_counts = run_numpy(Policy(spec, arrays, "float64"), stream)
    actions, counts = run_c(compile_policy(tmp_path, double=True, trace=True), stream)
    for step, (got, want) in enumerate(zip(counts, flat_counts(want_counts), strict=True)):
        np.testing.assert_array_equal(got, want, err_msg=f"decision {step}")
    assert sum(c.sum() for c in counts) > 0
    # the C products sum in input order, NumPy's BLAS in its own: float64 rounding apart
    np.testing.assert_allclose(actions, want_actions[:, 0], rtol=0, atol=1e-12)


def _spikes_apart(counts, want_counts):
    want = flat_counts(want_counts)
    return sum(np.abs(g - w).sum() for g, w in zip(counts, want, strict=True)), sum(
        w.sum() for w in want
    )


@pytest.mark.parametrize("per", ["float32", "channel", "layer"])
@pytest.mark.parametrize(
    "name", ["lif", "clif", "stateful LIF controller", "converted mt_signed, CRPI 0.5",
             "converted dc, CRPI 0.5"],
)  # fmt: skip
def test_float32_and_int8_builds_within_tolerance_of_the_runtime(name, per, tmp_path):
    spec, arrays = network_spec(ACTORS[name]())
    if per != "float32":
        spec, arrays = quantize_policy(spec, arrays, per)
    write_c(spec, arrays, tmp_path)
    stream = observation_stream(batch=1, seed=4)
    want_actions, want_counts = run_numpy(Policy(spec, arrays, "float32"), stream)
    actions, counts = run_c(compile_policy(tmp_path, trace=True), stream)
    assert actions.dtype == np.float32
    apart, total = _spikes_apart(counts, want_counts)
    assert apart <= 1e-3 * total
    np.testing.assert_allclose(actions, want_actions[:, 0], atol=1e-4)


@pytest.mark.parametrize("hidden", [[300, 40, 6], [7, 3]])
def test_int8_column_sums_in_16_and_32_bits_and_every_pass_width(hidden, tmp_path):
    """Binary inputs of an int8 layer sum in int16 where every output's sum_j |w_ij| fits
    (the 40- and 7-input layers), else in int32 (300 inputs of equal magnitude: 300 x 127);
    the active inputs are added 8, 4, 2 and 1 at a time. Integer sums are exact, so the double
    build matches the float64 runtime spike for spike."""
    from spikerl.nets.spiking import direct_lif_network

    torch.manual_seed(3)
    net = direct_lif_network(OBS, ACT, hidden, timesteps=4, stateful=False)
    with torch.no_grad():
        for linear in net.linears:
            linear.weight.mul_(3.0)
        wide = net.linears[1].weight
        wide.copy_(torch.sign(wide) * 0.3)  # every code +-127
    spec, arrays = quantize_policy(*network_spec(net.double()))
    write_c(spec, arrays, tmp_path)
    source = (tmp_path / "spikerl_policy.c").read_text()
    assert ("acc_i[i] = acc_i[i] +" in source) == (hidden[0] * 127 > 32767)
    assert "acc_h[i] = acc_h[i] +" in source
    for count in (8, 4, 2, 1):
        assert f"a + {count} <= n_active" in source
    stream = observation_stream(batch=1, seed=5)
    want_actions, want_counts = run_numpy(Policy(spec, arrays, "float64"), stream)
    actions, counts = run_c(compile_policy(tmp_path, double=True, trace=True), stream)
    for step, (got, want) in enumerate(zip(counts, flat_counts(want_counts), strict=True)):
        np.testing.assert_array_equal(got, want, err_msg=f"decision {step}")
    active = [np.mean([c[i] for c in want_counts]) for i in range(len(hidden))]
    assert all(a > 0 for a in active)
    np.testing.assert_allclose(actions, want_actions[:, 0], rtol=0, atol=1e-12)


def test_quantised_weights_and_thresholds(tmp_path):
    spec, arrays = network_spec(ACTORS["converted if, CRPI 0.5"]())
    for per in ("channel", "layer"):
        q_spec, q_arrays = quantize_policy(spec, arrays, per)
        assert q_spec["quantization"]["per"] == per and "quantization" not in spec
        path = write_npz(q_spec, q_arrays, tmp_path / f"{per}.npz")
        policy = load_policy(path)  # the runtime reads 8-bit files
        for layer, q_layer in zip(spec["layers"], q_spec["layers"], strict=True):
            weight, codes = arrays[layer["weight"]], q_arrays[q_layer["weight"]]
            assert codes.dtype == np.int8 and np.abs(codes).max() == 127
            scale = q_layer["weight_scale"]
            scale = q_arrays[scale][:, None] if isinstance(scale, str) else scale
            assert np.all(np.abs(policy.arrays[layer["weight"]] - weight) <= scale / 2 + 1e-7)
            theta, theta_codes = (
                arrays[layer["neuron"]["theta"]],
                q_arrays[q_layer["neuron"]["theta"]],
            )
            assert theta_codes.dtype == np.uint8
            step = q_layer["neuron"]["theta_scale"]
            assert np.all(
                np.abs(policy.arrays[layer["neuron"]["theta"]] - theta) <= step / 2 + 1e-7
            )
    with pytest.raises(ValueError, match="choose one of channel, layer"):
        quantize_policy(spec, arrays, "tensor")


def test_step_normalises_and_scales_like_the_runtime(tmp_path):
    norm = {"mean": np.linspace(-1, 1, OBS), "var": np.full(OBS, 4.0), "count": 10}
    bounds = (np.array([-2.0, 0.0]), np.array([2.0, 1.0]))
    spec, arrays = network_spec(population_actor("lif").double(), norm, bounds)
    sizes = write_c(spec, arrays, tmp_path)
    assert sizes["flash"] > 4 * sum(arrays[layer["weight"]].size for layer in spec["layers"]) - 1
    compiled, policy = compile_policy(tmp_path, double=True), Policy(spec, arrays)
    for raw in np.random.default_rng(0).normal(0, 3, size=(20, OBS)).astype(np.float32):
        policy.reset()
        compiled.reset()
        # the double build normalises and scales in double as Policy.act: the same float32
        np.testing.assert_array_equal(compiled.act(raw), policy.act(raw).astype(np.float32))
    with pytest.raises(ValueError, match=f"shape \\({OBS},\\)"):
        compiled.act(np.zeros(OBS + 1))


def test_a_new_export_into_the_same_folder_is_compiled_anew(tmp_path):
    obs = observation_stream(steps=1, batch=1)[0, 0]
    for kind in ("lif", "clif"):  # one process: the second library must not be the first
        spec, arrays = network_spec(ACTORS[kind]())
        write_c(spec, arrays, tmp_path)
        want = Policy(spec, arrays, "float32").decide(obs)
        np.testing.assert_allclose(compile_policy(tmp_path).decide(obs), want, atol=1e-5)


def test_bad_source_is_one_compile_error_and_unknown_parts_are_refused(tmp_path):
    spec, arrays = network_spec(population_actor("lif"))
    write_c(spec, arrays, tmp_path)
    (tmp_path / "spikerl_policy.c").write_text("this is not C\n")
    with pytest.raises(CompileError, match="did not compile"):
        compile_policy(tmp_path)
    spec["layers"][0]["neuron"] = {"kind": "izhikevich"}
    with pytest.raises(ExportError, match="layer 0: 'izhikevich' neurons have no C"):
        write_c(spec, arrays, tmp_path / "other")


def test_export_command_writes_c_that_acts_like_the_numpy_export(tmp_path, capsys):
    from spikerl.cli import main
    from tests.conftest import TINY

    sets = [a for o in (*TINY, "actor.kind=lif", "run.total_steps=200", "run.name=r",
                        "env.normalize_obs=true") for a in ("--set", o)]  # fmt: skip
    assert main(["train", *sets, "--runs-dir", str(tmp_path)]) == 0
    run = str(tmp_path / "r")
    assert (
        main(["export", run, "--format", "c", "-o", str(tmp_path / "c"), "--quantize", "int8"]) == 0
    )
    assert "flash" in capsys.readouterr().out
    assert main(["export", run, "-o", str(tmp_path / "q.npz"), "--quantize", "int8"]) == 0
    compiled, policy = compile_policy(tmp_path / "c"), load_policy(tmp_path / "q.npz", "float32")
    for raw in np.random.default_rng(1).normal(0, 1, size=(10, 3)).astype(np.float32):
        np.testing.assert_allclose(compiled.act(raw), policy.act(raw), atol=1e-4)
    # an exported file is itself a source: the .npz written as C without the run
    assert (
        main(["export", str(tmp_path / "q.npz"), "--format", "c", "-o", str(tmp_path / "q")]) == 0
    )
    assert (tmp_path / "q" / "spikerl_policy.c").read_text() == (
        tmp_path / "c" / "spikerl_policy.c"
    ).read_text()
    assert main(["export", str(tmp_path / "q.npz"), "-o", str(tmp_path / "qq.npz"),
                 "--quantize", "int8"]) == 2  # fmt: skip
    assert "8-bit already" in capsys.readouterr().err
    # a whole Pendulum episode, the env driven by the NumPy runtime's actions
    assert main(["export", run, "--format", "c", "-o", str(tmp_path / "c64")]) == 0
    assert main(["export", run, "-o", str(tmp_path / "p.npz")]) == 0
    compiled, policy = (
        compile_policy(tmp_path / "c64", double=True),
        load_policy(tmp_path / "p.npz"),
    )
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    for _ in range(200):
        action = policy.act(obs)
        np.testing.assert_array_equal(compiled.act(obs), action.astype(np.float32))
        obs, *_ = env.step(action.astype(np.float32))
    (tmp_path / "file").write_text("x")
    assert main(["export", run, "--format", "c", "-o", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
