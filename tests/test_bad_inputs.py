"""A corpus of bad inputs and accidents, driven through ``spikerl.cli.main`` in-process.

Every case must end with a non-zero exit status and exactly one stderr line ``error: ...`` that
names the key, file or thing at fault; no traceback, and no run folder left behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tomllib
import warnings
from importlib import metadata
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from spikerl import cli
from spikerl.cli import main
from spikerl.envs import check_env, make
from spikerl.errors import MissingDependencyError, SpikerlError, UsageError
from spikerl.experiments.config import ConfigError, load_config
from spikerl.experiments.run import train
from spikerl.snn.energy import PRESETS, EnergyEstimate, MeanStd, compare
from spikerl.snn.energy_report import format_ratio
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def sets(*overrides: str) -> list[str]:
    return [a for o in (*TINY, *overrides) for a in ("--set", o)]


def one_error_line(capsys, argv: list[str], code: int, *needles: str) -> str:
    """Run ``argv``; check the exit status, the single ``error:`` line and its needles."""
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def train_fails(capsys, tmp_path: Path, args: list[str], *needles: str) -> str:
    """``train`` with ``args`` fails as a usage error and creates nothing under its runs dir."""
    runs = tmp_path / "runs"
    line = one_error_line(capsys, ["train", *args, "--runs-dir", str(runs)], 2, *needles)
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())
    return line


@pytest.fixture(scope="module")
def ann_run(tmp_path_factory) -> Path:
    """A finished tiny ANN run whose protocol is 2 evaluation episodes."""
    root = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, [*TINY, "run.total_steps=200", "run.eval_episodes=2", "run.name=a"])
    return train(cfg, root).run_dir


@pytest.fixture(scope="module")
def lif_run(tmp_path_factory) -> Path:
    """A finished tiny LIF run (spiking actor), 2 evaluation episodes."""
    root = tmp_path_factory.mktemp("runs")
    cfg = load_config(
        None,
        [*TINY, "actor.kind=lif", "run.total_steps=200", "run.eval_episodes=2", "run.name=s"],
    )
    return train(cfg, root).run_dir


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / run_dir.name
    shutil.copytree(run_dir, target)
    return target


# --------------------------------------------------------------------------------------------
# The error boundary


class _Odd(SpikerlError):
    exit_code = 3


def test_boundary_prints_any_spikerl_error_on_one_line(monkeypatch, capsys):
    def fail(args):
        raise _Odd("first line\nsecond line")

    monkeypatch.setitem(cli.COMMANDS, "train", fail)
    assert one_error_line(capsys, ["train"], 3) == "error: first line second line"


def test_boundary_keeps_interrupts_and_bugs(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    def bug(args):
        raise RuntimeError("a bug keeps its traceback")

    monkeypatch.setitem(cli.COMMANDS, "train", interrupted)
    assert main(["train"]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"
    monkeypatch.setitem(cli.COMMANDS, "train", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["train"])


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"spikerl {metadata.version('spikerl')}\n"


# --------------------------------------------------------------------------------------------
# Config values and files


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("run.seed=99999999999", ["run.seed", "[0, 4294967295]"]),
        ("run.seed=-1", ["run.seed", "[0, 4294967295]"]),
        (f"run.name={'x' * 300}", ["run.name", "300 characters", "at most 100"]),
        ("actor.slope=inf", ["actor.slope", "not a finite number", ">= 1e-06"]),
        ("actor.slope=-inf", ["actor.slope", "not a finite number"]),
        ("actor.slope=.nan", ["actor.slope", "not a finite number"]),
        ("algo.tau=.inf", ["algo.tau", "not a finite number", "[0.0, 1.0]"]),
        ("algo.expl_noise=nan", ["algo.expl_noise", "not a finite number"]),
        ("algo.buffer_size=16", ["algo.buffer_size (16)", "algo.batch_size (32)"]),
        ("run.eval_every=401", ["run.eval_every (401)", "run.total_steps (400)"]),
        ("algo.tau=[1", ["algo.tau", "cannot parse"]),
    ],
)
def test_bad_config_values(capsys, tmp_path, override, needles):
    train_fails(capsys, tmp_path, sets(override), *needles)


def test_long_derived_name_is_fine_and_100_characters_are_allowed(tiny_config):
    assert len(tiny_config().run_name) < 100
    assert tiny_config(f"run.name={'x' * 100}").run_name == "x" * 100
    assert tiny_config("run.seed=4294967295").run.seed == 2**32 - 1


def test_infinite_float_in_a_config_file(capsys, tmp_path):
    path = tmp_path / "inf.yaml"
    path.write_text("actor:\n  slope: .inf\n")
    train_fails(capsys, tmp_path, ["--config", str(path)], "actor.slope", "finite")


def test_config_is_a_directory(capsys, tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    train_fails(capsys, tmp_path, ["--config", str(folder)], str(folder), "is a directory")


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\xff\xfe\xfd" * 8, b"env:\n  id: Pendulum-v1\x00\x01\n"],
    ids=["not-utf8", "control-characters"],
)
def test_config_is_a_binary_file(capsys, tmp_path, content):
    path = tmp_path / "image.yaml"
    path.write_bytes(content)
    train_fails(capsys, tmp_path, ["--config", str(path)], str(path), "is not a text YAML file")


def test_config_with_a_yaml_syntax_error_gives_one_line(capsys, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("algo:\n  tau: [0.1\n  gamma: 0.9\n")
    train_fails(capsys, tmp_path, ["--config", str(path)], str(path), "not valid YAML", "line")


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [("run:\n  seed: 1\n  seed: 2\n", "'seed'", 3), ("run: {}\nenv: {}\nrun: {}\n", "'run'", 3)],
)
def test_a_key_given_twice_in_a_config_or_sweep_is_refused(capsys, tmp_path, text, key, line):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    message = f"the key {key} is given twice at line {line}"
    train_fails(capsys, tmp_path, ["--config", str(path)], str(path), message)
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_yaml_merge_keys_still_load(tmp_path):
    from spikerl.experiments.config import read_yaml_mapping

    path = tmp_path / "merge.yaml"
    path.write_text("shared: &shared {seed: 1, total_steps: 500}\nrun: {<<: *shared, seed: 2}\n")
    assert read_yaml_mapping(path)["run"] == {"seed": 2, "total_steps": 500}


def test_help_config_fits_100_columns(capsys):
    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    too_long = [line for line in out.splitlines() if len(line) > 100]
    assert not too_long, too_long
    for key in ("env.id", "actor.surrogate", "algo.proxy.updates", "algo.sac.alpha", "run.seed"):
        assert re.search(rf"^{re.escape(key)}  ", out, re.MULTILINE), key
    assert "[algo.proxy]" in out and "    K: proxy regression steps" in out


# --------------------------------------------------------------------------------------------
# Environments


def _box2d_missing() -> bool:
    try:
        import Box2D  # noqa: F401
    except ImportError:
        return True
    return False


@pytest.mark.skipif(not _box2d_missing(), reason="Box2D is installed here")
def test_env_without_its_optional_dependency(capsys, tmp_path):
    line = train_fails(
        capsys, tmp_path, sets("env.id=LunarLanderContinuous-v3"), "'LunarLanderContinuous-v3'"
    )
    assert 'pip install swig "gymnasium[box2d]"' in line
    with pytest.raises(MissingDependencyError, match="LunarLanderContinuous-v3"):
        check_env("LunarLanderContinuous-v3")


def test_missing_env_dependency_is_typed_and_names_the_package(monkeypatch, capsys, tmp_path):
    def make_fails(env_id, **kwargs):
        raise gym.error.DependencyNotInstalled(
            "Box2D is not installed, you can install it by run `pip install swig` followed by "
            '`pip install "gymnasium[box2d]"`'
        )

    monkeypatch.setattr(make.gym, "make", make_fails)
    with pytest.raises(MissingDependencyError) as info:
        check_env("BipedalWalker-v3")
    assert isinstance(info.value, UsageError) and "Box2D" in str(info.value)
    line = train_fails(capsys, tmp_path, sets("env.id=BipedalWalker-v3"), "'BipedalWalker-v3'")
    assert "pip install" in line and "gymnasium[box2d]" in line


def test_v4_deprecation_warning_once_without_colour_codes(monkeypatch):
    monkeypatch.setattr(make, "_SHOWN_WARNINGS", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            make.make_env("Hopper-v4").close()
    texts = [str(w.message) for w in caught]
    assert sum("out of date" in t for t in texts) == 1, texts
    assert not any("\x1b" in t for t in texts), texts


# --------------------------------------------------------------------------------------------
# Checkpoints, evaluation, energy


def test_checkpoint_of_random_bytes(capsys, tmp_path, ann_run):
    run = copy_run(ann_run, tmp_path)
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(os.urandom(4096))
    for target in (run, ckpt):
        line = one_error_line(
            capsys, ["evaluate", str(target)], 1, f"{ckpt} is not a spikerl checkpoint"
        )
        assert "(corrupt or truncated)" in line and "weights_only" not in line


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("policy.npz", b"PK\x03\x04", "is an exported policy (spikerl export;"),
        ("policy.nir", b"\x89HDF", "is a NIR graph"),
        ("weights.pt", None, "is a torch file but not a spikerl checkpoint (no format)"),
    ],
)
def test_a_file_of_another_kind_is_named_for_what_it_is(capsys, tmp_path, name, content, needle):
    import torch

    path = tmp_path / name
    if content is None:
        torch.save({"fc.weight": torch.zeros(2, 2)}, path)  # a bare state_dict
    else:
        path.write_bytes(content)
    one_error_line(capsys, ["evaluate", str(path)], 1, f"{path} {needle}")


def test_truncated_checkpoint(capsys, tmp_path, ann_run):
    run = copy_run(ann_run, tmp_path)
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    line = one_error_line(capsys, ["energy", str(run)], 1, "not a spikerl checkpoint")
    assert "weights_only" not in line


@pytest.mark.parametrize(
    ("edit", "needle", "flies"),
    [
        (lambda c: c.pop("env"), "its 'env' entry is missing", False),
        (lambda c: c.__setitem__("learner", None), "its 'learner' entry is missing", False),
        (lambda c: c["learner"].__setitem__("actor", "x"), "'learner.actor' entry is a str", False),
        (
            lambda c: c["progress"].__setitem__("step", None),
            "'progress.step' entry is missing",
            True,
        ),
    ],
)
def test_a_checkpoint_with_an_entry_missing_or_mistyped_is_one_line(
    capsys, tmp_path, ann_run, edit, needle, flies
):
    """A file that loads but was edited by hand (or written by something else) is named, for
    evaluating and for resuming, instead of a KeyError or TypeError later (evaluating reads no
    training progress, so a damaged one does not stop it)."""
    run = copy_run(ann_run, tmp_path)
    for name in ("checkpoint.pt", "best.pt"):
        ckpt = torch.load(run / name, weights_only=True)
        edit(ckpt)
        torch.save(ckpt, run / name)
    evaluate = ["evaluate", str(run / "best.pt"), "--episodes", "1"]
    if flies:
        assert main(evaluate) == 0
    else:
        one_error_line(capsys, evaluate, 1, needle)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("total_steps: 200", "total_steps: 300"))
    one_error_line(capsys, ["train", "--resume", str(run)], 1, needle)


def test_a_converted_file_with_a_mangled_entry_is_one_line(capsys, tmp_path, ann_run):
    policy = tmp_path / "if.pt"
    assert main(["convert", str(ann_run), "-o", str(policy), "--calibration-steps", "50",
                 "--episodes", "1", "--timesteps", "4"]) == 0  # fmt: skip
    saved = torch.load(policy, weights_only=True)
    for key, value in (("config", "x"), ("max_action", "x"), ("normalizer", "x")):
        torch.save({**saved, key: value}, tmp_path / "bad.pt")
        one_error_line(capsys, ["evaluate", str(tmp_path / "bad.pt")], 2, "converted file lacks")


def test_video_without_moviepy_fails_before_any_episode(monkeypatch, capsys, tmp_path, ann_run):
    from spikerl.experiments import evaluation

    def no_episodes(*args, **kwargs):
        raise AssertionError("an episode ran before the missing dependency was reported")

    monkeypatch.setitem(sys.modules, "moviepy", None)  # import moviepy raises ImportError
    monkeypatch.setattr(evaluation, "_rollouts", no_episodes)
    videos = tmp_path / "videos"
    argv = ["evaluate", str(ann_run), "--video", str(videos)]
    line = one_error_line(capsys, argv, 2, "recording videos needs moviepy: pip install moviepy")
    assert line == "error: recording videos needs moviepy: pip install moviepy"
    assert not videos.exists()


def test_rendering_without_pygame_names_the_package(monkeypatch, capsys, tmp_path, ann_run):
    from spikerl.experiments import evaluation

    def render_fails(*args, **kwargs):
        raise gym.error.DependencyNotInstalled(
            'pygame is not installed, run `pip install "gymnasium[classic-control]"`'
        )

    monkeypatch.setattr(evaluation, "_require_moviepy", lambda: None)
    monkeypatch.setattr(evaluation, "_record_video", lambda env, folder: env)
    monkeypatch.setattr(evaluation, "_rollouts", render_fails)
    argv = ["evaluate", str(ann_run), "--video", str(tmp_path / "videos")]
    line = one_error_line(capsys, argv, 2, "'Pendulum-v1' needs pygame")
    assert 'pip install "gymnasium[classic-control]"' in line


def test_evaluate_prints_each_episode_and_the_protocol_count(capsys, ann_run):
    capsys.readouterr()
    assert main(["evaluate", str(ann_run)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^episode\s+return\s+length$", out, re.MULTILINE)
    assert re.search(r"^1\s+-?[\d,.]+\s+200$", out, re.MULTILINE)
    assert re.search(r"^2\s+-?[\d,.]+\s+200$", out, re.MULTILINE)
    assert "2 episodes" in out and "return mean" in out
    assert main(["evaluate", str(ann_run), "--episodes", "1"]) == 0
    assert "1 episode," in capsys.readouterr().out


def test_energy_defaults_to_the_protocol_episode_count(capsys, ann_run):
    capsys.readouterr()
    assert main(["energy", str(ann_run), "--preset", "45nm"]) == 0
    assert "(2 episodes, seed 0)" in capsys.readouterr().out


def _silence(run: Path) -> None:
    """Zero every weight and bias of the actor and move the encoder's centres far away."""
    path = run / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    for name, tensor in ckpt["learner"]["actor"].items():
        if name == "encoder.mu":
            tensor.fill_(1e3)  # observations are squashed into [-1, 1]: no encoder spikes
        elif name != "encoder.sigma":
            tensor.zero_()
    torch.save(ckpt, path)


