"""The conversion grid: neuron model x T x alpha x evaluation seeds (spec Sec. 8).

Per source actor and evaluation seed ``s``: thresholds are calibrated once on the ANN's rollouts
from seed ``s``'s calibration stream; then the ANN and every setting (neuron, T, alpha) run the
same ``episodes`` start states (:func:`~spikerl.experiments.evaluation.episode_seeds` of ``s``,
all episodes stepped as one batch), so results are paired. Energy per decision is counted by
:class:`~spikerl.snn.energy.OpCounter` on up to 256 states the SNN itself visited, each decision
from a zero carry (CRPI's carry changes counts only marginally).

Rows are appended to ``results.csv`` as they finish, each with its full setting (source, env,
neuron, T, alpha, MT levels, seed, calibration steps and statistic, versions; Sec. 12.6) and the
per-episode returns; a rerun skips the rows already there, so a killed grid resumes.
:func:`summarize` gives mean +- std over seeds of per-seed means, J_SNN / J_ANN and the
recovered fraction ``(J(alpha) - J(0)) / (J_ANN - J(0))`` (only where
``J_ANN - J(0) > 5% |J_ANN|``).
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..experiments.evaluation import (
    BatchedEpisodes,
    episode_seeds,
    evaluate_batched,
    run_batched_episodes,
)
from ..experiments.provenance import collect_provenance
from ..nets.policy import ActingPolicy
from ..snn.energy import OpCounter, analytic_ann_report, get_preset
from .build import ConversionSettings, build_converted
from .calibrate import Calibration, CalibrationSettings, calibrate
from .source import ConversionError, SourcePolicy

__all__ = ["GridSpec", "RESULT_COLUMNS", "plot_grid", "read_results", "run_grid", "summarize"]

RESULT_COLUMNS = (
    "source", "env", "policy", "neuron", "timesteps", "crpi", "levels", "seed", "episodes",
    "calibration_steps", "statistic", "return_mean", "return_std", "length_mean", "sop",
    "mac", "energy_nj", "zero_units", "returns", "spikerl", "torch", "gymnasium", "mujoco",
)  # fmt: skip
ENERGY_PRESET = "45nm"


@dataclass(frozen=True)
class GridSpec:
    """The settings of a grid: neuron models, T values, alphas, seeds, episodes, calibration."""

    neurons: tuple[str, ...] = ("if", "snm", "mt", "dc", "dc-mt")
    timesteps: tuple[int, ...] = (4, 8, 16, 32)
    crpi: tuple[float, ...] = (0.0, 0.5, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    episodes: int = 10
    calibration: CalibrationSettings = CalibrationSettings()
    levels: int = 8

    def __post_init__(self) -> None:
        for neuron, t, a in itertools.product(self.neurons, self.timesteps, self.crpi):
            ConversionSettings(neuron, t, a, self.levels)  # refuses bad values by name
        if self.episodes < 1 or not self.seeds:
            raise ConversionError("a grid needs episodes >= 1 and at least one seed")

    def settings(self) -> list[ConversionSettings]:
        return [
            ConversionSettings(n, t, a, self.levels)
            for n, t, a in itertools.product(self.neurons, self.timesteps, self.crpi)
        ]


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    fields = ("source", "policy", "neuron", "timesteps", "crpi", "levels", "seed", "episodes")
    return tuple(str(row[f]) for f in fields)


#: Columns a grid reads back, and the type their values must have.
_TYPED_COLUMNS = {"timesteps": int, "crpi": float, "seed": int, "episodes": int,
                  "return_mean": float, "energy_nj": float}  # fmt: skip


def read_results(path: Path) -> list[dict[str, str]]:
    """The rows of a grid's ``results.csv`` (empty if it does not exist yet); a file that is
    empty, has other columns or a row with a missing or mistyped value is a
    :class:`ConversionError` naming the line, before anything is appended to it."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns, rows = tuple(reader.fieldnames or ()), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConversionError(f"{path}: not a readable CSV file ({err})") from None
    if columns != RESULT_COLUMNS:
        raise ConversionError(
            f"{path}: not a convert-sweep table (empty, or other columns); give another -o"
        )
    for line, row in enumerate(rows, start=2):
        _check_row(path, line, row)
    return rows


def _check_row(path: Path, line: int, row: dict[str, Any]) -> None:
    if None in row or any(row.get(c) is None for c in RESULT_COLUMNS):
        raise ConversionError(
            f"{path}, line {line}: cut short or with extra fields; give another -o"
        )
    for column, kind in _TYPED_COLUMNS.items():
        try:
            kind(row[column])
        except ValueError:
            raise ConversionError(
                f"{path}, line {line}: {column} {row[column]!r} is not a number; give another -o"
            ) from None


def _energy(snn: torch.nn.Module, visited: np.ndarray) -> tuple[float, float, float]:
    obs = torch.as_tensor(visited[:256], dtype=torch.float32)
    with OpCounter(snn) as counter, torch.no_grad():
        snn(obs)
    report = counter.report()
    estimate = report.energy(get_preset(ENERGY_PRESET))
    return report.sop.mean, report.mac.mean, estimate.joules.mean * 1e9


