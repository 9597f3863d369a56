"""The documentation does not rot: its links resolve and the commands it tells users to run
parse, with presets and overrides that load.

Every relative link or image in the Markdown files (README.md, docs/, configs/, the shipped
policies' READMEs, benchmarks/) must name a file of the repository.
Every command line in a ``bash`` block that runs ``spikerl`` must parse with the real CLI
parser; a ``train`` command's ``--config``/``--set`` must load (unknown keys and bad values
fail), a ``sweep`` command's file must expand into runs, and a ``python scripts/...`` or
``python benchmarks/...`` command must name an existing script. Placeholders a reader fills in
(``<name>``, ``runs/...`` folders a command before it creates) are only parsed; a shell
variable (``$seed``, ``$B``) reads as 0.

Every ``python`` block runs, as written, in a folder that holds what it names: a tiny trained
LIF run ``runs/my-run`` (Pendulum), ``policy.npz`` exported from a tiny HalfCheetah-v4 run, and
the repository's ``configs/``. The README's library example trains the full Pendulum preset
(minutes), so it runs with the ``slow`` tests.
"""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import pytest

from spikerl.cli import _parser
from spikerl.experiments.config import load_config
from spikerl.experiments.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted(ROOT.glob("configs/**/*.md")),
    *sorted(ROOT.glob("spikerl/**/README.md")),
    ROOT / "benchmarks/README.md",
]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S+$")


def _blocks(text: str, languages: tuple[str, ...] = ("bash", "sh")) -> list[list[str]]:
    """The lines of every fenced block whose language is one of ``languages``."""
    blocks, current, inside = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            if inside is None:
                inside = stripped[3:].strip()
                current = []
            else:
                if inside in languages:
                    blocks.append(current)
                inside = None
            continue
        if inside is not None:
            current.append(line)
    return blocks


def _command_lines(block: list[str]) -> list[str]:
    """Logical lines (backslash continuations joined; comments and a synopsis' optional
    ``[--flag ...]`` parts dropped), split at ``;`` and ``&&``."""
    joined, current = [], ""
    for line in block:
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    commands = []
    for line in joined:
        line = re.sub(r"(^|\s)#.*$", "", line)  # a comment
        line = re.sub(r"\s\[--?[^\]]*\]", "", line).strip()  # an optional part of a synopsis
        commands += [part.strip() for part in re.split(r"\s*(?:;|&&)\s*", line) if part.strip()]
    return commands


def _documented_commands() -> list[tuple[str, list[str]]]:
    """(file name, argv without leading ``VAR=value`` assignments) of every command."""
    found = []
    for doc in DOCS:
        for block in _blocks(doc.read_text()):
            for line in _command_lines(block):
                argv = shlex.split(re.sub(r"\$\{?\w+\}?", "0", line))
                while argv and ENV_ASSIGNMENT.match(argv[0]):
                    argv = argv[1:]
                if argv and argv[0] in ("spikerl", "python"):
                    found.append((doc.name, argv))
    return found


COMMANDS = _documented_commands()
SPIKERL = [(name, argv[1:]) for name, argv in COMMANDS if argv[0] == "spikerl"]
SCRIPTS = [(name, argv[1]) for name, argv in COMMANDS if argv[0] == "python" and len(argv) > 1]


@functools.cache
def _sweep_size(path: Path) -> int:
    """How many runs a sweep file expands into (expanded once per file)."""
    return len(load_sweep(path).runs)


def _ids(cases: list[tuple[str, object]]) -> list[str]:
    return [f"{name}:{' '.join(x) if isinstance(x, list) else x}"[:90] for name, x in cases]


def test_the_docs_document_commands() -> None:
    """The extraction finds the commands (guards against a parser that finds none)."""
    assert len(SPIKERL) >= 50
    assert {argv[0] for _, argv in SPIKERL} >= {"train", "evaluate", "sweep", "report", "export"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    missing = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a URL, or an anchor in the same page
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{doc.name} links to missing files: {missing}"


@pytest.mark.parametrize(("doc", "argv"), SPIKERL, ids=_ids(SPIKERL))
def test_documented_spikerl_command_parses(doc: str, argv: list[str], monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    args = _parser().parse_args(argv)
    if args.command == "train" and args.resume is None:
        if args.config is not None:
            assert args.config.is_file(), f"{doc}: no preset {args.config}"
        load_config(args.config, args.overrides)
    elif args.command == "sweep":
        assert _sweep_size(args.sweep.resolve()) > 0, f"{doc}: {args.sweep} expands to no runs"


@pytest.mark.parametrize(("doc", "script"), SCRIPTS, ids=_ids(SCRIPTS))
def test_documented_python_script_exists(doc: str, script: str) -> None:
    assert (ROOT / script).is_file(), f"{doc}: no script {script}"


PYTHON = [
    (doc.relative_to(ROOT).as_posix(), i, "\n".join(block))
    for doc in DOCS
    for i, block in enumerate(_blocks(doc.read_text(), ("python",)))
]
SLOW_PYTHON = {("README.md", 0)}  # trains configs/td3_pendulum.yaml in full


@pytest.fixture(scope="module")
def example_folder(tmp_path_factory) -> Path:
    """What the documented Python examples name, made by spikerl itself."""
    from spikerl.cli import main
    from tests.conftest import TINY

    folder = tmp_path_factory.mktemp("examples")
    (folder / "configs").symlink_to(ROOT / "configs")
    runs = ["--runs-dir", str(folder / "runs")]
    for name, env in (("my-run", "Pendulum-v1"), ("cheetah", "HalfCheetah-v4")):
        overrides = (*TINY, "actor.kind=lif", f"env.id={env}", f"run.name={name}")
        assert main(["train", *[a for o in overrides for a in ("--set", o)], *runs]) == 0
    export = ["export", str(folder / "runs/cheetah"), "-o", str(folder / "policy.npz")]
    assert main(export) == 0
    return folder


def test_the_docs_have_python_examples() -> None:
    assert len(PYTHON) >= 6


@pytest.mark.parametrize(
    ("doc", "index", "code"),
    [
        pytest.param(*case, marks=[pytest.mark.slow] if case[:2] in SLOW_PYTHON else [])
        for case in PYTHON
    ],
    ids=[f"{doc}:{i}" for doc, i, _ in PYTHON],
)
def test_documented_python_example_runs(doc, index, code, example_folder, monkeypatch) -> None:
    from spikerl.snn import energy

    monkeypatch.chdir(example_folder)
    monkeypatch.setattr(energy, "PRESETS", dict(energy.PRESETS))  # an example registers one
    exec(compile(code, f"{doc} python block {index}", "exec"), {"__name__": "__example__"})
