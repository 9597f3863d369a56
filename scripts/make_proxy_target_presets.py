"""Generate the proxy-target paper presets under ``configs/proxy_target/``.

One YAML file per cell of Table 1 of arXiv 2505.24161 (Xu et al., "Proxy Target", NeurIPS 2025),
plus the PN-ANN ablation (ANN actor + proxy target) and PLIF as an extra row:

    configs/proxy_target/<env>_<actor>_<method>.yaml

with ``env`` in idp, ant, halfcheetah, hopper, walker2d (the Gymnasium MuJoCo v4 tasks),
``actor`` in ann, lif, clif, dn, plif and ``method`` in proxy (PT), polyak (vanilla target actor;
plain TD3 for ann). Values follow the paper and its reference code; every file is
validated with :func:`spikerl.experiments.config.config_from_dict` before it is written. The
files set ``run.seed: 0``; the paper's 5 seeds are 0-4 via ``--set run.seed=N``.

Usage::

    python scripts/make_proxy_target_presets.py           # (re)write the files
    python scripts/make_proxy_target_presets.py --check   # exit 1 if any file is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from spikerl.experiments.config import config_from_dict

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "configs" / "proxy_target"

# file-name token -> Gymnasium id
ENVS: dict[str, str] = {
    "idp": "InvertedDoublePendulum-v4",
    "ant": "Ant-v4",
    "halfcheetah": "HalfCheetah-v4",
    "hopper": "Hopper-v4",
    "walker2d": "Walker2d-v4",
}
ACTORS = ("ann", "lif", "clif", "dn", "plif")
METHODS = ("proxy", "polyak")

# Paper Table 1 (and Tab. 11 for PN-ANN): max average return, mean +- std over 5 seeds, in the
# order of ENVS. Written into each file's header as the reference to compare against.
PAPER_RESULTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ann", "polyak"): (
        "7503 +- 3713",
        "4770 +- 1014",
        "10857 +- 475",
        "3410 +- 164",
        "4340 +- 383",
    ),
    ("lif", "polyak"): ("9347 +- 1", "4294 +- 1170", "9404 +- 625", "3520 +- 94", "1862 +- 1450"),
    ("clif", "polyak"): (
        "9351 +- 1",
        "4590 +- 1006",
        "9594 +- 689",
        "2772 +- 1263",
        "3307 +- 1514",
    ),
    ("dn", "polyak"): ("9350 +- 1", "4800 +- 994", "9147 +- 231", "3446 +- 131", "3964 +- 1353"),
    ("lif", "proxy"): ("9348 +- 1", "5383 +- 250", "10103 +- 607", "3385 +- 157", "4314 +- 423"),
    ("clif", "proxy"): ("9351 +- 1", "5014 +- 1074", "9663 +- 426", "3526 +- 112", "4564 +- 555"),
    ("dn", "proxy"): ("9350 +- 1", "5400 +- 277", "9347 +- 666", "3507 +- 144", "4277 +- 650"),
    ("ann", "proxy"): ("5653", "4234", "10708", "3435", "4106"),
}

# TD3 values shared by every cell (Section 5): pinned in the files, not taken from defaults.
TD3_ALGO: dict[str, Any] = {
    "lr_actor": 3e-4,
    "lr_critic": 3e-4,
    "batch_size": 256,
    "gamma": 0.99,
    "tau": 0.005,
    "policy_delay": 2,
    "expl_noise": 0.1,
    "target_noise": 0.2,
    "noise_clip": 0.5,
    "learning_starts": 25_000,
    "buffer_size": 1_000_000,
    "critic_hidden": [256, 256],
}
RUN: dict[str, Any] = {
    "seed": 0,
    "total_steps": 1_025_000,
    "eval_every": 5_000,
    "eval_episodes": 10,
}


def proxy_settings(actor: str, env: str) -> dict[str, Any]:
    """Proxy hidden sizes, lr and K per neuron type (ANN and PLIF use the LIF row)."""
    if actor == "clif":
        hidden = [512, 512] if env == "idp" else [800, 600]
        return {"hidden": hidden, "lr": 3e-3, "updates": 3}
    if actor == "dn":
        return {"hidden": [512, 512], "lr": 3e-3, "updates": 3}
    return {"hidden": [512, 512], "lr": 1e-3, "updates": 3}


def actor_section(actor: str) -> dict[str, Any]:
    """The actor section: ANN 256-256, or the population-coded SAN of Section 2."""
    if actor == "ann":
        return {"kind": "ann", "hidden": [256, 256]}
    section: dict[str, Any] = {
        "kind": actor,
        "hidden": [256, 256],
        "timesteps": 5,
        "pop_in": 10,
        "pop_out": 10,
        "surrogate": "rectangular",
        "slope": 1.0,
    }
    if actor == "plif":
        section["plif_lr"] = 1e-4
    return section


def preset(env: str, actor: str, method: str) -> dict[str, Any]:
    """The nested config mapping of one cell."""
    algo: dict[str, Any] = {"name": "td3", "target": method, **TD3_ALGO}
    if method == "proxy":
        algo["proxy"] = proxy_settings(actor, env)
    return {
        "env": {"id": ENVS[env], "normalize_obs": False},
        "actor": actor_section(actor),
        "algo": algo,
        "run": dict(RUN),
    }


def describe(env: str, actor: str, method: str) -> str:
    """A one-line label of the cell as the paper names it."""
    if actor == "ann":
        return "ANN TD3 (plain TD3)" if method == "polyak" else "PN-ANN (ANN actor, proxy target)"
    name = actor.upper()
    return f"PT-{name} (proxy target)" if method == "proxy" else f"vanilla {name} (Polyak target)"


def header(env: str, actor: str, method: str) -> str:
    """Comment lines at the top of a generated file."""
    lines = [
        f"# {describe(env, actor, method)} on {ENVS[env]}.",
        "# Generated by scripts/make_proxy_target_presets.py (settings of arXiv 2505.24161);",
        "# edit the script, not this file. Seeds 0-4: spikerl train --config <this> "
        "--set run.seed=N",
    ]
    ref = PAPER_RESULTS.get((actor, method))
    if ref is not None:
        table = "Tab. 11" if (actor, method) == ("ann", "proxy") else "Table 1"
        lines.append(f"# Paper {table} (max average return, 5 seeds): {ref[list(ENVS).index(env)]}")
    else:
        lines.append("# Not in the paper (extra row); no reference result.")
    return "\n".join(lines) + "\n"


class _Dumper(yaml.SafeDumper):
    """Block-style mappings with flow-style lists (``hidden: [512, 512]``)."""


_Dumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def to_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def render(env: str, actor: str, method: str) -> str:
    """The full text of one preset file, after validating it against the config schema."""
    data = preset(env, actor, method)
    config_from_dict(data)  # raises ConfigError on any invalid value
    return header(env, actor, method) + to_yaml(data)


def cells() -> list[tuple[str, str, str]]:
    """Every (env token, actor, method) cell, in a stable order."""
    return [(e, a, m) for e in ENVS for a in ACTORS for m in METHODS]


def file_name(env: str, actor: str, method: str) -> str:
    return f"{env}_{actor}_{method}.yaml"


def expected_files() -> dict[str, str]:
    """File name -> content for every cell."""
    return {file_name(*cell): render(*cell) for cell in cells()}


def write_all(out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = expected_files()
    for name, text in files.items():
        (out_dir / name).write_text(text)
    return len(files)


def stale_files(out_dir: Path) -> list[str]:
    """Names of files that are missing or differ from what the script would write."""
    return [
        name
        for name, text in expected_files().items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check that the files are up to date (exit 1 if not)",
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        for name in stale:
            print(f"stale or missing: {args.out / name}", file=sys.stderr)
        return 1 if stale else 0
    count = write_all(args.out)
    print(f"wrote {count} presets to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
