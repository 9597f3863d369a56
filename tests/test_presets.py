"""The YAML presets under configs/: they load, validate, and match the proxy-target spec."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

from spikerl.experiments.config import config_to_dict, load_config
from spikerl.experiments.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
PT_DIR = CONFIGS / "proxy_target"
SWEEPS_DIR = CONFIGS / "sweeps"
ALL_YAML = sorted(p for p in CONFIGS.rglob("*.yaml") if SWEEPS_DIR not in p.parents)
SWEEP_YAML = sorted(SWEEPS_DIR.glob("*.yaml"))
PT_YAML = sorted(PT_DIR.glob("*.yaml"))

PAPER_ENVS = ("InvertedDoublePendulum-v4", "Ant-v4", "HalfCheetah-v4", "Hopper-v4", "Walker2d-v4")
ACTORS = ("ann", "lif", "clif", "dn", "plif")
METHODS = ("proxy", "polyak")


def _load_generator():
    path = ROOT / "scripts" / "make_proxy_target_presets.py"
    spec = importlib.util.spec_from_file_location("make_proxy_target_presets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pt(name: str):
    return load_config(PT_DIR / f"{name}.yaml")


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_preset_loads_and_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.run.total_steps > cfg.algo.learning_starts
    assert cfg.run.eval_every <= cfg.run.total_steps


def test_presets_exist() -> None:
    names = {p.relative_to(CONFIGS).as_posix() for p in ALL_YAML}
    assert {"td3_pendulum.yaml", "sac_pendulum.yaml", "td3_halfcheetah_v5.yaml"} <= names
    assert len(PT_YAML) == len(PAPER_ENVS) * len(ACTORS) * len(METHODS)


def test_proxy_target_cells_are_complete() -> None:
    cells = set()
    for path in PT_YAML:
        cfg = load_config(path)
        cells.add((cfg.env.id, cfg.actor.kind, cfg.algo.target))
        _env, actor, method = path.stem.split("_")
        assert (cfg.actor.kind, cfg.algo.target) == (actor, method), path.name
    assert cells == set(itertools.product(PAPER_ENVS, ACTORS, METHODS))


@pytest.mark.parametrize("path", PT_YAML, ids=lambda p: p.name)
def test_proxy_target_shared_values(path: Path) -> None:
    cfg = load_config(path)
    algo, run = cfg.algo, cfg.run
    assert algo.name == "td3"
    assert (run.total_steps, algo.learning_starts) == (1_025_000, 25_000)
    assert (run.eval_every, run.eval_episodes, run.seed) == (5_000, 10, 0)
    assert (algo.lr_actor, algo.lr_critic, algo.batch_size) == (3e-4, 3e-4, 256)
    assert (algo.gamma, algo.tau, algo.policy_delay) == (0.99, 0.005, 2)
    assert (algo.expl_noise, algo.target_noise, algo.noise_clip) == (0.1, 0.2, 0.5)
    assert cfg.actor.hidden == (256, 256) and algo.critic_hidden == (256, 256)
    if cfg.actor.kind != "ann":
        assert (cfg.actor.timesteps, cfg.actor.pop_in, cfg.actor.pop_out) == (5, 10, 10)
        assert (cfg.actor.surrogate, cfg.actor.slope) == ("rectangular", 1.0)
    assert not cfg.env.normalize_obs


@pytest.mark.parametrize(
    ("name", "hidden", "lr", "k"),
    [
        ("idp_clif_proxy", (512, 512), 3e-3, 3),
        ("hopper_clif_proxy", (800, 600), 3e-3, 3),
        ("ant_clif_proxy", (800, 600), 3e-3, 3),
        ("walker2d_dn_proxy", (512, 512), 3e-3, 3),
        ("halfcheetah_lif_proxy", (512, 512), 1e-3, 3),
        ("hopper_ann_proxy", (512, 512), 1e-3, 3),
        ("ant_plif_proxy", (512, 512), 1e-3, 3),
    ],
)
def test_proxy_settings_per_neuron(name: str, hidden: tuple, lr: float, k: int) -> None:
    proxy = _pt(name).algo.proxy
    assert (proxy.hidden, proxy.lr, proxy.updates) == (hidden, lr, k)


def test_plif_leak_lr_and_env_ids() -> None:
    assert _pt("hopper_plif_polyak").actor.plif_lr == 1e-4
    assert _pt("idp_lif_polyak").env.id == "InvertedDoublePendulum-v4"
    assert _pt("walker2d_ann_polyak").algo.target == "polyak"


def test_seed_override_gives_distinct_run_names() -> None:
    path = PT_DIR / "hopper_lif_proxy.yaml"
    names = {load_config(path, [f"run.seed={s}"]).run_name for s in range(5)}
    assert len(names) == 5
    assert load_config(path, ["run.seed=3"]).run.seed == 3


def test_generated_presets_are_up_to_date() -> None:
    generator = _load_generator()
    assert generator.stale_files(PT_DIR) == []


def test_small_presets() -> None:
    for name, algo in (("td3_pendulum", "td3"), ("sac_pendulum", "sac")):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert (cfg.env.id, cfg.algo.name, cfg.actor.kind) == ("Pendulum-v1", algo, "ann")
        assert cfg.run.total_steps <= 20_000
    cfg = load_config(CONFIGS / "td3_halfcheetah_v5.yaml")
    assert (cfg.env.id, cfg.algo.learning_starts, cfg.run.total_steps) == (
        "HalfCheetah-v5",
        25_000,
        1_000_000,
    )


@pytest.mark.parametrize("path", SWEEP_YAML, ids=lambda p: p.name)
def test_every_sweep_preset_expands_and_validates(path: Path) -> None:
    sweep = load_sweep(path)
    assert sweep.runs and sweep.baseline in {run.method for run in sweep.runs}
    assert str(sweep.output).startswith("runs/sweeps/")


def test_table1_sweep_is_exactly_the_per_cell_presets() -> None:
    """200 runs, each equal to configs/proxy_target/<env>_<actor>_<method>.yaml at its seed."""
    sweep = load_sweep(SWEEPS_DIR / "pt_table1.yaml")
    assert len(sweep.runs) == 8 * 5 * 5
    tokens = ("idp", "ant", "halfcheetah", "hopper", "walker2d")
    env_token = dict(zip(PAPER_ENVS, tokens, strict=True))
    for run in sweep.runs:
        neuron = {"ANN TD3": "ann", "PN-ANN": "ann"}.get(run.method, run.method.removeprefix("PT-"))
        target = "proxy" if run.method.startswith(("PT-", "PN-")) else "polyak"
        preset = PT_DIR / f"{env_token[run.env]}_{neuron.lower()}_{target}.yaml"
        expected = load_config(
            preset,
            [f"run.seed={run.seed}", f"run.name={run.name}", "run.threads=1", "run.progress=false"],
        )
        assert config_to_dict(run.config) == config_to_dict(expected), run.name


def test_sequence_baseline_sweep_runs_each_method_from_its_preset() -> None:
    """Each method of sequence_baselines.yaml is its configs/quadrotor/ preset at its seed
    (the sweep sets only the seed, the name, threads and progress)."""
    presets = {
        "TD3BC+JSRL": "guided_td3bc",
        "BC+JSRL (reference update)": "guided_bc",
        "BC": "bc_sequence",
        "TD3BC offline": "td3bc_offline",
        "TD3": "td3_sequence",
    }
    sweep = load_sweep(SWEEPS_DIR / "sequence_baselines.yaml")
    assert {run.method for run in sweep.runs} == set(presets)
    for run in sweep.runs:
        own = [f"run.seed={run.seed}", f"run.name={run.name}"]
        own += [f"run.threads={run.config.run.threads}", f"run.progress={run.config.run.progress}"]
        expected = load_config(CONFIGS / "quadrotor" / f"{presets[run.method]}.yaml", own)
        assert config_to_dict(run.config) == config_to_dict(expected), run.name
