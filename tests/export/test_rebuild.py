"""An exported description rebuilt as a torch network gives the original's spikes."""

import numpy as np
import pytest
import torch

from spikerl.export import network_from_spec, network_spec, quantize_policy
from spikerl.runtime import Policy
from tests.runtime.test_runtime import ACTORS, observation_stream, run_numpy, run_torch


@pytest.mark.parametrize("name", list(ACTORS))
def test_rebuilt_network_is_the_exported_one(name):
    actor = ACTORS[name]().double()
    rebuilt = network_from_spec(*network_spec(actor), dtype=torch.float64)
    assert rebuilt.stateful == actor.stateful and rebuilt.timesteps == actor.timesteps
    stream = observation_stream()
    want_actions, want_counts = run_torch(actor, stream, torch.float64)
    actions, counts = run_torch(rebuilt, stream, torch.float64)
    np.testing.assert_array_equal(actions, want_actions)  # same operations, same values
    for got, want in zip(counts, want_counts, strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_an_8_bit_file_rebuilds_with_its_dequantised_values():
    spec, arrays = quantize_policy(*network_spec(ACTORS["converted mt, CRPI 0.5"]()))
    stream = observation_stream(steps=20)
    want, _ = run_numpy(Policy(spec, arrays, "float64"), stream)
    got, _ = run_torch(network_from_spec(spec, arrays, torch.float64), stream, torch.float64)
    np.testing.assert_allclose(got, want, atol=1e-6)
