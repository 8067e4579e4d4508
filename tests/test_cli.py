"""The nnspec command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnspec.cli import main

REPOSITORY = Path(__file__).resolve().parent.parent


def nnspec(*args: str, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nnspec.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_run_writes_json_and_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    code = main(["run", "--backend", "numpy", "--property", "softmax.*", "--profile", "quick",
                 "--json", str(out), "--junitxml", str(tmp_path / "junit.xml")])
    assert code == 0
    document = json.loads(out.read_text())
    assert document["format"] == "nnspec-results" and document["format_version"] == 1
    assert {r["property"] for r in document["results"]} == {p for p in document["properties"] if p.startswith("softmax.")}
    assert all(r["backend"] == "numpy:cpu" and r["status"] == "pass" for r in document["results"])
    assert document["environment"]["profile"] == "quick" and "numpy" in document["environment"]["versions"]
    assert len(out.with_suffix(".jsonl").read_text().splitlines()) == len(document["results"])
    assert "<testsuite" in (tmp_path / "junit.xml").read_text()


def test_failing_must_property_exits_non_zero_and_explains(tmp_path: Path) -> None:
    result = nnspec("run", "--backend", "tests.mutants.reference_mutants:CausalMaskOffByOne",
                    "--property", "masking.causal.first_position_self_only", "--profile", "quick",
                    "--json", str(tmp_path / "r.json"))
    assert result.returncode == 1, result.stderr
    assert "FAIL: masking.causal.first_position_self_only" in result.stdout
    assert "minimal example" in result.stdout and "reproduce: nnspec run --backend" in result.stdout
    assert "1 MUST property failed" in result.stderr


def test_list_and_lint() -> None:
    listing = nnspec("list", "--topic", "lstm")
    assert listing.returncode == 0 and "lstm.cell.matches_equations" in listing.stdout
    assert "attention.sdpa" not in listing.stdout
    lint = nnspec("lint", "spec")
    assert lint.returncode == 0 and lint.stdout.startswith("ok: ")


def test_lint_reports_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("nnspec: 1\ntopic: demo\ntitle: Demo\nproperties:\n  - id: demo.x.y\n    level: SOMETIMES\n")
    result = nnspec("lint", str(broken))
    assert result.returncode == 2
    assert "broken.yaml" in result.stderr and "demo.x.y" in result.stderr


def test_unknown_backend_and_property_are_clear_errors() -> None:
    assert "unknown backend 'tensorflow'" in nnspec("run", "--backend", "tensorflow").stderr
    assert "no property matches" in nnspec("run", "--backend", "numpy", "--property", "nope.*").stderr


def test_backends_lists_reasons() -> None:
    result = nnspec("backends")
    assert result.returncode == 0
    assert "numpy:cpu" in result.stdout and "available" in result.stdout


@pytest.mark.parametrize("command", ["run", "list", "lint", "backends", "report", "diff", "claims", "coverage"])
def test_every_command_has_help(command: str) -> None:
    result = nnspec(command, "--help")
    assert result.returncode == 0 and "usage: nnspec" in result.stdout


def test_diff_can_fail_on_regressions(tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert main(["run", "-b", "numpy", "-p", "masking.causal.*", "--profile", "quick", "--json", str(old),
                 "--no-claims"]) == 0
    nnspec("run", "-b", "tests.mutants.reference_mutants:CausalMaskOffByOne", "-p", "masking.causal.*",
           "--profile", "quick", "--json", str(new), "--no-claims")
    document = json.loads(new.read_text())
    for record in document["results"]:  # the same target name, so the change reads as a regression
        record["backend"] = "numpy:cpu"
    new.write_text(json.dumps(document))
    assert nnspec("diff", str(old), str(new)).returncode == 0
    strict = nnspec("diff", str(old), str(new), "--fail-on-regression")
    assert strict.returncode == 1 and "masking.causal" in strict.stdout
