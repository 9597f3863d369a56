"""The main job: an ANN TD3 baseline and a proxy-target LIF actor, side by side.

``spikerl quickstart`` trains both on a small task with the same seed and budget, then measures
each deployed actor on the evaluation protocol's rollouts and prints one table: returns
(max average and final), training speed, firing rate, operations per decision and energy per
decision under both presets. Runs land in ``runs/quickstart/`` (replaced on every call).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..snn.energy import PRESETS, EnergyReport
from .config import load_config
from .energy_cli import measure_policy
from .policy import load_policy
from .report import format_table
from .run import RunResult, train

__all__ = ["QUICKSTART_METHODS", "quickstart", "quickstart_overrides"]

#: method label -> config overrides on top of the shared quick-start settings.
QUICKSTART_METHODS: dict[str, list[str]] = {
    "ANN TD3": ["actor.kind=ann", "algo.target=polyak"],
    "PT-LIF": ["actor.kind=lif", "algo.target=proxy"],
}


#: The shared base preset: TD3 settings that solve Pendulum-v1 in a few thousand steps.
QUICKSTART_PRESET = Path(__file__).resolve().parents[1] / "presets" / "quickstart.yaml"


def quickstart_overrides(env_id: str, total_steps: int, seed: int) -> list[str]:
    """Shared settings: small warm-up and frequent evaluation so learning is visible quickly."""
    return [
        f"env.id={env_id}",
        f"run.total_steps={total_steps}",
        f"run.seed={seed}",
        "algo.learning_starts=1000",
        f"run.eval_every={max(total_steps // 8, 1)}",
        "run.eval_episodes=5",
    ]


def _row(label: str, result: RunResult, energy: EnergyReport) -> list[Any]:
    rates = energy.network_rate.mean if energy.populations else float("nan")
    ops = energy.sop.mean if energy.populations else energy.mac.mean
    unit = "SOP" if energy.populations else "MAC"
    joules = [energy.energy(p).joules.mean * 1e9 for p in PRESETS.values()]
    return [
        label,
        result.summary["max_return"],
        result.summary["final_return"],
        result.steps_per_sec,
        rates,
        f"{ops:,.0f} {unit}",
        *joules,
    ]


def quickstart(
    env_id: str = "Pendulum-v1",
    total_steps: int = 8000,
    seed: int = 0,
    runs_root: str | Path = "runs/quickstart",
    extra_overrides: list[str] | None = None,
    energy_episodes: int = 2,
    progress: bool = True,
) -> str:
    """Train every method in :data:`QUICKSTART_METHODS`; return the comparison table as text."""
    shared = quickstart_overrides(env_id, total_steps, seed) + [f"run.progress={progress}"]
    rows = []
    for label, overrides in QUICKSTART_METHODS.items():
        cfg = load_config(QUICKSTART_PRESET, [*shared, *overrides, *(extra_overrides or [])])
        result = train(cfg, runs_root, overwrite=True)
        actor, _, normalizer = load_policy(result.run_dir)
        energy = measure_policy(actor, env_id, seed, energy_episodes, normalizer_state=normalizer)
        rows.append(_row(label, result, energy))
    headers = [
        "method",
        "max avg return",
        "final return",
        "train steps/s",
        "firing rate",
        "ops/decision",
        *(f"nJ ({name})" for name in PRESETS),
    ]
    note = (
        f"{env_id}, {total_steps} env steps (1000 warm-up), seed {seed}; returns from "
        "deterministic evaluation episodes; energy is a compute-only estimate "
        "(see docs/energy.md)."
    )
    return format_table(headers, rows) + "\n" + note
