"""``spikerl bench``: every section runs on tiny settings and reports what it claims."""

import json

import pytest

from spikerl.bench import BenchSettings, run_suite
from spikerl.bench.report import _blas, render_markdown, targets
from spikerl.bench.suite import CONVERSION_MODELS, OPT_IN_VARIANTS, SEED_VARIANTS, TRAINING_VARIANTS
from spikerl.cli import main
from spikerl.experiments.config import load_config


@pytest.fixture(scope="module")
def quick_results():
    settings = BenchSettings.quick(sb3=False, threads=1)
    return run_suite(settings, progress=lambda line: None)


def _positive(summary):
    return summary["min"] > 0 and summary["min"] <= summary["median"] <= summary["max"]


def test_training_section_has_every_variant_with_work_and_roofline(quick_results):
    rows = {r["variant"]: r for r in quick_results["training"]["rows"]}
    assert list(rows) == list(TRAINING_VARIANTS)
    assert rows["ANN-TD3"]["ratio_to_ann_td3"] == 1.0
    for row in rows.values():
        assert _positive(row["steps_per_sec"])
        # the step's products are timed apart from the step: below 1 on a quiet machine, a
        # little above when another process took the cores during one of the two timings
        assert 0 < row["roofline_fraction"] < 2
    # the proxy target adds K = 3 proxy steps on a 512-512 network per actor step
    proxy, vanilla = rows["proxy-target TD3 (LIF)"], rows["spiking TD3 (LIF, Polyak target)"]
    assert proxy["gflop_per_step"] > vanilla["gflop_per_step"] > rows["ANN-TD3"]["gflop_per_step"]
    assert _positive(quick_results["training"]["raw_env_steps_per_sec"])


def test_opt_in_variants_are_the_spiking_td3_variants_with_one_change_each():
    assert len(OPT_IN_VARIANTS) == 4
    for name, overrides in OPT_IN_VARIANTS.items():
        cfg = load_config(None, overrides)
        assert cfg.actor.kind == "lif"
        assert (cfg.run.precision == "bfloat16") != cfg.run.compile, name


def test_warm_up_time_is_reported(quick_results):
    assert all(r["warmup_seconds"] > 0 for r in quick_results["training"]["rows"])


def test_other_sections_cover_their_settings(quick_results):
    assert _positive(quick_results["sequence"]["windows_per_sec"])
    assert quick_results["sequence"]["gflop_per_update"] > 0
    conversion = quick_results["conversion"]["rows"]
    assert {r["policy"] for r in conversion} == {"ann", *CONVERSION_MODELS}
    assert {r["batch"] for r in conversion} == {1, 256}
    assert [r["drones"] for r in quick_results["quadrotor"]["rows"]] == [1, 64]
    seeds = quick_results["seeds"]
    assert seeds["seeds"] == 2 and [r["variant"] for r in seeds["rows"]] == list(SEED_VARIANTS)
    assert "SAC" in SEED_VARIANTS
    assert all(_positive(r["stacked_steps_per_sec"]) and r["speedup"] > 0 for r in seeds["rows"])
    for r in seeds["rows"]:  # stacking adds no matrix work per env step
        assert r["stacked_gflop_per_step"] == pytest.approx(r["gflop_per_step"], rel=1e-6)
        assert r["single_roofline_fraction"] > 0 and r["stacked_roofline_fraction"] > 0
    latency = quick_results["latency"]["rows"]
    assert len(latency) == 9 and all(r["p10_us"] <= r["median_us"] <= r["p90_us"] for r in latency)
    machine = quick_results["machine"]
    assert machine["cores"] >= 1 and machine["torch"] and machine["cpu"]
    blas = machine["numpy_blas"]  # threadpoolctl is in the dev extra: NumPy's BLAS is named
    assert blas and all(p["internal_api"] and p["num_threads"] >= 1 for p in blas)
    assert quick_results["settings"]["torch_threads"] == 1
    assert machine["allocator"] != "system default"  # the suite tunes it as a training run does


def test_markdown_report_names_the_command_machine_and_sections(quick_results):
    text = render_markdown(quick_results, "spikerl bench --quick")
    assert "`spikerl bench --quick`" in text
    for title in ("## Training on HalfCheetah-v4", "## Sequence training", "## Converted policies",
                  "## Quadrotor vector env", "## Latency per decision",
                  "## Many seeds in one process"):  # fmt: skip
        assert title in text
    assert "| proxy-target TD3 (DN) |" in text
    assert f"| C allocator | {quick_results['machine']['allocator']} |" in text


def test_machine_table_names_numpy_blas_and_any_openblas_override():
    machine = {"numpy_blas": [{"internal_api": "openblas", "version": "0.3.31",
                               "architecture": "Haswell", "num_threads": 2}],
               "openblas_overrides": {"OPENBLAS_CORETYPE": "Haswell"}}  # fmt: skip
    assert _blas(machine) == "openblas 0.3.31 (Haswell, 2 threads), OPENBLAS_CORETYPE=Haswell set"
    assert _blas({}) == "not recorded"  # a run saved before the BLAS was recorded
    assert _blas({"numpy_blas": []}) == "unknown (install threadpoolctl)"


