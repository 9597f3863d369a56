"""benchmarks/ann_overhead.py: its reference is torch's plain path and computes the same."""

from __future__ import annotations

import torch
from torch import nn

from spikerl.algos.common import FusedAdam
from spikerl.bench.suite import TRAINING_VARIANTS, BenchSettings, _variant_config
from spikerl.bench.train_loop import TrainLoop

SCRIPT = "ann_overhead"


def test_the_plain_torch_loop_trains_to_the_same_parameters(script):
    cfg = _variant_config(
        [*TRAINING_VARIANTS["ANN-TD3"], "env.id=Pendulum-v1", "algo.learning_starts=64",
         "algo.batch_size=32"],
        BenchSettings(),
    )  # fmt: skip
    loops = TrainLoop(cfg, 200), script.as_plain_torch(TrainLoop(cfg, 200))
    modules = [m for p in loops[1].learner.parts().values() if isinstance(p, nn.Module)
               for m in p.modules()]  # fmt: skip
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in modules)
    assert type(loops[1].learner.critic_opt) is torch.optim.Adam
    assert type(loops[0].learner.critic_opt) is FusedAdam
    for loop in loops:
        loop.prefill()
        assert script.updates_per_sec(loop, 20) > 0
    assert script.same_parameters(*loops)
    assert loops[0].learner.iterations == 20