def _ann_energy(source: SourcePolicy) -> tuple[float, float, float]:
    """(SOPs, MACs, nJ) per ANN decision, exact for an MLP (analytic count); NaN for conv."""
    if source.input_shape != (source.obs_dim,) or len(source.shapes[0]) != 1:
        return (float("nan"),) * 3
    report = analytic_ann_report(source.obs_dim, source.act_dim, source.hidden_sizes)
    joules = report.energy(get_preset(ENERGY_PRESET)).joules.mean
    return 0.0, report.mac.mean, joules * 1e9


def _row(
    source: SourcePolicy,
    policy: str,
    setting: ConversionSettings | None,
    seed: int,
    spec: GridSpec,
    result: BatchedEpisodes,
    calibration: Calibration,
    energy: tuple[float, float, float],
) -> dict[str, Any]:
    versions = collect_provenance()
    return {
        **_stub(source, policy, setting, seed, spec), "env": source.env_id,
        "calibration_steps": calibration.settings.steps,
        "statistic": calibration.settings.statistic,
        "return_mean": float(result.returns.mean()), "return_std": float(result.returns.std()),
        "length_mean": float(result.lengths.mean()), "sop": energy[0], "mac": energy[1],
        "energy_nj": energy[2], "zero_units": json.dumps(calibration.zero_units),
        "returns": json.dumps([round(float(r), 3) for r in result.returns]),
        **{name: versions[name] for name in ("spikerl", "torch", "gymnasium", "mujoco")},
    }  # fmt: skip


