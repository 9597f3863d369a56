"""``spikerl report``: run records, the summary table, APG, formats, plots and the CLI."""

import argparse
import csv
import io
import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from spikerl.cli import main
from spikerl.errors import MissingDependencyError, SpikerlError, UsageError
from spikerl.experiments.config import config_to_dict, load_config
from spikerl.experiments.report import CSV_COLUMNS, apg, summarize
from spikerl.experiments.report_cli import add_report_parser, cmd_report
from spikerl.experiments.run_records import (
    ReportError,
    RunRecord,
    collect_runs,
    method_label,
    read_curve,
)
from spikerl.snn.energy import PRESETS
from spikerl.snn.energy_report import analytic_ann_report

METHODS = {
    "ANN TD3": ["actor.kind=ann"],
    "PN-ANN": ["actor.kind=ann", "algo.target=proxy"],
    "LIF": ["actor.kind=lif"],
    "PT-LIF": ["actor.kind=lif", "algo.target=proxy"],
    "PT-DN": ["actor.kind=dn", "algo.target=proxy"],
    "SAC": ["algo.name=sac"],
}
TOTAL, EVERY = 1000, 500  # three evaluations: steps 0, 500, 1000
HEADER = "step,wall_time,steps_per_sec,eval/return_mean,eval/return_std,train/episode_return"


