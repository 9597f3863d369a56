"""The command line: in-process ``main(argv)`` calls, exit codes and messages."""

import json

import pytest

from spikerl.cli import main
from tests.conftest import TINY


def sets(*overrides):
    return [a for o in (*TINY, *overrides) for a in ("--set", o)]


def test_train_evaluate_and_refuse_existing(tmp_path, capsys):
    args = ["train", *sets("run.total_steps=200", "run.name=cli"), "--runs-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "max avg return" in out and "cli" in out
    assert main(args) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert main(["evaluate", str(tmp_path / "cli"), "--episodes", "2"]) == 0
    assert "return mean" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # argparse rejects it before any work
        main(["evaluate", str(tmp_path / "cli"), "--episodes", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err
    # a reward curriculum only where the env has one; a video of one policy at a time
    assert main(["evaluate", str(tmp_path / "cli"), "--curriculum", "1"]) == 2
    assert "has no reward curriculum" in capsys.readouterr().err
    two = [str(tmp_path / "cli"), str(tmp_path / "cli" / "best.pt")]
    assert main(["evaluate", *two, "--video", str(tmp_path / "v")]) == 2
    assert "--video records one policy" in capsys.readouterr().err
    for bad in (["--curriculum", "1.5"], ["--curriculum", "nan"], ["--seed", str(2**32)]):
        with pytest.raises(SystemExit) as exit_info:  # refused before any checkpoint is read
            main(["evaluate", str(tmp_path / "cli"), *bad])
        assert exit_info.value.code == 2 and bad[0] in capsys.readouterr().err
    other = [
        "train",
        *sets("run.total_steps=200", "run.name=car", "env.id=MountainCarContinuous-v0"),
    ]
    assert main([*other, "--runs-dir", str(tmp_path)]) == 0
    assert main(["evaluate", str(tmp_path / "cli"), str(tmp_path / "car")]) == 2
    assert "policies of one environment" in capsys.readouterr().err


def test_resume_finished_run_is_a_no_op(tmp_path, capsys):
    args = ["train", *sets("run.total_steps=200", "run.name=r"), "--runs-dir", str(tmp_path)]
    assert main(args) == 0
    files = {
        name: (tmp_path / "r" / name).read_bytes() for name in ("status.json", "provenance.yaml")
    }
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "r")]) == 0
    assert "finished at step 200; nothing to train" in capsys.readouterr().err
    assert all((tmp_path / "r" / name).read_bytes() == data for name, data in files.items())
    # killed after its last checkpoint, before its status said so: the resume says it now
    status = tmp_path / "r" / "status.json"
    status.write_text(status.read_text().replace('"finished"', '"running"'))
    assert main(["train", "--resume", str(tmp_path / "r")]) == 0
    assert json.loads(status.read_text())["state"] == "finished"
    assert main(["train", "--resume", str(tmp_path / "r"), "--set", "run.seed=2"]) == 2
    assert "drop --config/--set" in capsys.readouterr().err
    # a file of the run instead of its folder: one line naming the folder
    assert main(["train", "--resume", str(tmp_path / "r" / "checkpoint.pt")]) == 1  # RunError
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"is a file of a run; give its folder {tmp_path / 'r'}" in err


def test_train_seeds_writes_one_folder_per_seed_and_resumes_them(tmp_path, capsys):
    args = ["train", *sets("run.total_steps=200", "run.name=m"), "--runs-dir", str(tmp_path)]
    assert main([*args, "--seeds", "0,3"]) == 0
    out = capsys.readouterr().out
    assert "m-s0" in out and "m-s3" in out
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["m-s0", "m-s3"]
    folders = [str(tmp_path / "m-s0"), str(tmp_path / "m-s3")]
    provenance = [(tmp_path / f / "provenance.yaml").read_bytes() for f in ("m-s0", "m-s3")]
    assert main(["train", "--resume", *folders]) == 0  # finished: nothing to do
    assert capsys.readouterr().err.count("nothing to train") == 2
    assert [(tmp_path / f / "provenance.yaml").read_bytes() for f in ("m-s0", "m-s3")] == provenance
    assert main([*args, "--seeds", "0-1", "--set", "run.seed=2"]) == 2
    assert "--seeds and --set run.seed" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["a-b", "3-1", "-1", "0,0", "1-2,2"])
