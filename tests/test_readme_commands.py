"""Every ``nnspec`` command in the README's console blocks runs as written.

The commands are taken from the README itself: in a console block, the ``$ `` lines when there
are any (the rest is output), else every line that starts with ``nnspec``. ``[...]`` marks an
optional part (each command is checked with and without it) and ``...`` "more of the same"; a
trailing ``# ...`` is a comment. Each command must parse, and each backend it names must resolve
(``module:Class`` paths import from the repository root, as they do for a user there). The cheap
ones (``list``, ``lint``, ``backends``, and ``run`` on named properties of CPU backends) are
run as written, in a folder that holds the repository's files, and must exit as the README says.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from nnspec.backends.discovery import resolve
from nnspec.cli import _parser, main

REPOSITORY = Path(__file__).resolve().parent.parent
README = (REPOSITORY / "README.md").read_text(encoding="utf-8")
HAS_TORCH = importlib.util.find_spec("torch") is not None


def console_blocks(text: str) -> list[str]:
    return re.findall(r"```console\n(.*?)```", text, flags=re.DOTALL)


def commands_in(block: str) -> list[str]:
    lines = block.splitlines()
    prompted = [line[2:] for line in lines if line.startswith("$ ")]
    chosen = prompted or lines
    return [line.split(" # ")[0].strip() for line in chosen if line.startswith("nnspec ")]


def expansions(command: str) -> list[str]:
    """The command without and with each optional ``[...]`` part, ``...`` dropped."""
    command = command.replace(" ...", "")
    optional = re.findall(r"\[([^\]]+)\]", command)
    bare = re.sub(r"\s*\[[^\]]+\]", "", command)
    return [bare] + ([re.sub(r"\[([^\]]+)\]", r"\1", command)] if optional else [])


COMMANDS = sorted(
    {
        variant
        for block in console_blocks(README)
        for command in commands_in(block)
        for variant in expansions(command)
    }
)


def _backends(arguments: list[str]) -> list[str]:
    return [arguments[i + 1] for i, word in enumerate(arguments[:-1]) if word in ("-b", "--backend")]


def _cheap(arguments: list[str]) -> bool:
    command = arguments[0]
    if command in ("list", "lint", "backends"):
        return True
    if command != "run":
        return False
    properties = [arguments[i + 1] for i, word in enumerate(arguments[:-1]) if word in ("-p", "--property")]
    named = bool(properties) and not any(set(p) & set("*?[") for p in properties)
    return named and all(not b.startswith(("torch", "jax")) for b in _backends(arguments))


def test_the_readme_has_the_commands_it_is_known_to_have() -> None:
    assert "nnspec list --reaches attention" in COMMANDS
    assert "nnspec backends --detail" in COMMANDS and "nnspec backends" in COMMANDS
    assert any(c.startswith("nnspec run -b examples.sdpa_backend:NaiveSdpaAttention -p ") for c in COMMANDS)
    assert all("PYTHONPATH" not in c and "[" not in c and "..." not in c for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_readme_command_parses_and_its_backends_resolve(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments = shlex.split(command)[1:]
    _parser().parse_args(arguments)  # argparse exits (status 2) on anything it does not take
    monkeypatch.chdir(REPOSITORY)
    for selector in _backends(arguments):
        if selector.startswith(("torch", "examples.sdpa")) and not HAS_TORCH:
            continue
        targets = resolve(selector)
        assert targets and all(target.backend_class is not None for target in targets), (selector, targets)


def _workspace(tmp_path: Path) -> Path:
    """A folder holding the repository's files (linked), where a command's outputs can go."""
    for entry in REPOSITORY.iterdir():
        if entry.name not in (".git", "reports", ".hypothesis", ".venv"):
            (tmp_path / entry.name).symlink_to(entry)
    return tmp_path


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / "nnspec"
    words = shlex.split(command)
    environment = {**os.environ, "NNSPEC_DATABASE": str(cwd / ".hypothesis")}
    environment.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(executable), *words[1:]], capture_output=True, text=True, cwd=cwd, env=environment
    )


CHEAP = [c for c in COMMANDS if _cheap(shlex.split(c)[1:])]


@pytest.mark.parametrize("command", [c for c in CHEAP if not c.startswith("nnspec run")])
def test_a_cheap_readme_command_runs_as_written(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (``main`` with the command's words), from a folder holding the repository's files."""
    monkeypatch.chdir(_workspace(tmp_path))
    assert main(shlex.split(command)[1:]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in CHEAP if c.startswith("nnspec run")])
def test_a_cheap_readme_run_runs_as_written(command: str, tmp_path: Path) -> None:
    """As a user types it: the ``nnspec`` script, no PYTHONPATH, in a folder with the repository's files."""
    if "sdpa_backend" in command and not HAS_TORCH:
        pytest.skip("torch is not installed")
    result = _run(command, _workspace(tmp_path))
    # A run that shows a failure in the README exits 1 (a MUST property failed); the rest exit 0.
    shows_a_failure = "NaiveSdpaAttention" in command
    assert result.returncode == (1 if shows_a_failure else 0), result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_the_guides_failure_output_is_what_the_command_prints(tmp_path: Path) -> None:
    """The lines the README shows of the first run of the wrapped SDPA are the ones it prints."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    block = next(
        b for b in console_blocks(README) if "$ nnspec run -b examples.sdpa_backend:NaiveSdpaAttention" in b
    )
    command = next(line[2:] for line in block.splitlines() if line.startswith("$ "))
    output = _run(command, _workspace(tmp_path)).stdout
    shown = [line for line in block.splitlines()[1:] if line.strip() and line.strip() != "..."]
    assert shown and all(line in output.splitlines() for line in shown), output


def test_the_guides_example_is_in_the_readme_verbatim() -> None:
    code = (REPOSITORY / "examples" / "sdpa_backend.py").read_text(encoding="utf-8")
    assert f"```python\n{code}```" in README


@pytest.mark.slow
def test_the_guides_example_passes_after_its_fix(tmp_path: Path) -> None:
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    result = _run(
        "nnspec run -b examples.sdpa_backend:SdpaAttention -p attention.domain.mask_with_causal "
        "-p masking.domain.nonfinite_masked_keys_ignored --profile quick",
        _workspace(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pass  attention.domain.mask_with_causal [my-sdpa:cpu]" in result.stdout
    assert "xfail masking.domain.nonfinite_masked_keys_ignored [my-sdpa:cpu]" in result.stdout