def run_grid(
    sources: Sequence[SourcePolicy],
    spec: GridSpec,
    out_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Run (or continue) the grid of ``spec`` on every source; returns ``results.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.csv"
    done = {_key(r) for r in read_results(path)}
    new_file = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        if new_file:
            writer.writeheader()
        for source, seed in itertools.product(sources, spec.seeds):
            _grid_cell(source, seed, spec, done, writer, f, progress)
    return path


def _grid_cell(source, seed, spec, done, writer, f, progress) -> None:
    """One source and seed: calibrate once, then the ANN and every setting not yet done; the
    alphas of one (neuron, T) run as one batch (a row per alpha and episode)."""
    todo = [s for s in spec.settings() if _key(_stub(source, "snn", s, seed, spec)) not in done]
    ann_done = _key(_stub(source, "ann", None, seed, spec)) in done
    if not todo and ann_done:
        return
    calibration = calibrate(source, source.env_id, seed, spec.calibration)
    if not ann_done:
        result = evaluate_batched(source, source.env_id, seed, spec.episodes, source.normalizer)
        _write(writer, f, _row(source, "ann", None, seed, spec, result, calibration,
                               _ann_energy(source)))  # fmt: skip
    groups: dict[tuple[str, int], list[ConversionSettings]] = {}
    for setting in todo:
        groups.setdefault((setting.neuron, setting.timesteps), []).append(setting)
    for settings in groups.values():
        for setting, result in zip(settings, _run_alphas(source, calibration, settings, seed, spec),
                                   strict=True):  # fmt: skip
            single = build_converted(source, calibration.thetas, setting)
            energy = _energy(single, result.observations[result.alive])
            row = _row(source, "snn", setting, seed, spec, result, calibration, energy)
            _write(writer, f, row)
            if progress is not None:
                progress(
                    f"{Path(source.origin).name} s{seed} {setting.neuron} T{setting.timesteps} "
                    f"a{setting.crpi:g}: {row['return_mean']:.1f}"
                )


def _run_alphas(source, calibration, settings, seed, spec) -> list[BatchedEpisodes]:
    """The episodes of several alphas of one (neuron, T) as one batch, split per alpha."""
    episodes = spec.episodes
    alphas = torch.tensor([s.crpi for s in settings]).repeat_interleave(episodes)
    snn = build_converted(source, calibration.thetas, settings[0], row_alphas=alphas)
    seeds = episode_seeds(seed, episodes) * len(settings)
    policy = ActingPolicy(snn.eval())
    batch = run_batched_episodes(source.env_id, seeds, policy, source.normalizer, record=True)
    out = []
    for i in range(len(settings)):
        rows = slice(i * episodes, (i + 1) * episodes)
        out.append(BatchedEpisodes(batch.returns[rows], batch.lengths[rows],
                                   batch.observations[:, rows], batch.actions[:, rows],
                                   batch.alive[:, rows]))  # fmt: skip
    return out


def _stub(source, policy: str, setting, seed: int, spec: GridSpec) -> dict[str, Any]:
    """The fields that identify a row (a rerun skips rows whose identity is done)."""
    return {
        "source": source.origin,
        "policy": policy,
        "neuron": setting.neuron if setting else "",
        "timesteps": setting.timesteps if setting else 0,
        "crpi": setting.crpi if setting else 0.0,
        "levels": spec.levels,
        "seed": seed,
        "episodes": spec.episodes,
    }


def _write(writer: csv.DictWriter, f, row: dict[str, Any]) -> None:
    writer.writerow(row)
    f.flush()


def summarize(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per (source, neuron, T): ANN return and SNN return per alpha (mean +- std over seeds of
    per-seed means), J_SNN / J_ANN at each alpha, the recovered fraction of the largest alpha
    and its energy per decision."""
    ann: dict[tuple[str, str], float] = {
        (r["source"], r["seed"]): float(r["return_mean"]) for r in rows if r["policy"] == "ann"
    }
    ann_energy = {r["source"]: float(r["energy_nj"]) for r in rows if r["policy"] == "ann"}
    groups: dict[tuple[str, str, int], dict[float, dict[str, float]]] = {}
    for r in rows:
        if r["policy"] != "snn":
            continue
        key = (r["source"], r["neuron"], int(r["timesteps"]))
        per_alpha = groups.setdefault(key, {}).setdefault(float(r["crpi"]), {})
        per_alpha[r["seed"]] = float(r["return_mean"])
        per_alpha[f"energy:{r['seed']}"] = float(r["energy_nj"])
    out = []
    for (source, neuron, timesteps), per_alpha in sorted(groups.items()):
        row = _summary_row(source, neuron, timesteps, per_alpha, ann)
        row["ann_energy_nj"] = ann_energy.get(source, float("nan"))
        out.append(row)
    return out


def _summary_row(source, neuron, timesteps, per_alpha, ann) -> dict[str, Any]:
    row: dict[str, Any] = {"source": source, "neuron": neuron, "timesteps": timesteps}
    seeds = sorted({k for a in per_alpha.values() for k in a if not k.startswith("energy")})
    j_ann = np.array([ann.get((source, s), np.nan) for s in seeds])
    row["ann"] = (float(np.nanmean(j_ann)), float(np.nanstd(j_ann)))
    for alpha, values in sorted(per_alpha.items()):
        j = np.array([values.get(s, np.nan) for s in seeds])
        row[f"a{alpha:g}"] = (float(np.nanmean(j)), float(np.nanstd(j)))
        row[f"ratio_a{alpha:g}"] = float(np.nanmean(j)) / row["ann"][0] if row["ann"][0] else np.nan
        row["energy_nj"] = float(np.nanmean([values[k] for k in values if k.startswith("energy")]))
    if 0.0 in per_alpha:
        j0, ja = row["a0"][0], row["ann"][0]
        for alpha in sorted(per_alpha)[1:]:
            gain = row[f"a{alpha:g}"][0] - j0
            row[f"recovered_a{alpha:g}"] = gain / (ja - j0) if ja - j0 > 0.05 * abs(ja) else np.nan
    return row


def plot_grid(summary: list[dict[str, Any]], path: Path) -> Path:
    """One panel per source and neuron model: SNN return against T for each alpha (mean +- std
    over seeds), the ANN's return as a line."""
    from ..experiments.report_plots import matplotlib_or_error

    mpl = matplotlib_or_error("conversion grid plots")
    sources = list(dict.fromkeys(r["source"] for r in summary))
    neurons = list(dict.fromkeys(r["neuron"] for r in summary))
    fig = mpl.figure.Figure(
        figsize=(3.2 * len(neurons) + 0.6, 2.9 * len(sources) + 0.8), layout="constrained"
    )
    mpl.backends.backend_agg.FigureCanvasAgg(fig)
    axes = fig.subplots(len(sources), len(neurons), squeeze=False, sharey="row")
    colors = mpl.colormaps["tab10"]
    for i, source in enumerate(sources):
        for j, neuron in enumerate(neurons):
            ax = axes[i][j]
            rows = sorted((r for r in summary if r["source"] == source and r["neuron"] == neuron),
                          key=lambda r: r["timesteps"])  # fmt: skip
            alphas = sorted(
                k for k in rows[0] if k.startswith("a") and k[1:].replace(".", "").isdigit()
            )
            for n, key in enumerate(alphas):
                shift = 2 ** (0.06 * (n - (len(alphas) - 1) / 2))  # keep error bars apart
                t = [r["timesteps"] * shift for r in rows]
                mean = np.array([r[key][0] for r in rows])
                std = np.array([r[key][1] for r in rows])
                c = colors(n % 10)
                ax.errorbar(t, mean, std, marker="o", ms=3, capsize=2, color=c,
                            label=f"alpha {key[1:]}")  # fmt: skip
            ax.axhline(rows[0]["ann"][0], color="k", lw=1, ls="--", label="ANN")
            ax.set_xscale("log", base=2)
            ax.set_xticks([r["timesteps"] for r in rows], [str(r["timesteps"]) for r in rows])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
            ax.set_title(f"{Path(source).name}: {neuron}", fontsize=9)
            ax.set_xlabel("T (ticks per decision)")
            if j == 0:
                ax.set_ylabel("return")
    axes[0][0].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