def test_bad_seed_lists_are_usage_errors(text, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--seeds", text])
    assert exit_info.value.code == 2
    assert "--seeds" in capsys.readouterr().err


def test_seed_list_forms():
    from spikerl.experiments.argtypes import seed_list

    assert seed_list("0-3,8") == [0, 1, 2, 3, 8]
    assert seed_list("5") == [5]
    assert seed_list("2, 4") == [2, 4]


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["train", "--set", "algo.tua=1"], 2, "unknown config key 'algo.tua'"),
        (["train", "--set", "env.id=Hoper-v4"], 2, "Close matches: Hopper-v4"),
        (["train", "--config", "missing.yaml"], 2, "does not exist"),
        (["train", "--resume", "nowhere"], 1, "nowhere does not exist"),
        (["evaluate", "nowhere"], 1, "nowhere does not exist"),
        (["train", "--set", "run.device=cuda:7"], 2, "run.device"),
    ],
)
def test_bad_input_gives_one_clear_line(tmp_path, capsys, argv, code, needle):
    if argv[0] == "train" and "--resume" not in argv:
        argv = [*argv, "--runs-dir", str(tmp_path)]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing half-created


def test_corrupt_checkpoint(tmp_path, capsys):
    assert (
        main(["train", *sets("run.total_steps=200", "run.name=c"), "--runs-dir", str(tmp_path)])
        == 0
    )
    (tmp_path / "c" / "checkpoint.pt").write_bytes(b"\x00garbage")
    assert main(["evaluate", str(tmp_path / "c")]) == 1
    assert "corrupt" in capsys.readouterr().err


def test_help_config_lists_keys(capsys):
    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "algo.proxy.updates" in out and "K: proxy regression steps" in out


QUICK_TINY = [
    "actor.hidden=[32, 32]",
    "algo.critic_hidden=[32, 32]",
    "algo.proxy.hidden=[32, 32]",
    "algo.batch_size=32",
    "run.threads=1",
    "run.progress=false",
]


def test_quickstart_prints_comparison_table(tmp_path, capsys):
    """The table's note states what ran, also where ``--set`` changed it (here the seed)."""
    argv = ["quickstart", "--steps", "2000", "--runs-dir", str(tmp_path)]
    assert main([*argv, *(a for o in [*QUICK_TINY, "run.seed=3"] for a in ("--set", o))]) == 0
    out = capsys.readouterr().out
    assert "ANN TD3" in out and "PT-LIF" in out and "SOP" in out and "MAC" in out
    assert "Pendulum-v1, 2000 env steps (1000 warm-up), seed 3;" in out
    assert {p.name for p in tmp_path.iterdir()} == {
        "td3-ann-Pendulum-v1-s3",
        "td3-pt-lif-Pendulum-v1-s3",
    }
    assert main([*argv, "--steps", "10"]) == 2


def test_quickstart_never_deletes_a_folder_it_did_not_create(tmp_path, capsys):
    foreign = tmp_path / "td3-ann-Pendulum-v1-s0"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my own results")
    argv = ["quickstart", "--steps", "2000", "--runs-dir", str(tmp_path)]
    assert main([*argv, *(a for o in QUICK_TINY for a in ("--set", o))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not delete it" in err[0]
    assert (foreign / "notes.txt").read_text() == "my own results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["td3-ann-Pendulum-v1-s0"]


def test_ctrl_c_stops_quickstart_without_a_table_and_the_same_command_continues(tmp_path):
    import signal
    import time

    from tests.experiments.test_run import _cli

    argv = ["quickstart", "--steps", "2000", "--runs-dir", str(tmp_path)]
    argv += [a for o in QUICK_TINY for a in ("--set", o)]
    proc = _cli(argv)
    metrics = tmp_path / "td3-ann-Pendulum-v1-s0" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") > 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    assert "method" not in out and "PT-LIF" not in out
    assert "quickstart interrupted while training ANN TD3" in err
    assert not (tmp_path / "td3-pt-lif-Pendulum-v1-s0").exists()  # nothing else was trained
    again = _cli(argv)
    assert again.wait(timeout=300) == 0, again.stderr.read().decode()
    table = again.stdout.read().decode()
    assert "ANN TD3" in table and "PT-LIF" in table


def test_a_bad_argument_is_one_line_and_a_huge_seed_range_is_refused_unexpanded(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--seeds", "0-100000000"])  # counted, never expanded (or it hangs)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "names 100000001 seeds; one process trains at most 128" in err
    with pytest.raises(SystemExit):
        main(["train", "--seeds", "3-1"])
    assert "the range 3-1 runs backwards; write 1-3 (see spikerl train --help)" in (
        capsys.readouterr().err
    )