def write_run(folder, name, method="ANN TD3", env="Pendulum-v1", seed=0, returns=(0, 0, 0),
              state="finished", steps=None, energy=None):  # fmt: skip
    """A run folder as the trainer leaves it; ``state`` None writes no status.json."""
    run = folder / name
    run.mkdir(parents=True)
    overrides = [*METHODS[method], f"env.id={env}", f"run.seed={seed}", "algo.learning_starts=0"]
    cfg = load_config(None, [*overrides, f"run.total_steps={TOTAL}", f"run.eval_every={EVERY}"])
    (run / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    steps = steps or [i * EVERY for i in range(len(returns))]
    rows = [f"{s},{s / 100},50.0,{r},1.5," for s, r in zip(steps, returns, strict=True)]
    (run / "metrics.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    if state is not None:
        status = {"state": state, "step": steps[-1], "total_steps": TOTAL, "pid": 1}
        (run / "status.json").write_text(json.dumps(status))
    if energy is not None:
        (run / "energy.json").write_text(json.dumps(energy))
    return run


def write_manifest(folder, runs, baseline=None):
    entries = [
        {"name": n, "method": m, "env": e, "seed": s, "overrides": {}} for n, m, e, s in runs
    ]
    data = {"version": 1, "name": "test", "baseline": baseline, "runs": entries}
    (folder / "sweep.json").write_text(json.dumps(data))


# Hand-computed grid. ANN TD3: Pendulum max [50, 70] -> 60 +- 10, final [40, 70] -> 55 +- 15;
# Hopper max [100, 200] -> 150 +- 50. PT-LIF: Pendulum max [66, 60] -> 63 +- 3 (ratio 1.05),
# final 60 +- 0; Hopper max [120, 120] -> 120 +- 0 (ratio 0.8), final [110, 120] -> 115 +- 5.
# APG(PT-LIF vs ANN TD3) = (0.05 - 0.2) / 2 = -7.50%.
GRID = [
    ("ANN TD3", "Pendulum-v1", 0, (10, 50, 40)),
    ("ANN TD3", "Pendulum-v1", 1, (5, 30, 70)),
    ("ANN TD3", "Hopper-v4", 0, (0, 100, 100)),
    ("ANN TD3", "Hopper-v4", 1, (0, 200, 150)),
    ("PT-LIF", "Pendulum-v1", 0, (0, 66, 60)),
    ("PT-LIF", "Pendulum-v1", 1, (0, 60, 60)),
    ("PT-LIF", "Hopper-v4", 0, (0, 120, 110)),
    ("PT-LIF", "Hopper-v4", 1, (0, 100, 120)),
]


def run_name(method, env, seed):
    return f"{method.replace(' ', '-').lower()}_{env}_s{seed}"


@pytest.fixture
def grid(tmp_path):
    """A plain folder of the finished GRID runs."""
    for method, env, seed, returns in GRID:
        write_run(tmp_path, run_name(method, env, seed), method, env, seed, returns)
    return tmp_path


def cli(argv):
    """``cmd_report`` on a parser made by ``add_report_parser`` (as spikerl.cli will)."""
    parser = argparse.ArgumentParser(prog="spikerl")
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    return cmd_report(parser.parse_args(["report", *map(str, argv)]))


def markdown_tables(text):
    """Each Markdown table of ``text`` as a list of rows of stripped cells (rule dropped)."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip("|").split(" | ")])
        elif current:
            tables.append([current[0], *current[2:]])
            current = []
    return tables


# --------------------------------------------------------------------------------------------
# Labels and numbers


@pytest.mark.parametrize("label", list(METHODS))
def test_method_label_names_every_method(label):
    assert method_label(load_config(None, METHODS[label])) == label


@pytest.mark.parametrize("kind", ["clif", "plif"])
def test_method_label_of_other_spiking_kinds(kind):
    assert method_label(load_config(None, [f"actor.kind={kind}"])) == kind.upper()
    proxy = load_config(None, [f"actor.kind={kind}", "algo.target=proxy"])
    assert method_label(proxy) == f"PT-{kind.upper()}"


def test_grid_means_ddof0_std_and_apg(grid):
    runs = collect_runs(grid)
    assert runs.baseline is None and len(runs.records) == len(GRID)
    report = summarize(runs.records)
    assert report.baseline == "ANN TD3"  # the default, present in the runs
    assert report.methods == ("ANN TD3", "PT-LIF")
    assert set(report.envs) == {"Pendulum-v1", "Hopper-v4"}
    ann_p, ann_h = report.cells["ANN TD3", "Pendulum-v1"], report.cells["ANN TD3", "Hopper-v4"]
    assert ann_p.max_return == (60.0, 10.0) and ann_p.final_return == (55.0, 15.0)
    assert ann_h.max_return == (150.0, 50.0) and ann_h.final_return == (125.0, 25.0)
    lif_p, lif_h = report.cells["PT-LIF", "Pendulum-v1"], report.cells["PT-LIF", "Hopper-v4"]
    assert lif_p.max_return == (63.0, 3.0) and lif_p.final_return == (60.0, 0.0)
    assert lif_h.max_return == (120.0, 0.0) and lif_h.final_return == (115.0, 5.0)
    assert all(c.seeds == c.runs == 2 and c.seeds_text == "2" for c in report.cells.values())
    assert report.gains["PT-LIF"].value == pytest.approx(-0.075)
    assert report.gains["PT-LIF"].envs == 2 and report.gains["ANN TD3"].value == 0.0
    grid_table = markdown_tables(report.format("md"))[0]
    assert grid_table[0][-1] == "APG vs ANN TD3"
    assert grid_table[1][-1] == "baseline" and grid_table[2][-1] == "-7.50%"


def test_other_baseline_and_no_baseline(grid):
    records = collect_runs(grid).records
    report = summarize(records, "PT-LIF")
    # ANN vs PT-LIF: (60/63 - 1 + 150/120 - 1) / 2
    assert report.gains["ANN TD3"].value == pytest.approx((60 / 63 + 150 / 120 - 2) / 2)
    without_ann = summarize([r for r in records if r.method != "ANN TD3"])
    assert without_ann.baseline is None and not without_ann.gains
    assert "APG" not in without_ann.format("md")
    assert json.loads(without_ann.format("json"))["apg_pct"] == {}


def test_unknown_baseline_is_a_usage_error_naming_the_methods(grid):
    with pytest.raises(UsageError, match=r"'DN' is not a method.*ANN TD3, PT-LIF"):
        summarize(collect_runs(grid).records, "DN")


def _rbar_records(table):
    """One finished seed per (method, env) with max average return ``table[method][i]``."""
    envs = ["IDP", "Ant", "HalfCheetah", "Hopper", "Walker2d"]
    return [
        RunRecord(f"{m}-{e}", m, e, 0, "finished", 1, 1, (0,), (float(r),))
        for m, values in table.items()
        for e, r in zip(envs, values, strict=True)
    ]


PAPER_TABLE_1 = {  # arXiv 2505.24161 Table 1: rounded seed means of max average return
    "ANN TD3": (7503, 4770, 10857, 3410, 4340),
    "LIF": (9347, 4294, 9404, 3520, 1862),
    "CLIF": (9351, 4590, 9594, 2772, 3307),
    "DN": (9350, 4800, 9147, 3446, 3964),
    "PT-LIF": (9348, 5383, 10103, 3385, 4314),
    "PT-CLIF": (9351, 5014, 9663, 3526, 4564),
    "PT-DN": (9350, 5400, 9347, 3507, 4277),
    "PN-ANN": (5653, 4234, 10708, 3435, 4106),  # appendix Tab. 11
}
PAPER_APG = {
    "LIF": -10.54, "CLIF": -6.66, "DN": 0.37, "PT-LIF": 5.84, "PT-CLIF": 5.46, "PT-DN": 5.06,
    "PN-ANN": -8.38,
}  # fmt: skip


def test_apg_matches_paper_table_1_within_0_02_points():
    envs = ["IDP", "Ant", "HalfCheetah", "Hopper", "Walker2d"]
    base = dict(zip(envs, PAPER_TABLE_1["ANN TD3"], strict=True))
    for method, printed in PAPER_APG.items():
        ours = dict(zip(envs, PAPER_TABLE_1[method], strict=True))
        assert 100 * apg(ours, base) == pytest.approx(printed, abs=0.02), method
    report = summarize(_rbar_records(PAPER_TABLE_1))  # the same through the report
    for method, printed in PAPER_APG.items():
        assert 100 * report.gains[method].value == pytest.approx(printed, abs=0.02), method
    grid_rows = {row[0]: row[-1] for row in markdown_tables(report.format("md"))[0][1:]}
    assert grid_rows["ANN TD3"] == "baseline" and grid_rows["PT-LIF"] == "+5.83%"  # rounded means


def test_apg_against_the_same_neuron_without_proxy_matches_the_appendix():
    # Appendix Tabs. 8-10: PT-LIF vs LIF +32.15% (the paper's "up to 32%"), PT-CLIF vs CLIF
    # +15.03%, PT-DN vs DN +4.87%.
    records = _rbar_records(PAPER_TABLE_1)
    for neuron, printed in {"LIF": 32.15, "CLIF": 15.03, "DN": 4.87}.items():
        gain = summarize(records, neuron).gains[f"PT-{neuron}"]
        assert 100 * gain.value == pytest.approx(printed, abs=0.02) and gain.envs == 5


# --------------------------------------------------------------------------------------------
# Unfinished, missing and broken runs


def _lock(folder, name, pid):
    (folder / f".{name}.lock").write_text(f"pid={pid}\nhost={socket.gethostname()}\ncommand=x\n")


def _dead_pid():
    """A pid that no live process has (the first free one from a high number)."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


SEQUENCE_PRESETS = {  # configs/quadrotor/ -> arXiv 2510.24461's names
    "guided_td3bc": "TD3BC+JSRL",
    "guided_bc": "BC+JSRL",
    "bc_sequence": "BC",
    "td3bc_offline": "TD3BC offline",
    "td3_sequence": "TD3",
}
REPO = Path(__file__).parents[2]


@pytest.mark.parametrize("preset", list(SEQUENCE_PRESETS))
def test_method_label_names_the_sequence_training_presets(preset):
    cfg = load_config(REPO / f"configs/quadrotor/{preset}.yaml")
    assert method_label(cfg) == SEQUENCE_PRESETS[preset]


def test_every_sequence_method_of_the_shipped_sweeps_gets_its_own_label():
    """A plain folder of sequence runs gets one label per method (not the actor's kind, and
    never one label for two different methods)."""
    from spikerl.experiments.sweep import load_sweep

    labels: dict[str, set] = {}  # label -> the distinct method configs (run settings aside)
    for name in ("sequence_baselines", "guided_ablation"):
        for run in load_sweep(REPO / f"configs/sweeps/{name}.yaml").runs:
            method = {k: v for k, v in config_to_dict(run.config).items() if k != "run"}
            labels.setdefault(method_label(run.config), set()).add(yaml.safe_dump(method))
    assert all(len(configs) == 1 for configs in labels.values()), sorted(labels)
    assert {"TD3BC+JSRL", "BC+JSRL", "BC", "TD3BC offline", "TD3"} <= set(labels)
    assert {"TD3 (norm. Q)+JSRL", "TD3BC", "TD3 (norm. Q)"} <= set(labels)  # the ablation


def test_include_unfinished_averages_running_stopped_and_killed_runs_as_they_stand(grid):
    """Long runs cut short: running, stopped and killed runs join the means with the curve they
    have, are listed as such, and a failed run stays out."""
    for seed, (name, state, pid) in enumerate(
        [("live", "running", os.getpid()), ("stopped", "stopped", None),
         ("killed", "running", _dead_pid()), ("failed", "failed", None)], start=2
    ):  # fmt: skip
        write_run(grid, name, "PT-LIF", "Hopper-v4", seed, (0, 130 + seed), state)
        if pid is not None:
            _lock(grid, name, pid)
    records = collect_runs(grid).records
    assert summarize(records).cells["PT-LIF", "Hopper-v4"].seeds == 2  # the default: left out
    report = summarize(records, include_unfinished=True)
    cell = report.cells["PT-LIF", "Hopper-v4"]
    maxima = [120, 120, 132, 133, 134]  # the two finished seeds, then live, stopped, killed
    assert (cell.seeds, cell.runs, cell.unfinished) == (5, 6, 3)
    assert cell.max_return == pytest.approx((np.mean(maxima), np.std(maxima)))
    assert cell.seeds_text == "5 (incl. 3 unfinished) (+1 left out)"
    assert {r.name for r in report.included} == {"live", "stopped", "killed"}
    assert [r.name for r in report.left_out] == ["failed"]
    text = report.format("md")
    assert "over seeds, 3 unfinished as they stand" in text
    included = next(t for t in markdown_tables(text) if t[0][-1] == "step/total")
    assert {row[0]: row[4] for row in included[1:]} == {
        "live": "running", "stopped": "stopped", "killed": "crashed"
    }  # fmt: skip
    data = json.loads(report.format("json"))
    runs = {row["name"]: row for row in data["runs"]}
    assert runs["stopped"]["averaged"] and not runs["failed"]["averaged"]
    assert data["include_unfinished"] is True
    cells = {(c["method"], c["env"]): c for c in data["cells"]}
    assert cells["PT-LIF", "Hopper-v4"]["unfinished"] == 3
    assert cells["ANN TD3", "Hopper-v4"]["unfinished"] == 0
    csv_rows = list(csv.DictReader(io.StringIO(report.format("csv"))))
    assert {r["unfinished"] for r in csv_rows} == {"0", "3"}
    grid_table = markdown_tables(text)[0]
    hopper = grid_table[0].index("Hopper-v4")
    pt_lif = next(row for row in grid_table if row[0] == "PT-LIF")
    assert pt_lif[hopper].startswith(f"{np.mean(maxima):.0f} ± ") and "†" in pt_lif[hopper]
    assert not report.gains["PT-LIF"].complete  # an APG over unfinished runs is marked
    assert "† averages unfinished runs as they stand" in text
    # without the flag the same records are the default report again
    assert summarize(report.records).cells["PT-LIF", "Hopper-v4"].seeds == 2


def test_a_run_evaluated_only_at_its_start_is_not_averaged(tmp_path):
    write_run(tmp_path, "done", returns=(1, 2, 3))
    write_run(tmp_path, "started", seed=1, returns=(50,), state="running")
    report = summarize(collect_runs(tmp_path).records, include_unfinished=True)
    assert [r.name for r in report.left_out] == ["started"] and not report.included


def test_curves_of_unfinished_runs_average_each_step_over_the_runs_that_reached_it():
    from spikerl.experiments.report_plots import aligned_curves

    done = RunRecord("a", "m", "e", 0, "finished", steps=(0, 500, 1000), returns=(1.0, 2.0, 3.0))
    cut = RunRecord("b", "m", "e", 1, "stopped", steps=(0, 500), returns=(5.0, 6.0))
    steps, returns = aligned_curves([done, cut], union=True)
    assert steps.tolist() == [0, 500, 1000]
    assert np.nanmean(returns, axis=0).tolist() == [3.0, 4.0, 3.0]


def test_cmd_report_include_unfinished_plots_the_curves_so_far(grid, tmp_path_factory, capsys):
    pytest.importorskip("matplotlib")
    write_run(grid, "stopped", "PT-LIF", "Hopper-v4", 5, (0, 140), "stopped")
    plots = tmp_path_factory.mktemp("plots")
    assert cli([grid, "--include-unfinished", "--format", "csv", "--plots-dir", plots]) == 0
    err = capsys.readouterr().err
    assert "1 unfinished run(s) are averaged as they stand" in err
    assert (plots / "learning_curves.png").stat().st_size > 0


def test_unfinished_and_missing_runs_are_flagged_and_left_out(grid):
    """A sweep folder: the GRID plus a running, a stopped, a crashed, a failed and a missing run
    of PT-LIF on Hopper; their high returns must not reach the means."""
    extra = {
        "live": ("running", os.getpid()),  # the lock's holder lives: still running
        "stopped": ("stopped", None),
        "killed": ("running", _dead_pid()),  # SIGKILL left "running" and the lock file
        "no-lock": ("running", None),
        "failed": ("failed", None),
    }
    manifest = [(run_name(m, e, s), m, e, s) for m, e, s, _ in GRID]
    for seed, (name, (state, pid)) in enumerate(extra.items(), start=2):
        write_run(grid, name, "PT-LIF", "Hopper-v4", seed, (0, 9999), state)
        if pid is not None:
            _lock(grid, name, pid)
        manifest.append((name, "PT-LIF", "Hopper-v4", seed))
    status = json.loads((grid / "failed" / "status.json").read_text())
    status["error"] = "TrainingDiverged: NaN in losses"
    (grid / "failed" / "status.json").write_text(json.dumps(status))
    manifest.append(("gone", "PT-LIF", "Hopper-v4", 9))
    write_manifest(grid, manifest, baseline="ANN TD3")

    report = summarize(collect_runs(grid).records)
    cell = report.cells["PT-LIF", "Hopper-v4"]
    assert cell.max_return == (120.0, 0.0) and (cell.seeds, cell.runs) == (2, 8)
    assert cell.seeds_text == "2 (+6 left out)"
    states = {r.name: (r.state, r.progress) for r in report.left_out}
    assert states == {
        "live": ("running", "500/1000"),
        "stopped": ("stopped", "500/1000"),
        "killed": ("crashed", "500/1000"),
        "no-lock": ("crashed", "500/1000"),
        "failed": ("failed", "500/1000: TrainingDiverged: NaN in losses"),
        "gone": ("missing", "-"),
    }
    grid_table, long_table, left_out = markdown_tables(report.format("md"))
    hopper = grid_table[0].index("Hopper-v4")
    assert grid_table[2][hopper] == "120 ± 0 (2/8)"
    assert ["PT-LIF", "Hopper-v4", "2 (+6 left out)"] in [row[:3] for row in long_table]
    assert {row[0]: row[4] for row in left_out[1:]} == {k: v[0] for k, v in states.items()}
    assert report.gains["PT-LIF"].value == pytest.approx(-0.075)
    assert not report.gains["PT-LIF"].complete and grid_table[2][-1] == "-7.50%*"
    assert "APG over cells with runs left out" in report.format("md")


def test_without_status_json_a_run_is_finished_at_total_steps(tmp_path):
    write_run(tmp_path, "done", returns=(1, 2, 3), state=None)
    write_run(tmp_path, "half", seed=1, returns=(1, 50), state=None)
    records = {r.name: r for r in collect_runs(tmp_path).records}
    assert records["done"].finished and records["done"].progress == "1000/1000"
    assert records["half"].state == "unfinished" and records["half"].progress == "500/1000"
    assert summarize(list(records.values())).cells["ANN TD3", "Pendulum-v1"].max_return == (3, 0)


def test_broken_runs_are_flagged_not_a_crash(grid):
    bad_yaml = grid / "bad-yaml"
    bad_yaml.mkdir()
    (bad_yaml / "config.yaml").write_text("env: [unclosed\n")
    bad_key = grid / "bad-key"
    bad_key.mkdir()
    (bad_key / "config.yaml").write_text("algo: {tua: 1}\n")
    bad_csv = write_run(grid, "bad-csv", "PT-LIF", "Hopper-v4", 7, (1, 2, 3))
    (bad_csv / "metrics.csv").write_text("step,eval/return_mean\n0,abc\n")
    nan_csv = write_run(grid, "nan-csv", "PT-LIF", "Hopper-v4", 9, (1, 2, 3))
    (nan_csv / "metrics.csv").write_text("step,eval/return_mean\n0,nan\n")
    bad_step = write_run(grid, "bad-step", "PT-LIF", "Hopper-v4", 10, (1, 2, 3))
    (bad_step / "metrics.csv").write_text("step,eval/return_mean\n0.5,1\n")
    bad_energy = write_run(grid, "bad-energy", "PT-LIF", "Hopper-v4", 8, (1, 2, 3))
    (bad_energy / "energy.json").write_text("{not json")
    (grid / "notes").mkdir()  # a subfolder without config.yaml is not a run
    report = summarize(collect_runs(grid).records)
    broken = {r.name: r for r in report.left_out}
    assert set(broken) == {"bad-yaml", "bad-key", "bad-csv", "nan-csv", "bad-step", "bad-energy"}
    assert all(r.state == "broken" for r in broken.values())
    assert "not valid YAML" in broken["bad-yaml"].problem
    assert "unknown config key 'algo.tua'" in broken["bad-key"].problem
    assert "eval/return_mean holds a value that is not a number" in broken["bad-csv"].problem
    assert "eval/return_mean holds a non-finite value" in broken["nan-csv"].problem
    assert "holds a step that is not a whole number" in broken["bad-step"].problem
    assert "energy.json cannot be read" in broken["bad-energy"].problem
    assert broken["bad-yaml"].method == "?" and ("?", "?") not in report.cells
    assert report.cells["PT-LIF", "Hopper-v4"].seeds_text == "2 (+4 left out)"
    assert report.methods == ("ANN TD3", "PT-LIF")
    left_out = markdown_tables(report.format("md"))[2]
    assert len(left_out) == 7 and all(row[4] == "broken" for row in left_out[1:])


def test_a_half_written_last_metrics_row_is_left_out(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(f"{HEADER}\n0,0,,1.5,0,\n500,5,1,2.5,0,\n1000,1")
    assert read_curve(path) == ((0, 500), (1.5, 2.5))
    assert read_curve(tmp_path / "none.csv") == ((), ())
    path.write_text("step,other\n0,1\n")
    with pytest.raises(ReportError, match="no 'step' and 'eval/return_mean' columns"):
        read_curve(path)


def test_finished_status_without_evaluations_is_broken(tmp_path):
    run = write_run(tmp_path, "empty", returns=(1, 2, 3))
    (run / "metrics.csv").unlink()
    (record,) = collect_runs(tmp_path).records
    assert record.state == "broken" and "has no evaluations" in record.problem


# --------------------------------------------------------------------------------------------
# Energy and formats


def _energy_dump(hidden):
    """An ``EnergyReport.to_dict()`` dump with a baseline, as ``spikerl energy --json`` writes."""
    ours, baseline = analytic_ann_report(3, 1, hidden), analytic_ann_report(3, 1)
    return ours.to_dict(baseline=baseline), ours


def test_energy_comes_from_the_runs_own_rows_of_energy_json(tmp_path):
    nj = {}
    for seed, hidden in enumerate([(64,), (32,)]):
        dump, ours = _energy_dump(hidden)
        nj[seed] = {p: ours.energy(PRESETS[p]).joules.mean / 1e-9 for p in PRESETS}
        write_run(tmp_path, f"s{seed}", "PT-LIF", seed=seed, returns=(1, 2, 3), energy=dump)
    records = collect_runs(tmp_path).records
    assert records[0].energy_nj == pytest.approx({p: nj[0][p] for p in ("45nm", "proxy-target")})
    report = summarize(records)
    assert report.has_energy
    cell = report.cells["PT-LIF", "Pendulum-v1"]
    assert cell.energy_nj["45nm"] == pytest.approx((nj[0]["45nm"] + nj[1]["45nm"]) / 2)
    long_table = markdown_tables(report.format("md"))[1]
    assert long_table[0][-2:] == ["nJ/decision 45nm", "nJ/decision proxy-target"]
    assert float(long_table[1][-2]) == pytest.approx(cell.energy_nj["45nm"], rel=1e-2)


def test_csv_and_json_parse_back_with_every_number(grid):
    report = summarize(collect_runs(grid).records)
    rows = list(csv.DictReader(io.StringIO(report.format("csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 4
    ann = next(r for r in rows if (r["method"], r["env"]) == ("ANN TD3", "Hopper-v4"))
    assert float(ann["max_return_mean"]) == 150 and float(ann["max_return_std"]) == 50
    assert float(ann["final_return_mean"]) == 125 and ann["energy_nj_45nm"] == ""
    lif = next(r for r in rows if r["method"] == "PT-LIF")
    assert float(lif["apg_pct"]) == pytest.approx(-7.5) and lif["baseline"] == "ANN TD3"
    data = json.loads(report.format("json"))
    assert data["version"] == 1 and data["baseline"] == "ANN TD3"
    assert data["apg_pct"]["PT-LIF"] == pytest.approx(-7.5)
    cell = next(c for c in data["cells"] if (c["method"], c["env"]) == ("PT-LIF", "Hopper-v4"))
    assert cell["max_return_mean"] == 120 and cell["final_return_std"] == 5
    assert cell["energy_nj_45nm"] is None
    assert len(data["runs"]) == len(GRID) and {r["state"] for r in data["runs"]} == {"finished"}
    with pytest.raises(UsageError, match="unknown report format 'txt'"):
        report.format("txt")


# --------------------------------------------------------------------------------------------
# Plots


def test_plots_are_written(grid, tmp_path_factory):
    pytest.importorskip("matplotlib")
    from spikerl.experiments.report_plots import write_plots

    out = tmp_path_factory.mktemp("plots") / "report"
    paths = write_plots(summarize(collect_runs(grid).records), out)
    assert [p.name for p in paths] == ["learning_curves.png", "max_return.png"]  # no energy
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 5000 for p in paths)
    dump, _ = _energy_dump((64,))
    (grid / run_name(*GRID[0][:3]) / "energy.json").write_text(json.dumps(dump))
    paths = write_plots(summarize(collect_runs(grid).records), out)
    assert paths[-1].name == "energy_vs_return.png" and paths[-1].stat().st_size > 5000


def test_learning_curves_align_seeds_on_their_common_steps():
    from spikerl.experiments.report_plots import aligned_curves

    a = RunRecord("a", "m", "e", 0, "finished", steps=(0, 500, 1000), returns=(1.0, 2.0, 3.0))
    b = RunRecord("b", "m", "e", 1, "finished", steps=(0, 1000, 1500), returns=(5.0, 7.0, 9.0))
    steps, returns = aligned_curves([a, b])
    assert steps.tolist() == [0, 1000] and returns.tolist() == [[1.0, 3.0], [5.0, 7.0]]


def test_plots_without_matplotlib_name_the_extra(grid, monkeypatch):
    from spikerl.experiments.report_plots import write_plots

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'spikerl\[plot\]'"):
        write_plots(summarize(collect_runs(grid).records), grid / "report")
    assert not (grid / "report").exists()


# --------------------------------------------------------------------------------------------
# Command


def test_cmd_report_prints_writes_and_plots(grid, tmp_path_factory, capsys):
    assert cli([grid]) == 0
    out, err = capsys.readouterr()
    assert markdown_tables(out)[0][0][0] == "method" and err == ""
    assert cli([grid, "--format", "json", "--baseline", "PT-LIF"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] == "PT-LIF"
    target = tmp_path_factory.mktemp("out") / "table.csv"
    assert cli([grid, "--format", "csv", "--output", target]) == 0
    out, err = capsys.readouterr()
    assert out == "" and f"table: {target}" in err
    assert len(list(csv.DictReader(target.open()))) == 4
    pytest.importorskip("matplotlib")
    assert cli([grid, "--plots"]) == 0
    err = capsys.readouterr().err
    assert f"plot: {grid / 'report' / 'learning_curves.png'}" in err
    assert "energy-vs-return plot is skipped" in err
    assert collect_runs(grid).records  # the report/ folder is not taken for a run


def test_cmd_report_notes_left_out_runs_beside_csv(grid, capsys):
    write_run(grid, "half", "PT-LIF", "Hopper-v4", 5, (0, 9999), "stopped")
    assert cli([grid, "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "1 run(s) are left out of the means (unfinished, failed" in err
    row = next(
        r
        for r in csv.DictReader(io.StringIO(out))
        if r["env"] == "Hopper-v4" and r["method"] == "PT-LIF"
    )
    assert (row["max_return_mean"], row["seeds"], row["left_out"]) == ("120.0", "2", "1")


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "nowhere", "no such folder"),
        (lambda d: _touch(d / "file.txt"), "is a file"),
        (lambda d: d, "holds no runs"),
        (lambda d: write_run(d, "one"), "is a single run"),
        (lambda d: _touch(d / "sweep.json", "{"), "sweep.json cannot be read"),
        (lambda d: _touch(d / "sweep.json", '{"version": 2, "runs": []}'), "version-1 sweep"),
        (lambda d: _touch(d / "sweep.json", '{"version": 1, "runs": [{}]}'), "runs[0] needs"),
        (lambda d: _touch(d / "sweep.json", '{"version": 1, "runs": []}'), "lists no runs"),
    ],
)
def test_bad_folders_are_one_line_errors(tmp_path, make, needle):
    folder = make(tmp_path)
    with pytest.raises(ReportError, match=re.escape(needle)) as info:
        cli([folder if folder.name != "sweep.json" else folder.parent])
    assert isinstance(info.value, SpikerlError) and "\n" not in str(info.value)


def _touch(path, text=""):
    path.write_text(text)
    return path


def test_unwritable_output_is_a_one_line_error_and_a_missing_folder_is_made(grid, tmp_path):
    blocker = _touch(tmp_path / "blocker")
    for option in ("--output", "--plots-dir"):
        with pytest.raises(UsageError, match="blocker is a file, not a folder"):
            cli([grid, option, blocker / "x"])
    cli([grid, "--output", tmp_path / "no" / "such" / "table.md"])
    assert (tmp_path / "no" / "such" / "table.md").read_text().strip()


# --------------------------------------------------------------------------------------------
# Through spikerl.cli.main (pass once ``report`` is wired into spikerl/cli.py)


def test_cli_main_report_prints_the_table(grid, capsys):
    assert main(["report", str(grid), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["apg_pct"]["PT-LIF"] == pytest.approx(-7.5)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [(["nowhere"], 1, "no such folder"), (["GRID", "--baseline", "DN"], 2, "'DN' is not")],
)
def test_cli_main_report_bad_input_is_one_error_line(grid, capsys, args, code, needle):
    args = [str(grid) if a == "GRID" else str(grid / a) if a == "nowhere" else a for a in args]
    assert main(["report", *args]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1


def test_apg_leaves_out_envs_where_the_baseline_mean_is_not_positive(tmp_path):
    """Pendulum's returns are negative: R_M / R_B - 1 would reward the worse method there."""
    write_run(tmp_path, "a-p", "ANN TD3", "Pendulum-v1", returns=(-900, -200, -200))
    write_run(tmp_path, "l-p", "PT-LIF", "Pendulum-v1", returns=(-900, -300, -300))
    write_run(tmp_path, "a-h", "ANN TD3", "Hopper-v4", returns=(0, 100, 100))
    write_run(tmp_path, "l-h", "PT-LIF", "Hopper-v4", returns=(0, 110, 110))
    report = summarize(collect_runs(tmp_path).records)
    gain = report.gains["PT-LIF"]
    assert gain.value == pytest.approx(0.10) and gain.envs == 1
    text = report.format("md")
    assert "+10.00% (1/2 envs)" in text
    assert "left out on Pendulum-v1, where the baseline's mean is <= 0" in text


# --------------------------------------------------------------------------------------------
# Guided sequence runs: the guide-free curve; copies of one run


def _add_guide_free(run, values):
    """Give ``run``'s metrics.csv an ``eval_free/return_mean`` column (one value per row)."""
    path = run / "metrics.csv"
    lines = path.read_text().splitlines()
    rows = [f"{line},{v}" for line, v in zip(lines[1:], values, strict=True)]
    path.write_text("\n".join([f"{lines[0]},eval_free/return_mean", *rows]) + "\n")


def test_guide_free_curves_get_their_own_columns_and_plot(grid, tmp_path_factory):
    # PT-LIF Pendulum: guide-free max [9, 20] -> 14.5 +- 5.5, final [4, 20] -> 12 +- 8
    _add_guide_free(grid / run_name("PT-LIF", "Pendulum-v1", 0), (1, 9, 4))
    _add_guide_free(grid / run_name("PT-LIF", "Pendulum-v1", 1), (2, 3, 20))
    runs = collect_runs(grid).records
    free = {r.name: r.free_returns for r in runs if r.free_returns}
    assert free == {run_name("PT-LIF", "Pendulum-v1", 0): (1, 9, 4),
                    run_name("PT-LIF", "Pendulum-v1", 1): (2, 3, 20)}  # fmt: skip
    report = summarize(runs)
    cell = report.cells["PT-LIF", "Pendulum-v1"]
    assert cell.free_seeds == 2
    assert cell.free_max_return == (14.5, 5.5) and cell.free_final_return == (12, 8)
    assert cell.max_return == (63, 3)  # the guided curve is what the grid ranks, unchanged
    assert report.cells["ANN TD3", "Pendulum-v1"].free_seeds == 0
    header, *rows = markdown_tables(report.markdown())[1]
    assert header[-4:] == ["guide-free max", "std", "guide-free final", "std"]
    lif = next(r for r in rows if r[:2] == ["PT-LIF", "Pendulum-v1"])
    ann = next(r for r in rows if r[:2] == ["ANN TD3", "Pendulum-v1"])
    assert lif[-4:] == ["14.5", "5.5", "12", "8"] and ann[-4:] == ["-"] * 4
    assert "the deployment case" in report.markdown()
    rows = list(csv.DictReader(io.StringIO(report.format("csv"))))
    row = next(r for r in rows if (r["method"], r["env"]) == ("PT-LIF", "Pendulum-v1"))
    assert float(row["free_max_return_mean"]) == 14.5 and float(row["free_final_return_std"]) == 8
    data = json.loads(report.format("json"))
    by_name = {r["name"]: r for r in data["runs"]}
    assert by_name[run_name("PT-LIF", "Pendulum-v1", 1)]["free_final_return"] == 20
    assert by_name[run_name("ANN TD3", "Pendulum-v1", 1)]["free_max_return"] is None
    pytest.importorskip("matplotlib")
    from spikerl.experiments.report_plots import write_plots

    paths = write_plots(report, tmp_path_factory.mktemp("plots"))
    assert "guide_free_curves.png" in [p.name for p in paths]


def test_runs_without_a_guide_free_curve_get_no_such_columns(grid):
    report = summarize(collect_runs(grid).records)
    assert not report.has_guide_free and "guide-free" not in report.markdown()


def test_a_copied_run_folder_is_averaged_once_and_listed_as_a_copy(grid):
    original = run_name("ANN TD3", "Hopper-v4", 0)
    shutil.copytree(grid / original, grid / "zz-copy")
    report = summarize(collect_runs(grid).records)
    cell = report.cells["ANN TD3", "Hopper-v4"]
    assert (cell.runs, cell.seeds, cell.left_out) == (2, 2, 0)
    assert cell.max_return == (150, 50)  # not (100 + 100 + 200) / 3
    (copy,) = report.left_out
    assert copy.name == "zz-copy" and copy.state == "copy" and original in copy.problem
    assert "(2/" not in report.markdown() and "a copy of" in report.markdown()


def test_of_copies_the_finished_one_else_the_one_furthest_on_is_averaged(grid):
    original = grid / run_name("ANN TD3", "Hopper-v4", 0)  # returns (0, 100, 100)
    shutil.copytree(original, grid / "a-longer")  # sorts first, but ends further on
    write_run(grid, "cut", "ANN TD3", "Hopper-v4", 0, (0, 100), state="stopped")
    (grid / "cut" / "config.yaml").write_text((original / "config.yaml").read_text())
    status = json.loads((original / "status.json").read_text())
    (original / "status.json").write_text(json.dumps({**status, "state": "stopped", "step": 500}))
    for include in (False, True):  # a copy is a copy whether or not it would be averaged
        report = summarize(collect_runs(grid).records, include_unfinished=include)
        averaged = [r.name for r in report.averaged_runs("ANN TD3", "Hopper-v4")]
        assert sorted(averaged) == ["a-longer", run_name("ANN TD3", "Hopper-v4", 1)]
        assert {r.name: r.state for r in report.left_out} == {"cut": "copy", original.name: "copy"}
        assert report.cells["ANN TD3", "Hopper-v4"].runs == 2


def test_an_unfinished_copy_of_a_finished_run_is_no_missing_seed(grid):
    original = grid / run_name("ANN TD3", "Hopper-v4", 0)
    write_run(grid, "extended", "ANN TD3", "Hopper-v4", 0, (0, 100, 100, 120), state="stopped")
    (grid / "extended" / "config.yaml").write_text((original / "config.yaml").read_text())
    cell = summarize(collect_runs(grid).records).cells["ANN TD3", "Hopper-v4"]
    assert (cell.runs, cell.seeds, cell.left_out) == (2, 2, 0)


def test_runs_of_one_config_whose_curves_part_are_no_copies(grid):
    """Another run.total_steps (not in ``learns``) moves the curriculum and the stepped slope:
    such runs agree at step 0 only and are two runs."""
    original = grid / run_name("ANN TD3", "Hopper-v4", 0)  # returns (0, 100, 100)
    write_run(grid, "other-budget", "ANN TD3", "Hopper-v4", 0, (0, 100, 90), state="stopped")
    (grid / "other-budget" / "config.yaml").write_text((original / "config.yaml").read_text())
    write_run(grid, "only-start", "ANN TD3", "Hopper-v4", 0, (0,), state="stopped")
    (grid / "only-start" / "config.yaml").write_text((original / "config.yaml").read_text())
    report = summarize(collect_runs(grid).records, include_unfinished=True)
    assert not any(r.state == "copy" for r in report.records)
    assert report.cells["ANN TD3", "Hopper-v4"].seeds == 3  # only-start: not evaluated after it


def test_runs_of_one_seed_with_other_settings_are_no_copies(grid):
    original = grid / run_name("ANN TD3", "Hopper-v4", 0)
    cfg = yaml.safe_load((original / "config.yaml").read_text())
    cfg["algo"]["tau"] = 0.01
    write_run(grid, "other-tau", "ANN TD3", "Hopper-v4", 0, (0, 300, 300))
    (grid / "other-tau" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    report = summarize(collect_runs(grid).records)
    assert report.cells["ANN TD3", "Hopper-v4"].seeds == 3 and not report.left_out


def test_a_guide_free_mean_over_fewer_seeds_says_so(grid):
    _add_guide_free(grid / run_name("PT-LIF", "Pendulum-v1", 0), (1, 9, 4))
    report = summarize(collect_runs(grid).records)
    assert report.cells["PT-LIF", "Pendulum-v1"].free_seeds == 1
    lif = next(
        r for r in markdown_tables(report.markdown())[1] if r[:2] == ["PT-LIF", "Pendulum-v1"]
    )
    assert lif[-4:-2] == ["9 (1 of 2)", "0"]
    row = next(
        r
        for r in csv.DictReader(io.StringIO(report.format("csv")))
        if (r["method"], r["env"]) == ("PT-LIF", "Pendulum-v1")
    )
    assert row["free_seeds"] == "1"


@pytest.mark.parametrize(
    ("guide", "label"),
    [("builtin-v2", "TD3BC+JSRL"), ("builtin", "TD3BC+JSRL [builtin-v1]"),
     ("builtin-v1", "TD3BC+JSRL [builtin-v1]"), ("runs/g/best.pt", "TD3BC+JSRL [runs/g/best.pt]")],
)  # fmt: skip
def test_a_sequence_method_behind_another_guide_is_named_after_it(guide, label):
    cfg = load_config(
        REPO / "configs/quadrotor/guided_td3bc.yaml", [f"algo.sequence.guide={guide}"]
    )
    assert method_label(cfg) == label
    overrides = [f"algo.sequence.guide={guide}", "algo.sequence.target_action=policy"]
    policy = load_config(REPO / "configs/quadrotor/guided_td3bc.yaml", overrides)
    assert method_label(policy) == (
        f"{label[:-1]}, policy target]" if "[" in label else f"{label} [policy target]"
    )
    assert policy.run_name == "sequence-td3bc-jsrl-policy-target-lif-spikerl-Quadrotor-v0-s0"
    no_guide = load_config(REPO / "configs/quadrotor/td3_sequence.yaml")
    assert method_label(no_guide) == "TD3"


def test_long_method_labels_wrap_the_legend_into_rows():
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    from spikerl.experiments.report_plots import _legend_columns

    fig = matplotlib.figure.Figure(figsize=(6.4, 4))
    assert _legend_columns(fig, ["TD3BC+JSRL [builtin-v1]", "TD3"]) == 2
    assert _legend_columns(fig, ["LIF", "PT-LIF", "DN", "CLIF", "ANN TD3", "SAC"]) == 5
    assert _legend_columns(fig, ["x" * 200]) == 1
