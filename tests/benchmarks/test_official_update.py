"""``benchmarks/official_update.py``: its name maps cover every learned tensor of spikerl's
learners, so a renamed parameter fails here rather than going uncompared (the comparison
itself needs the official checkout, outside this repository)."""

from __future__ import annotations

import pytest

from spikerl.algos import build_learner
from spikerl.experiments.config import load_config

SCRIPT = "official_update"


def _sources(names: dict) -> set[str]:
    return {entry[0] if isinstance(entry, tuple) else entry for entry in names.values()}


@pytest.mark.parametrize("variant", ["proxy", "vanilla"])
def test_the_name_maps_cover_every_learned_tensor(script, variant):
    cfg = load_config(script.paper_preset(script.ENV, variant), [])
    learner = build_learner(cfg, script.OBS, script.ACT, "cpu")
    assert set(learner.actor.state_dict()) == _sources(script.ACTOR_NAMES)
    assert set(learner.critic.state_dict()) == _sources(script.CRITIC_NAMES)
    if variant == "proxy":
        assert set(learner.proxy.state_dict()) == _sources(script.PROXY_NAMES)
    shapes = {
        k: v.shape for k, v in script.mapped(learner.actor.state_dict(), script.ACTOR_NAMES).items()
    }
    assert shapes["encoder.mean"] == (1, script.OBS, script.POP)
    assert shapes["decoder.decoder.weight"] == (script.ACT, 1, script.POP)
