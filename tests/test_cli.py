"""The nnspec command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from nnspec.backends import discovery
from nnspec.backends.numpy import NumpyBackend
from nnspec.cli import main

pytest_plugins = ["pytester"]
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


# -- the plug-in path: divergence files, --dtype, list --reaches, backends --detail, opt-in backends --


class OptInBackend(NumpyBackend):
    """A backend left out of the default run (as the ecosystem adapters are), with its own softmax."""

    name: ClassVar[str] = "opt-in"
    in_default_run: ClassVar[bool] = False

    def softmax(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        return super().softmax(x, axis)


@pytest.fixture
def with_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed backends as numpy plus the opt-in dummy."""
    names = {"numpy": "nnspec.backends.numpy:NumpyBackend", "opt-in": "tests.test_cli:OptInBackend"}
    monkeypatch.setattr(discovery, "entry_point_names", lambda: dict(names))


def test_a_backend_not_in_the_default_run_runs_only_when_named(with_opt_in: None, capsys: Any) -> None:
    from nnspec.runner import select_targets

    default, _ = select_targets(None)
    assert [target.target for _, target in default] == ["numpy:cpu"]
    named, _ = select_targets(["opt-in"])
    assert [target.target for _, target in named] == ["opt-in:cpu"]
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "opt-in:cpu               available (not in the default run; select with -b opt-in); dtypes" in out
    assert "numpy:cpu                available; dtypes" in out


def test_backends_detail_names_own_inherited_and_stub_primitives(with_opt_in: None, capsys: Any) -> None:
    assert main(["backends", "--detail"]) == 0
    out = capsys.readouterr().out
    detail = out[out.index("tests.test_cli.OptInBackend (targets opt-in:cpu)"):]
    assert "  own:       softmax\n" in detail
    assert "attention from NumpyBackend" in detail and "softmax from" not in detail
    assert "stubs (their properties are not applicable): stop_gradient" in detail
    assert "composed from its own primitives: multi_head_attention from attention; lstm_sequence from lstm_cell" in detail


def test_list_reaches_names_the_properties_that_call_a_primitive() -> None:
    from nnspec.spec_loader import load_catalogue

    result = nnspec("list", "--reaches", "attention", "--format", "json")
    assert result.returncode == 0, result.stderr
    routes = {entry["id"]: entry["reaches"] for entry in json.loads(result.stdout)}
    assert routes["attention.self.permutation_equivariance"] == ["directly"]
    assert routes["multihead.formula.concatenated_heads"] == ["through multi_head_attention (unless fused)"]
    catalogue = load_catalogue(None)
    softmax_only = [p.id for p in catalogue.properties if p.topic == "softmax" and p.id not in routes]
    assert "softmax.rows.sum_to_one" in softmax_only
    table = nnspec("list", "--reaches", "lstm_cell")
    assert f"{len(json.loads(nnspec('list', '--reaches', 'lstm_cell', '--format', 'json').stdout))} properties" in table.stdout
    wrong = nnspec("list", "--reaches", "atention")
    assert wrong.returncode == 2 and "did you mean 'attention'?" in wrong.stderr and "Received: 'atention'" in wrong.stderr


def test_divergence_files_from_the_command_line_and_from_a_backend_class(tmp_path: Path) -> None:
    """A backend module in the current folder (imported as `python -m` would), with its own
    divergence file; a subclass gets the parent's entries only when it asks for them."""
    (tmp_path / "mykernels.py").write_text(
        "from typing import ClassVar\n"
        "import numpy as np\n"
        "from nnspec.backends.numpy import NumpyBackend\n\n"
        "class Unnormalised(NumpyBackend):\n"
        "    name: ClassVar[str] = 'unnormalised'\n"
        "    divergences: ClassVar[str] = 'unnormalised-divergences.txt'\n\n"
        "    def softmax(self, x, axis=-1):\n"
        "        return 2 * super().softmax(x, axis)\n\n"
        "class Renamed(Unnormalised):\n"
        "    name: ClassVar[str] = 'renamed'\n\n"
        "class Inheriting(Unnormalised):\n"
        "    name: ClassVar[str] = 'inheriting'\n"
        "    inherit_divergences: ClassVar[bool] = True\n"
    )
    (tmp_path / "unnormalised-divergences.txt").write_text(
        "# Deliberately unnormalised: rows sum to two.\nsoftmax.rows.sum_to_one  unnormalised:*\n"
    )
    base = ["run", "-p", "softmax.rows.sum_to_one", "--max-examples", "3", "--json", "r.json", "--no-claims"]
    own = nnspec(*base, "-b", "mykernels:Unnormalised", cwd=tmp_path)
    assert own.returncode == 0, own.stdout + own.stderr
    assert "xfail softmax.rows.sum_to_one [unnormalised:cpu]" in own.stdout
    renamed = nnspec(*base, "-b", "mykernels:Renamed", cwd=tmp_path)
    assert renamed.returncode == 1 and "FAIL: softmax.rows.sum_to_one [renamed:cpu]" in renamed.stdout
    inheriting = nnspec(*base, "-b", "mykernels:Inheriting", cwd=tmp_path)
    assert inheriting.returncode == 0 and "xfail softmax.rows.sum_to_one [inheriting:cpu]" in inheriting.stdout
    (tmp_path / "mine.txt").write_text("softmax.rows.*  renamed:cpu  # my own reason\n")
    given = nnspec(*base, "-b", "mykernels:Renamed", "--divergences", "mine.txt", cwd=tmp_path)
    assert given.returncode == 0 and "xfail softmax.rows.sum_to_one [renamed:cpu]" in given.stdout
    record = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert "my own reason" in record["message"]
    assert "--divergences mine.txt" in record["reproduce"]
    missing = nnspec(*base, "-b", "numpy", "--divergences", "absent.txt", cwd=tmp_path)
    assert missing.returncode == 2 and "divergence file not found" in missing.stderr and "'absent.txt'" in missing.stderr
    malformed = tmp_path / "bad.txt"
    malformed.write_text("only-one-field\n")
    bad = nnspec(*base, "-b", "numpy", "--divergences", str(malformed), cwd=tmp_path)
    assert bad.returncode == 2 and "bad.txt" in bad.stderr and "only-one-field" in bad.stderr


