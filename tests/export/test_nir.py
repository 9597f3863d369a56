"""NIR export: read back by spikerl's importer and by snnTorch."""

import json
import sys

import numpy as np
import pytest
import torch

from spikerl.export import (
    ExportError,
    network_from_spec,
    network_spec,
    nir_graph,
    read_nir,
    spec_from_nir,
    write_nir,
    write_npz,
)  # fmt: skip
from spikerl.runtime import Policy
from spikerl.runtime.neurons import encode
from tests.runtime.test_runtime import ACTORS, observation_stream, run_torch


def test_without_the_nir_package_the_export_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)  # import nir fails
    with pytest.raises(ExportError, match=r"pip install 'spikerl\[nir\]'"):
        nir_graph(*network_spec(ACTORS["lif"]()))


nir = pytest.importorskip("nir")

NIR_ACTORS = ["lif", "plif", "clif"]


@pytest.mark.parametrize("name", NIR_ACTORS)
def test_spikerl_reads_its_graph_back_spike_for_spike(name, tmp_path):
    actor = ACTORS[name]().double()
    path = write_nir(*network_spec(actor), tmp_path / "p.nir")
    rebuilt = network_from_spec(*read_nir(path), dtype=torch.float64)
    stream = observation_stream()
    want_actions, want_counts = run_torch(actor, stream, torch.float64)
    actions, counts = run_torch(rebuilt, stream, torch.float64)
    for step, (got, want) in enumerate(zip(counts, want_counts, strict=True)):
        for layer, (g, w) in enumerate(zip(got, want, strict=True)):
            np.testing.assert_array_equal(g, w, err_msg=f"decision {step}, layer {layer}")
    # the readout's 1/T is folded into the integrator's weights: float64 rounding apart
    np.testing.assert_allclose(actions, want_actions, rtol=0, atol=1e-12)


def test_the_graph_states_its_time_constants():
    spec, arrays = network_spec(ACTORS["clif"]())
    graph = nir_graph(spec, arrays, dt=1e-3)
    assert graph.metadata["dt"] == 1e-3 and graph.metadata["discretisation"] == "forward-euler"
    assert graph.metadata["timesteps"] == 5 and graph.metadata["reset_per_decision"]
    cuba = graph.nodes["lif0"]
    np.testing.assert_allclose(cuba.tau_mem, 4e-3)  # leak 0.75: tau = 4 dt, R = 4
    np.testing.assert_allclose(cuba.r, 4.0)
    np.testing.assert_allclose(cuba.tau_syn, 2e-3)  # current decay 0.5: tau_syn = 2 dt, w_in 2
    np.testing.assert_allclose(cuba.w_in, 2.0)
    np.testing.assert_allclose(graph.nodes["integrator"].r, 1e3)
    lif = nir_graph(*network_spec(ACTORS["lif"]())).nodes["lif1"]
    assert type(lif).__name__ == "LIF" and np.allclose(lif.tau, 4e-4) and np.allclose(lif.r, 4)
    readout = graph.nodes["readout"].weight  # block-diagonal population decoder / T
    assert readout.shape == (2, 6) and readout[0, 3:].sum() == 0 and readout[1, :3].sum() == 0


def test_what_nir_cannot_carry_is_refused_naming_the_layer():
    for name, message in (
        ("dn", "layer 0: DN neurons"),
        ("stateful LIF controller", "layer 0: LIF with soft_detached reset"),
        ("converted mt, CRPI 0.5", "layer 0: the conversion neuron 'mt'"),
    ):
        with pytest.raises(ExportError, match=message):
            nir_graph(*network_spec(ACTORS[name]()))
    with pytest.raises(ValueError, match="choose one of graph, host"):
        nir_graph(*network_spec(ACTORS["lif"]()), readout="chip")
    for dt in (0.0, -1e-4, float("inf"), float("nan"), 1e308, 1.5):
        with pytest.raises(ExportError, match="a tick must last a finite, positive"):
            nir_graph(*network_spec(ACTORS["lif"]()), dt=dt)
    spec, arrays = network_spec(ACTORS["lif"]())
    arrays["w_membrane"] = np.ones((2, 6))
    spec["readout"] = {"kind": "linear", "source": "membrane", "weight": "w_membrane"}
    for readout, message in (
        ("graph", "of the 'membrane' has no NIR form"),
        ("host", "a membrane readout needs the last layer's membrane"),
    ):
        with pytest.raises(ExportError, match=message):
            nir_graph(spec, arrays, readout=readout)
    controller_spec = network_spec(ACTORS["stateful LIF controller"]())[0]
    assert controller_spec["readout"]["source"] == "spikes"  # T = 1: the integrator carries it
    graph = nir_graph(*network_spec(ACTORS["lif"]()))
    graph.metadata = {}
    with pytest.raises(ExportError, match="no 'spikerl' metadata"):
        spec_from_nir(graph)