def _poison(run: Path) -> None:
    """Put a NaN into the first weight of the actor in both of the run's policy files."""
    for name in ("checkpoint.pt", "best.pt"):
        ckpt = torch.load(run / name, weights_only=True)
        next(t for k, t in ckpt["learner"]["actor"].items() if "weight" in k).view(-1)[0] = (
            torch.nan
        )
        torch.save(ckpt, run / name)


def test_an_actor_with_nan_weights_is_refused_by_every_command(capsys, tmp_path, ann_run, lif_run):
    ann, lif = copy_run(ann_run, tmp_path / "a"), copy_run(lif_run, tmp_path / "l")
    for run in (ann, lif):
        _poison(run)
    out = tmp_path / "out"
    for argv in (
        ["evaluate", str(ann), "--episodes", "1"],
        ["energy", str(lif), "--episodes", "1"],
        ["export", str(lif), "-o", str(out / "l.npz")],
        ["convert", str(ann), "-o", str(out / "a.pt"), "--calibration-steps", "50"],
    ):
        one_error_line(capsys, argv, 1, "holds NaN or Inf values")
    assert not out.exists()
    plain = tmp_path / "sd.pt"  # a plain state_dict with a NaN
    torch.save({"0.weight": torch.full((4, 3), torch.nan), "0.bias": torch.zeros(4)}, plain)
    one_error_line(capsys, ["convert", str(plain), "--env", "Pendulum-v1"], 2, "'0.weight' holds")


