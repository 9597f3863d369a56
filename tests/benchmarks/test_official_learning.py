"""``benchmarks/official_learning.py``: both codes evaluate at the same steps, finished seeds
are not run again, and an incomplete curve is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCRIPT = "official_learning"

#: Stands in for the official main.py: parses its flags, logs the call and saves one return
#: per evaluation (before training and every --eval_freq env steps) where main.py saves them.
FAKE_MAIN = """
import argparse, os, numpy as np
p = argparse.ArgumentParser()
for flag in ("--env", "--spiking_neurons", "--proxy"):
    p.add_argument(flag)
for flag in ("--seed", "--start_timesteps", "--max_trainsteps", "--eval_freq"):
    p.add_argument(flag, type=int)
a = p.parse_args()
with open("calls.txt", "a") as f:
    f.write(f"{a.seed} {a.proxy}\\n")
os.makedirs("results", exist_ok=True)
evals = 1 + (a.start_timesteps + a.max_trainsteps) // a.eval_freq
np.save(f"results/{a.spiking_neurons}_{a.env}_{a.seed}", 100.0 * a.seed + np.arange(evals))
"""


@pytest.fixture
def official(tmp_path: Path) -> Path:
    folder = tmp_path / "official_checkout"
    folder.mkdir()
    (folder / "main.py").write_text(FAKE_MAIN)
    return folder


def _argv(official: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--official", str(official), "--env", "InvertedDoublePendulum-v4", "--seeds", "0", "1",
        "--learning-starts", "256", "--train-steps", "64", "--eval-every", "160",
        "--out", str(out), *extra,
    ]  # fmt: skip


def test_both_codes_are_collected_at_the_same_steps_and_nothing_runs_twice(
    script, official, tmp_path
):
    out = tmp_path / "out"
    argv = _argv(official, out, "--json", str(tmp_path / "r.json"))
    assert script.main([*argv, "--plot", str(tmp_path / "r.png")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["steps"] == [0, 160, 320]
    assert result["curves"]["official"] == {"0": [0.0, 1.0, 2.0], "1": [100.0, 101.0, 102.0]}
    assert result["summary"]["official"]["final"] == {"mean": 52.0, "std": 50.0}
    for seed in ("0", "1"):
        run = out / "InvertedDoublePendulum-v4-proxy" / "spikerl" / f"lif-proxy-s{seed}"
        rows = (run / "metrics.csv").read_text().splitlines()[1:]
        assert [float(r.split(",")[4]) for r in rows] == result["curves"]["spikerl"][seed]
        assert len(rows) == 3
    assert (tmp_path / "r.png").stat().st_size > 0
    official_runs = out / "InvertedDoublePendulum-v4-proxy" / "official"
    calls = (official_runs / "calls.txt").read_text().split()
    assert calls == ["0", "Yes", "1", "Yes"]

    assert script.main(argv) == 0  # finished: neither code runs again
    assert (official_runs / "calls.txt").read_text().split() == calls
    assert json.loads((tmp_path / "r.json").read_text())["wall_seconds"] == {
        "official_per_seed": {},
        "spikerl_all_seeds": None,
    }

    # other settings in the same folder are refused, not mixed in
    with pytest.raises(SystemExit, match="other settings .*eval_every: 160 there, 80 now"):
        script.main([*argv, "--eval-every", "80"])


def test_an_incomplete_or_missing_run_is_one_clear_error(script, official, tmp_path):
    argv = _argv(official, tmp_path / "out")
    with pytest.raises(SystemExit, match="--collect: .* holds no runs"):
        script.main([*argv, "--collect"])
    work = tmp_path / "out" / "InvertedDoublePendulum-v4-proxy"
    (work / "official" / "results").mkdir(parents=True)
    script.claim_work_dir(script.parse_args(argv))
    (work / "official" / "results" / "LIF_InvertedDoublePendulum-v4_0.npy").write_bytes(b"\x93NU")
    with pytest.raises(SystemExit, match="official: seeds with not 3 evaluations .*0: 0, 1: 0"):
        script.main([*argv, "--collect"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--learning-starts", "100"], "at least the batch size \\(256\\)"),
     (["--eval-every", "100"], "make it divide")],
)  # fmt: skip
def test_settings_the_official_code_would_run_otherwise_are_refused(
    script, official, tmp_path, flags, message
):
    with pytest.raises(SystemExit, match=message):
        script.main([*_argv(official, tmp_path / "out"), *flags])


def test_a_missing_checkout_or_preset_is_refused(script, official, tmp_path, capsys):
    with pytest.raises(SystemExit):
        script.main(["--official", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "no main.py there" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--official", str(official), "--env", "Pendulum-v1"])
    assert "no preset configs/proxy_target/pendulum_lif_proxy.yaml" in capsys.readouterr().err


def test_a_failed_official_run_is_one_line_naming_its_log(script, official, tmp_path):
    (official / "main.py").write_text("raise SystemExit(3)\n")
    with pytest.raises(SystemExit, match="official seed 0 failed; see .*log_s0.txt"):
        script.main(_argv(official, tmp_path / "out"))
