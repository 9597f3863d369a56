"""The main job: an ANN TD3 baseline and a proxy-target LIF actor, side by side.

``spikerl quickstart`` trains both on a small task with the same seed and budget, then measures
each deployed actor on the evaluation protocol's rollouts and prints one table: returns
(max average and final), training speed, firing rate, operations per decision and energy per
decision under both presets. Runs land in ``runs/quickstart/``.

Running it again is safe and cheap: a finished run with the same settings is reused, an
interrupted one is resumed, and a folder holding a different run is never deleted (the call
stops and names it). Ctrl-C stops the run in progress at a checkpoint, trains nothing else and
prints no comparison table; the same command continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import SpikerlError
from ..snn.energy import PRESETS, EnergyReport
from .config import Config, config_to_dict, load_config
from .energy_cli import measure_policy
from .policy import load_policy
from .report import format_table
from .run import CHECKPOINT_NAME, RunError, RunResult, load_run_config, train

__all__ = ["QUICKSTART_METHODS", "QuickstartInterrupted", "quickstart", "quickstart_overrides"]


class QuickstartInterrupted(SpikerlError):
    """Ctrl-C (or SIGTERM) stopped the quick start; exit status 130 as for ``train``."""

    exit_code = 130


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


def _reusable(cfg: Config, runs_root: Path) -> bool:
    """True if ``runs_root/<run>`` holds this very run (to reuse or resume); False if absent.
    A folder holding anything else is an error: quickstart never deletes what it did not make."""
    run_dir = runs_root / cfg.run_name
    if not run_dir.exists():
        return False
    try:
        same = config_to_dict(load_run_config(run_dir)) == config_to_dict(cfg)
    except RunError:
        same = False
    if not same or not (run_dir / CHECKPOINT_NAME).is_file():
        raise RunError(
            f"{run_dir} already holds a different run (or files that are not a spikerl run); "
            "quickstart does not delete it: pass another --runs-dir or remove it yourself"
        )
    return True


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
    progress: bool = True,
) -> str:
    """Train every method in :data:`QUICKSTART_METHODS`; return the comparison table as text.

    Energy is measured over the runs' own ``run.eval_episodes`` evaluation episodes, the default
    of ``spikerl evaluate`` and ``spikerl energy``, so both commands reproduce the table.
    ``extra_overrides`` apply to every method after the arguments, so a ``run.seed`` or
    ``env.id`` among them is what runs, is measured and is printed."""
    shared = quickstart_overrides(env_id, total_steps, seed) + [f"run.progress={progress}"]
    configs = {
        label: load_config(QUICKSTART_PRESET, [*shared, *overrides, *(extra_overrides or [])])
        for label, overrides in QUICKSTART_METHODS.items()
    }
    first = next(iter(configs.values()))
    env_id, total_steps, seed = first.env.id, first.run.total_steps, first.run.seed
    # refuse a foreign folder before training anything; the same run is resumed (a finished
    # run returns at once)
    resume = {label: _reusable(cfg, Path(runs_root)) for label, cfg in configs.items()}
    rows = []
    for label, cfg in configs.items():
        result = train(cfg, runs_root, resume=resume[label])
        if result.interrupted:
            raise QuickstartInterrupted(
                f"quickstart interrupted while training {label} at step {result.steps} of "
                f"{total_steps}; run the same command again to continue"
            )
        actor, _, normalizer = load_policy(result.run_dir)
        episodes = cfg.run.eval_episodes
        energy = measure_policy(actor, env_id, seed, episodes, normalizer_state=normalizer)
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
    episodes, warm_up = first.run.eval_episodes, first.algo.learning_starts
    note = (
        f"{env_id}, {total_steps} env steps ({warm_up} warm-up), seed {seed}; returns from "
        f"{episodes} deterministic evaluation episodes per point, energy over the final "
        f"policy's {episodes} evaluation episodes (`spikerl evaluate` / `spikerl energy` on the "
        "run folders give the same); energy is a compute-only estimate (see docs/energy.md)."
    )
    return format_table(headers, rows) + "\n" + note