def test_snntorch_runs_the_exported_graph_with_the_same_spikes():
    import_nir = pytest.importorskip("snntorch.import_nir")
    snn, utils = pytest.importorskip("snntorch"), pytest.importorskip("snntorch.utils")
    for name in ("lif", "clif"):
        spec, arrays = network_spec(ACTORS[name]())
        net = import_nir.import_from_nir(nir_graph(spec, arrays, readout="host"))
        neurons = [m for m in net.modules() if isinstance(m, (snn.Leaky, snn.Synaptic))]
        assert len(neurons) == len(spec["layers"])
        spikes = []
        for module in neurons:
            module.register_forward_hook(lambda mod, inp, out, seen=spikes: seen.append(out))
        policy, ticks = Policy(spec, arrays, "float32"), spec["timesteps"]
        apart = total = 0
        for obs in observation_stream(batch=3):
            _, want = policy.trace(obs)
            # the host side: tanh of the observation and the population encoder
            x = encode(np.tanh(obs.astype(np.float32)), spec["encoder"], policy.arrays, ticks)
            utils.reset(net)
            spikes.clear()
            with torch.no_grad():
                for tick in range(ticks):
                    net(torch.as_tensor(x[tick]))
            for layer, w in enumerate(want):
                got = sum(spikes[t * len(neurons) + layer] for t in range(ticks)).numpy()
                apart, total = apart + np.abs(got - w).sum(), total + w.sum()
        # snnTorch runs the same forward-Euler equations (its dt is 1e-4 s, the default here);
        # only float32 rounding of beta = 1 - dt/tau and of the products may flip a spike
        assert total > 0 and apart <= 1e-3 * total, (name, apart, total)


def test_export_command_writes_nir(tmp_path, capsys):
    from spikerl.cli import main
    from tests.conftest import TINY

    sets = [a for o in (*TINY, "actor.kind=lif", "run.total_steps=200", "run.name=r")
            for a in ("--set", o)]  # fmt: skip
    assert main(["train", *sets, "--runs-dir", str(tmp_path)]) == 0
    out = tmp_path / "r.nir"
    assert main(["export", str(tmp_path / "r"), "--format", "nir", "-o", str(out)]) == 0
    assert "forward Euler" in capsys.readouterr().out
    spec, _ = read_nir(out)
    assert spec["source"]["env"] == "Pendulum-v1" and spec["action_low"] is not None
    assert main(["export", str(tmp_path / "r"), "--format", "nir", "-o", str(out),
                 "--quantize", "int8"]) == 2  # fmt: skip
    assert "NIR stores float weights" in capsys.readouterr().err
    spec, arrays = network_spec(ACTORS["lif"]())
    write_npz(spec, {k: v for k, v in arrays.items() if k != "p1"}, tmp_path / "hole.npz")
    for fmt, target in (("c", "hole_c"), ("nir", "hole.nir"), ("numpy", "hole2.npz")):
        assert main(["export", str(tmp_path / "hole.npz"), "--format", fmt,
                     "-o", str(tmp_path / target)]) == 2  # fmt: skip
        assert "incomplete policy spec" in capsys.readouterr().err
        assert not (tmp_path / target).exists()
    # spikerl energy on exported files: the rebuilt network, flown on the file's env
    npz = tmp_path / "r.npz"
    assert main(["export", str(tmp_path / "r"), "-o", str(npz)]) == 0
    reports = {}
    for path in (out, npz):
        capsys.readouterr()
        js = tmp_path / f"{path.suffix[1:]}.json"
        assert main(["energy", str(path), "--episodes", "1", "--json", str(js)]) == 0
        assert "exported policy:" in capsys.readouterr().out
        reports[path.suffix] = json.loads(js.read_text())
    sop = [r["totals"]["sop"]["mean"] for r in reports.values()]
    assert sop[0] > 0 and sop[0] == pytest.approx(sop[1], rel=1e-6)  # the same spikes
    assert reports[".npz"]["meta"]["state_bytes"] > 0
    # bad exported files are one line each, never a traceback
    graph = nir.read(out)
    del graph.metadata["dt"]
    nir.write(tmp_path / "no_dt.nir", graph)
    spec, arrays = network_spec(ACTORS["lif"]())
    del spec["readout"]
    write_npz(spec, arrays, tmp_path / "no_readout.npz")
    for bad in ("no_dt.nir", "no_readout.npz"):
        capsys.readouterr()
        assert main(["energy", str(tmp_path / bad), "--episodes", "1"]) != 0
        err = capsys.readouterr().err
        assert bad in err and "Traceback" not in err
    capsys.readouterr()
    assert main(["export", str(tmp_path / "r"), "--format", "nir", "-o", str(out),
                 "--dt", "0"]) == 2  # fmt: skip
    assert "--dt 0: give (0, 1] seconds per tick" in capsys.readouterr().err
    (tmp_path / "bad.nir").write_bytes(b"not hdf5")
    with pytest.raises(ExportError, match="not a readable NIR file"):
        read_nir(tmp_path / "bad.nir")