def test_dtype_restricts_the_dtypes_drawn(tmp_path: Path) -> None:
    from hypothesis.database import InMemoryExampleDatabase

    from nnspec.runner import RunOptions, run_property
    from nnspec.spec_loader import load_catalogue

    seen: set[str] = set()

    class Recording(NumpyBackend):
        name: ClassVar[str] = "recording"

        def softmax(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
            seen.add(x.dtype.name)
            return super().softmax(x, axis)

    prop = load_catalogue(None).property("softmax.rows.sum_to_one")
    assert set(prop.inputs["dtypes"]) >= {"float32", "float64"}
    options = RunOptions(profile="quick", dtypes=("float32",), database=InMemoryExampleDatabase())
    assert run_property(prop, Recording(), options).status == "pass"
    assert seen == {"float32"}
    record = run_property(prop, Recording(), RunOptions(profile="quick", dtypes=("bfloat16",)))
    assert record.status == "skip" and "--dtype bfloat16 selects none of the property's dtypes" in record.message
    refused = nnspec("run", "-b", "numpy", "--dtype", "bfloat16", "-p", "softmax.*", "--json", str(tmp_path / "r.json"))
    assert refused.returncode == 2 and "--dtype bfloat16: no selected target computes in it" in refused.stderr
    unknown = nnspec("run", "-b", "numpy", "--dtype", "float8", "-p", "softmax.*", "--json", str(tmp_path / "r.json"))
    assert unknown.returncode == 2 and "Received: 'float8'" in unknown.stderr


def test_the_pytest_plugin_takes_divergence_files_and_dtypes(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", softmax=(REPOSITORY / "spec" / "softmax.yaml").read_text())
    pytester.makepyfile(unnormalised_kernels=(
        "from typing import ClassVar\n"
        "from nnspec.backends.numpy import NumpyBackend\n\n"
        "class Unnormalised(NumpyBackend):\n"
        "    name: ClassVar[str] = 'unnormalised'\n\n"
        "    def softmax(self, x, axis=-1):\n"
        "        return 2 * super().softmax(x, axis)\n"
    ))
    pytester.makefile(".txt", known="softmax.rows.sum_to_one  unnormalised:cpu  # rows sum to two on purpose\n")
    options = ["-q", "-p", "no:cacheprovider", "-k", "sum_to_one and not attention_weights", "--backend", "unnormalised_kernels:Unnormalised",
               "--nnspec-profile", "quick"]
    failing = pytester.runpytest_subprocess(*options)
    failing.assert_outcomes(failed=1)
    declared = pytester.runpytest_subprocess(*options, "--nnspec-divergences", "known.txt", "--nnspec-dtype", "float32")
    declared.assert_outcomes(xfailed=1)
    # Refused before any check runs, as a pytest.UsageError (raised while collecting).
    missing = pytester.runpytest_subprocess(*options, "--nnspec-divergences", "absent.txt")
    assert missing.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    missing.stdout.fnmatch_lines(["*UsageError: nnspec: *divergence file not found*'absent.txt'*"])
    refused = pytester.runpytest_subprocess(*options, "--nnspec-dtype", "bfloat16")
    assert refused.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    refused.stdout.fnmatch_lines(["*UsageError: nnspec: --dtype bfloat16: no selected target computes in it*"])