def test_a_converted_policy_given_to_convert_is_named_for_what_it_is(capsys, tmp_path, ann_run):
    policy = tmp_path / "if.pt"
    assert main(["convert", str(ann_run), "-o", str(policy), "--calibration-steps", "50",
                 "--episodes", "1", "--timesteps", "4"]) == 0  # fmt: skip
    one_error_line(capsys, ["convert", str(policy), "--env", "Pendulum-v1"], 2,
                   "is a converted spiking policy already")  # fmt: skip


def test_energy_of_a_run_in_which_no_neuron_fires(capsys, tmp_path, lif_run):
    run = copy_run(lif_run, tmp_path)
    _silence(run)
    capsys.readouterr()
    report = tmp_path / "energy.json"
    assert main(["energy", str(run), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    ratios = [line for line in out.splitlines() if line.startswith("ratio baseline/policy")]
    assert len(ratios) == len(PRESETS) and all(line.split()[-1] == "inf" for line in ratios)
    assert "(2 episodes, seed 0)" in out
    data = json.loads(report.read_text())
    assert data["totals"]["sop"]["mean"] == 0 and data["totals"]["mac"]["mean"] == 0
    assert [r["ratio"] for r in data["energy"] if "ratio" in r] == [None] * len(PRESETS)
    # a silent baseline against a silent run: no ratio at all
    assert main(["energy", str(run), "--baseline", str(run), "--preset", "45nm"]) == 0
    assert "n/a" in capsys.readouterr().out


def test_energy_ratio_with_zero_denominators():
    preset = PRESETS["45nm"]

    def est(joules: float) -> EnergyEstimate:
        return EnergyEstimate("p", preset, 0.0, 0.0, MeanStd(joules, 0.0))

    assert compare(est(0.0), est(2.0)) == float("inf")
    assert compare(est(0.0), est(0.0)) != compare(est(0.0), est(0.0))  # NaN
    assert compare(est(2.0), est(1.0)) == 0.5
    assert [format_ratio(r) for r in (float("inf"), float("nan"), 4.0)] == ["inf", "n/a", "4.00x"]


# --------------------------------------------------------------------------------------------
# Packaging and docs


def test_pyproject_extras_all_have_code_behind_them():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = data["project"]["optional-dependencies"]
    assert set(extras) == {"plot", "tb", "ray", "dev", "bench", "nir"}
    # the bench extra's one package is imported by spikerl.bench.sb3_loop, and only there
    assert "stable_baselines3" in (ROOT / "spikerl" / "bench" / "sb3_loop.py").read_text()
    # the nir extra's one package is imported by spikerl.export.nir
    assert extras["nir"] == ["nir>=1.0.6"]
    assert "import nir" in (ROOT / "spikerl" / "export" / "nir.py").read_text()


def _user_facing_files() -> list[Path]:
    """Every Markdown file of the repository, and every file under docs, configs, benchmarks."""
    skip = {".git", ".venv", "shared", "node_modules", "runs"}
    files = {
        p
        for p in ROOT.rglob("*.md")
        if not skip & set(p.relative_to(ROOT).parts) and ".egg-info" not in str(p)
    }
    for folder in ("docs", "configs", "benchmarks"):
        files |= {
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in {".md", ".yaml", ".yml", ".py", ".txt"}
        }
    return sorted(files)


def test_docs_point_only_inside_the_repository():
    files = _user_facing_files()
    assert ROOT / "README.md" in files and ROOT / "docs" / "energy.md" in files
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "shared/" in line
    ]
    assert not hits, "\n".join(hits)


def test_markdown_links_stay_inside_the_repository():
    outside = []
    for path in _user_facing_files():
        if path.suffix != ".md":
            continue
        for target in re.findall(r"\]\(([^)#\s]+)", path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                outside.append(f"{path.relative_to(ROOT)}: {target}")
    assert not outside, outside


def test_config_error_is_a_usage_error():
    assert issubclass(ConfigError, UsageError) and ConfigError.exit_code == 2


@pytest.mark.parametrize("device", ["mps", "xpu", "cuda:7"])
def test_unavailable_device_is_one_line_and_creates_nothing(tmp_path, capsys, device):
    from spikerl.cli import main as cli_main

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that many GPUs")
    code = cli_main(
        ["train", *sets("run.total_steps=200", f"run.device={device}"), "--runs-dir", str(tmp_path)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "run.device" in err[0] and device in err[0]
    assert list(tmp_path.iterdir()) == []
