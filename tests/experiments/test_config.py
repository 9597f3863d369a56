import pytest

from spikerl.experiments.config import (
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    describe_config,
    load_config,
    parse_overrides,
)


def test_defaults_round_trip_through_dict():
    cfg = Config()
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_yaml_preset_and_overrides(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("algo:\n  tau: 0.01\n  proxy:\n    updates: 1\nactor:\n  kind: lif\n")
    cfg = load_config(preset, ["algo.tau=0.02", "actor.hidden=[64, 32]", "run.seed=3"])
    assert cfg.algo.tau == 0.02
    assert cfg.algo.proxy.updates == 1
    assert cfg.actor.kind == "lif"
    assert cfg.actor.hidden == (64, 32)
    assert cfg.run.seed == 3


def test_int_accepted_for_float_and_integral_float_for_int():
    cfg = load_config(None, ["algo.tau=1", "run.total_steps=1e5"])
    assert cfg.algo.tau == 1.0 and isinstance(cfg.algo.tau, float)
    assert cfg.run.total_steps == 100_000 and isinstance(cfg.run.total_steps, int)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("algo.taux=0.1", "unknown config key 'algo.taux'"),
        ("algo.taux=0.1", "Did you mean tau"),
        ("actor.kind=gru", "choose one of ['ann', 'lif', 'clif', 'dn', 'plif']"),
        ("algo.tau=1.5", "algo.tau: 1.5 is out of range"),
        ("algo.batch_size=abc", "algo.batch_size: expected an integer"),
        ("run.total_steps=2.5", "run.total_steps: expected an integer"),
        ("run.progress=maybe", "run.progress: expected true or false"),
        ("actor.hidden=[]", "actor.hidden: expected a non-empty"),
        ("actor.hidden=[64, 0]", "actor.hidden[1]: 0 is out of range"),
        ("algo.tau=.nan", "algo.tau"),
        ("nosection.x=1", "unknown config key 'nosection'"),
        ("algo=3", "algo: expected a mapping"),
    ],
)
def test_bad_values_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(None, [override])
    assert needle in str(info.value)