def test_targets_are_read_off_the_results():
    results = {
        "training": {"rows": [{"variant": "ANN-TD3", "ratio_to_ann_td3": 1.0},
                              {"variant": "Stable-Baselines3 TD3", "ratio_to_ann_td3": 0.5}]},
        "quadrotor": {"rows": [{"drones": 4096, "drone_steps_per_sec": {"median": 9e5}}]},
    }  # fmt: skip
    assert targets(results) == [
        ["ANN-TD3 training >= 1.3x Stable-Baselines3 TD3", "2.000x", "yes"],
        ["quadrotor vector env >= 1,000,000 drone-steps/s at N = 4096", "900,000", "no"],
    ]
    # shown rounded down: a ratio that misses never reads as one that meets
    results["training"]["rows"][1]["ratio_to_ann_td3"] = 1 / 1.2987
    results["quadrotor"]["rows"][0]["drone_steps_per_sec"]["median"] = 999_999.6
    assert [row[1:] for row in targets(results)] == [["1.298x", "no"], ["999,999", "no"]]
    seeds = {"seeds": 8, "rows": [{"variant": "ANN-TD3", "speedup": 3.0}]}
    cpu = targets({**results, "seeds": seeds, "machine": {"device": "cpu"}})[-1]
    gpu = targets({**results, "seeds": seeds, "machine": {"device": "cuda"}})[-1]
    assert cpu[0].startswith("many seeds: S = 8 in one process >= 2x") and cpu[2] == "yes"
    assert ">= 5x" in gpu[0] and "on a GPU" in gpu[0] and gpu[2] == "no"
    smoke = targets({**results, "settings": {"smoke": True}})
    assert {row[2] for row in smoke} == {"not judged (--quick)"}


def test_a_busy_machine_is_named_in_the_report():
    from spikerl.bench.report import busy_warning

    quiet = {"machine": {"load_avg_1m": 0.4, "cores": 2},
             "training": {"rows": [{"variant": "LIF", "roofline_fraction": 0.6}]}}  # fmt: skip
    assert busy_warning(quiet) is None
    busy = {"machine": {"load_avg_1m": 2.74, "cores": 2},
            "training": {"rows": [{"variant": "LIF", "roofline_fraction": 14.8}]}}  # fmt: skip
    text = busy_warning(busy)
    assert "load average at the start (2.74)" in text and "above 100% (LIF)" in text


def test_cli_writes_markdown_and_json(tmp_path, capsys):
    md, js = tmp_path / "out" / "bench.md", tmp_path / "out" / "bench.json"
    code = main(["bench", "--quick", "--sections", "quadrotor", "--device", "cpu",
                 "--markdown", str(md), "--json", str(js)])  # fmt: skip
    assert code == 0
    payload = json.loads(js.read_text())
    assert payload["quadrotor"]["rows"][0]["drones"] == 1 and "training" not in payload
    text = md.read_text()
    assert text.startswith("# Benchmarks (a --quick smoke run: these numbers are not benchmarks)")
    assert payload["settings"]["smoke"] is True and payload["machine"]["spikerl"]
    assert "quadrotor: N=1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", "tpu"], "choose cpu, cuda, cuda:N or auto"),
        (["--markdown", "."], "is a folder"),
        (["--markdown", "same.json", "--json", "same.json"], "name one file"),
        (["--sections", "latency", "--plot", "x.png"], "add training to --sections"),
        (["--sections", "latency", "--env", "Nope-v0"], "add one of them"),
        (["--from-json", "x.json", "--markdown", "x.md"], "--quick, --sections would be ignored"),
    ],
)
def test_cli_bad_input_is_one_line_before_any_timing(argv, message, capsys):
    assert main(["bench", "--quick", "--sections", "quadrotor", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1


def test_plot_and_redraw_from_saved_json(quick_results, tmp_path):
    from spikerl.bench.report import write_report

    md, js, png = tmp_path / "b.md", tmp_path / "b.json", tmp_path / "fig" / "training.png"
    write_report(quick_results, "spikerl bench --quick", md, js)
    assert main(["bench", "--from-json", str(js), "--plot", str(png),
                 "--markdown", str(tmp_path / "again.md")]) == 0  # fmt: skip
    assert png.stat().st_size > 10_000
    assert (tmp_path / "again.md").read_text() == md.read_text()


def test_redraw_refuses_a_file_that_is_not_a_bench_result(tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    assert main(["bench", "--from-json", str(other), "--plot", str(tmp_path / "x.png")]) == 2
    assert "not a spikerl bench result" in capsys.readouterr().err


def test_redraw_of_an_edited_result_is_one_line(quick_results, tmp_path, capsys):
    import json

    from spikerl.bench.report import write_report

    md, js = tmp_path / "b.md", tmp_path / "b.json"
    write_report(quick_results, "spikerl bench --quick", md, js)
    edited = json.loads(js.read_text())
    edited["settings"] = None  # a section of the wrong type
    js.write_text(json.dumps(edited))
    assert main(["bench", "--from-json", str(js), "--markdown", str(tmp_path / "o.md")]) == 2
    err = capsys.readouterr().err
    assert "incomplete bench result" in err and "Traceback" not in err


def test_ctrl_c_keeps_the_sections_finished_before_it(tmp_path, monkeypatch, capsys):
    from spikerl.bench import suite

    def interrupted(settings, progress):
        raise KeyboardInterrupt

    monkeypatch.setitem(suite.SECTIONS, "latency", interrupted)
    md, js = tmp_path / "b.md", tmp_path / "b.json"
    code = main(["bench", "--quick", "--sections", "quadrotor", "latency", "--device", "cpu",
                 "--markdown", str(md), "--json", str(js)])  # fmt: skip
    assert code == 130
    payload = json.loads(js.read_text())
    assert payload["interrupted"] == "latency" and "quadrotor" in payload
    assert "**Interrupted** (Ctrl-C) in the latency section" in md.read_text()
    assert "interrupted in the latency section" in capsys.readouterr().err


def test_a_quick_run_writes_beside_a_full_runs_report_not_over_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--quick", "--sections", "quadrotor", "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs" / "bench").iterdir()) == [
        "quick.json",
        "quick.md",
    ]
