from __future__ import annotations

import re
import shutil
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
import yaml

import spikerl
from spikerl.experiments.provenance import collect_provenance, env_version, format_provenance

KEYS = {
    "spikerl",
    "git_revision",
    "python",
    "torch",
    "numpy",
    "gymnasium",
    "mujoco",
    "platform",
    "cpu",
    "cpu_count",
    "torch_threads",
    "allocator",
    "device",
    "cuda_device",
}
SCALARS = (str, int, float, bool, type(None))


@pytest.fixture(scope="module")
def prov() -> dict:
    return collect_provenance()


def _assert_yaml_safe(value: object) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            _assert_yaml_safe(item)
    else:
        assert type(value) in SCALARS, (value, type(value))


def test_keys_present(prov: dict) -> None:
    assert set(prov) == KEYS


def test_values_yaml_safe_round_trip(prov: dict) -> None:
    _assert_yaml_safe(prov)
    assert yaml.safe_load(yaml.safe_dump(prov)) == prov


def test_library_versions_match_imports(prov: dict) -> None:
    assert prov["torch"] == torch.__version__
    assert prov["numpy"] == np.__version__
    assert prov["gymnasium"] == gymnasium.__version__
    assert isinstance(prov["spikerl"], str) and prov["spikerl"]


def test_device_and_threads() -> None:
    p = collect_provenance(device=torch.device("cpu"), threads=3)
    assert p["torch_threads"] == 3
    assert p["device"] == "cpu"
    assert p["cuda_device"] is None
    assert collect_provenance()["torch_threads"] == torch.get_num_threads()


def test_git_revision_format(prov: dict) -> None:
    rev = prov["git_revision"]
    assert rev is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", rev)
    repo_root = Path(spikerl.__file__).resolve().parent.parent
    if shutil.which("git") and (repo_root / ".git").exists():
        assert rev is not None


def test_env_version_classic_control() -> None:
    desc = env_version("Pendulum-v1")
    assert "Pendulum-v1" in desc
    assert gymnasium.__version__ in desc
    assert "mujoco" not in desc


def test_env_version_mujoco() -> None:
    desc = env_version("HalfCheetah-v4")
    assert "HalfCheetah-v4" in desc
    assert "mujoco" in desc


def test_env_version_unknown() -> None:
    assert env_version("NoSuchEnv-v0") == "NoSuchEnv-v0 (not registered)"


def test_format_provenance_contains_keys(prov: dict) -> None:
    text = format_provenance(prov)
    for key in KEYS:
        assert f"{key}: " in text or f"{key}:\n" in text
    assert len(text.splitlines()) == len(KEYS)


def test_format_provenance_nested() -> None:
    text = format_provenance({"a": 1, "b": {"c": "x"}})
    assert text.splitlines() == ["a: 1", "b:", "  c: x"]


def test_git_revision_none_without_git(monkeypatch: pytest.MonkeyPatch) -> None:
    from spikerl.experiments import provenance

    def missing_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", missing_git)
    assert provenance.git_revision() is None
    assert collect_provenance()["git_revision"] is None