def test_a_section_that_is_not_a_mapping_is_an_error_also_where_keys_are_set_in_it(tmp_path):
    """``actor: 7`` in a file is refused alone, and also when --set or a child preset sets a key
    in that section (the merge would otherwise drop the 7 without a word)."""
    bad = tmp_path / "a7.yaml"
    bad.write_text("actor: 7\nalgo: {proxy: 3}\n")
    for overrides, message in (
        ([], "actor: expected a mapping, got 7"),
        (["actor.kind=lif"], "actor: expected a mapping, got 7"),
        (["algo.proxy.hidden=[8, 8]"], "algo.proxy: expected a mapping, got 3"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(bad, overrides)
    child = tmp_path / "child.yaml"
    child.write_text("base: a7.yaml\nactor: {kind: lif}\n")
    with pytest.raises(ConfigError, match="actor: expected a mapping, got 7"):
        load_config(child)
    (tmp_path / "empty.yaml").write_text("actor:\n")  # an empty section takes keys
    assert load_config(tmp_path / "empty.yaml", ["actor.kind=lif"]).actor.kind == "lif"


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["algo.tau"])


def test_sac_with_spiking_actor_is_rejected():
    with pytest.raises(ConfigError, match="actor.kind"):
        load_config(None, ["algo.name=sac", "actor.kind=lif"])


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_a_preset_inherits_its_base_and_overrides_it(tmp_path):
    (tmp_path / "parent.yaml").write_text("algo:\n  tau: 0.01\n  gamma: 0.9\nrun:\n  seed: 4\n")
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text("base: ../parent.yaml\nalgo:\n  gamma: 0.5\n")
    cfg = load_config(child, ["run.seed=7"])
    assert (cfg.algo.tau, cfg.algo.gamma, cfg.run.seed) == (0.01, 0.5, 7)
    (tmp_path / "parent.yaml").write_text("base: sub/child.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(child)
    child.write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(child)


def test_every_shipped_quadrotor_preset_loads():
    from pathlib import Path

    presets = sorted((Path(__file__).parents[2] / "configs" / "quadrotor").glob("*.yaml"))
    assert len(presets) >= 6
    names = {p.stem: load_config(p) for p in presets}
    assert names["bc_sequence"].algo.sequence.q_term == "none"
    assert names["td3bc_offline"].algo.sequence.online is False
    assert names["td3_sequence"].algo.sequence.guide == ""
    assert names["guided_td3bc"].algo.batch_size == 350
    guided_bc = names["guided_bc"]  # the guided preset with the Q term off, nothing else
    assert guided_bc.algo.sequence.q_term == "none" and guided_bc.algo.sequence.online
    assert guided_bc.algo.sequence.guide == "builtin-v2" and guided_bc.algo.batch_size == 350
    recipe = names["guide_td3_recipe"]  # Sec. 7: 1M steps, rho = 1 at half of them
    assert (recipe.run.total_steps, recipe.env.curriculum_end) == (1_000_000, 0.5)
    assert recipe.actor == names["guide_td3"].actor and recipe.algo == names["guide_td3"].algo
    # Sec. 12 (12): every sequence preset runs the paper's 300 epochs
    for name, cfg in names.items():
        if cfg.algo.name == "sequence":
            assert cfg.run.total_steps // cfg.run.eval_every == 300, name


def test_run_name_and_describe():
    cfg = load_config(None, ["actor.kind=lif", "algo.target=proxy", "env.id=Hopper-v4"])
    assert cfg.run_name == "td3-pt-lif-Hopper-v4-s0"
    keys = [row[0] for row in describe_config()]
    assert "algo.proxy.lr" in keys and "run.seed" in keys


@pytest.mark.parametrize("name", [".", "..", "a/b", "/tmp", "a\\b"])
def test_run_name_must_be_a_plain_folder_name(name):
    with pytest.raises(ConfigError, match="run.name"):
        load_config(None, [f"run.name={name}"])


@pytest.mark.parametrize(
    "override", ["run.total_steps=.inf", "run.seed=1e400", "actor.hidden=[.inf]"]
)
def test_infinite_integers_are_rejected(override):
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(None, [override])


def test_a_new_config_that_would_never_update_is_refused_but_a_saved_one_still_reads():
    from spikerl.experiments.config import config_from_dict, config_to_dict

    with pytest.raises(
        ConfigError, match=r"algo.learning_starts \(25000\) is not below run.total_steps \(1000\)"
    ):
        load_config(None, ["run.total_steps=1000", "run.eval_every=500"])
    load_config(None, ["run.total_steps=1000", "run.eval_every=500", "algo.learning_starts=999"])
    sequence = ["algo.name=sequence", "actor.kind=lif", "actor.network=direct"]
    load_config(None, [*sequence, "run.total_steps=1000", "run.eval_every=500"])  # no warm-up
    saved = config_to_dict(load_config(None, ["algo.learning_starts=999"]))
    saved["run"].update(total_steps=900, eval_every=300)  # an old run folder's config
    assert config_from_dict(saved).algo.learning_starts == 999


def test_sections_made_in_python_are_checked_like_loaded_ones():
    import dataclasses

    from spikerl.experiments.config import AlgoConfig, Config

    with pytest.raises(ConfigError, match=r"AlgoConfig\.target: 'proxxy' is not allowed"):
        AlgoConfig(target="proxxy")
    with pytest.raises(ConfigError, match=r"AlgoConfig\.gamma: 7\.0 is out of range"):
        AlgoConfig(gamma=7.0)
    with pytest.raises(ConfigError, match=r"ActorConfig\.kind: 'lfi' is not allowed"):
        dataclasses.replace(load_config().actor, kind="lfi")
    with pytest.raises(ConfigError, match=r"Config\.algo: expected AlgoConfig"):
        Config(algo={"target": "proxy"})
    assert AlgoConfig(gamma=1).gamma == 1.0 and isinstance(AlgoConfig(gamma=1).gamma, float)
    with pytest.raises(ConfigError, match=r"^algo\.target: 'proxxy'"):  # loaded: the dotted key
        load_config(None, ["algo.target=proxxy"])
    with pytest.raises(ConfigError, match="a list of 'key=value' strings, not one string"):
        load_config(None, "algo.target=proxy")


def test_the_sequence_presets_of_one_comparison_get_their_own_run_folders():
    names = {
        preset: load_config(f"configs/quadrotor/{preset}.yaml").run_name
        for preset in ("guided_td3bc", "guided_bc", "bc_sequence", "td3bc_offline", "td3_sequence")
    }
    assert names == {
        "guided_td3bc": "sequence-td3bc-jsrl-lif-spikerl-Quadrotor-v0-s0",
        "guided_bc": "sequence-bc-jsrl-lif-spikerl-Quadrotor-v0-s0",
        "bc_sequence": "sequence-offline-bc-lif-spikerl-Quadrotor-v0-s0",
        "td3bc_offline": "sequence-offline-td3bc-lif-spikerl-Quadrotor-v0-s0",
        "td3_sequence": "sequence-td3-lif-spikerl-Quadrotor-v0-s0",
    }
