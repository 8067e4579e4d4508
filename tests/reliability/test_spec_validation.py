"""Malformed and hostile spec files: ``nnspec lint`` and ``nnspec run --spec`` exit 2 with a message
naming the file, the field and the received value; the pytest plugin never breaks collection.

Each row writes one bad spec folder and is run through both commands, in process (``nnspec.cli.main``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nnspec.cli import main

pytest_plugins = ["pytester"]

HEADER = "nnspec: 1\ntopic: demo\ntitle: Demo\nproperties:\n"
PROPERTY = """\
  - id: demo.softmax.rows
    title: Rows sum to one
    statement: Softmax rows sum to one.
    level: MUST
    source:
      - {document: "Transformer Architecture (topic-wise interview questions)", question: "What is the role of softmax in the attention mechanism?"}
    check: {name: softmax_rows_sum_to_one}
    inputs:
      batch: [1, 2]
      length: [1, 4]
      dtypes: [float64]
"""
LSTM_CHECK = "check: {name: lstm_long_horizon_gradient, params: {forget_bias: 8.0, retention_floor: 0.9}}"


def edit(old: str, new: str, body: str = PROPERTY) -> str:
    assert old in body
    return body.replace(old, new)


def spec(body: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / "demo.yaml").write_text(HEADER + body, encoding="utf-8")
    return write


def raw(name: str, data: bytes) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / name).write_bytes(data)
    return write


def two_files(first: str, second: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / "demo.yaml").write_text(HEADER + first, encoding="utf-8")
        (folder / "other.yaml").write_text(HEADER.replace("topic: demo", "topic: other") + second, encoding="utf-8")
    return write


def alias_bomb() -> bytes:
    lines = ["nnspec: 1", "topic: bomb", "title: Bomb", 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return ("\n".join(lines) + "\n").encode()


SECOND = PROPERTY.replace("demo.softmax.rows", "demo.softmax.other")

# (row id, writer, message fragments: file, field, value, what is wrong)
ROWS: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("param-typo", spec(edit("check: {name: softmax_rows_sum_to_one}",
                             LSTM_CHECK.replace("forget_bias", "forget_bais"))),
     ["demo.yaml:11", "field 'check.params.forget_bais'", "did you mean 'forget_bias'", "forget_bais: 8.0"]),
    ("param-mistyped", spec(edit("check: {name: softmax_rows_sum_to_one}", LSTM_CHECK.replace("8.0", '"8"'))),
     ["demo.yaml:11", "field 'check.params.forget_bias'", "expected a number, not str", 'Received: "8"']),
    ("param-out-of-range", spec(edit("check: {name: softmax_rows_sum_to_one}", LSTM_CHECK.replace("0.9", "1.5"))),
     ["demo.yaml", "field 'check.params.retention_floor'", "at most 1.0", "Received: 1.5"]),
    ("param-bad-choice", spec(edit("check: {name: softmax_rows_sum_to_one}",
                                   "check: {name: sparse_pattern_independence, params: {pattern: sliding_windw}}")),
     ["demo.yaml", "field 'check.params.pattern'", "did you mean 'sliding_window'", "'sliding_windw'"]),
    ("param-required", spec(edit("check: {name: softmax_rows_sum_to_one}", "check: {name: sparse_pattern_independence}")),
     ["demo.yaml", "field 'check.params'", "requires the parameter 'pattern'"]),
    ("range-reversed", spec(edit("batch: [1, 2]", "batch: [8, 2]")),
     ["demo.yaml:13", "field 'inputs.batch'", "minimum is larger than its maximum", "Received: [8, 2]"]),
    ("size-zero", spec(edit("length: [1, 4]", "length: [0, 4]")),
     ["demo.yaml:14", "field 'inputs.length.0'", "less than the minimum of 1", "Received: 0"]),
    ("size-absurd", spec(edit("length: [1, 4]", "length: [1, 100000000]")),
     ["demo.yaml:14", "field 'inputs.length.1'", "greater than the maximum of 4096", "Received: 100000000"]),
    ("duplicate-key", spec(edit("    level: MUST\n", "    level: MUST\n    level: MAY\n")),
     ["demo.yaml:9", "field 'level'", "duplicate key 'level' (first at line 8)"]),
    ("requires-typo", spec(edit("    level: MUST\n", "    level: MUST\n    requires: [attenton]\n")),
     ["demo.yaml:9", "field 'requires.0'", "did you mean 'attention'", "Received: 'attenton'"]),
    ("depends-on-unknown", spec(edit("    level: MUST\n", "    level: MUST\n    depends_on: [demo.softmax.missing]\n")),
     ["demo.yaml:9", "field 'depends_on.0'", "unknown property", "Received: 'demo.softmax.missing'"]),
    ("depends-on-cycle", two_files(edit("    level: MUST\n", "    level: MUST\n    depends_on: [demo.softmax.other]\n"),
                                   edit("    level: MUST\n", "    level: MUST\n    depends_on: [demo.softmax.rows]\n",
                                        SECOND)),
     ["other.yaml:5", "field 'depends_on'", "cycle: demo.softmax.other -> demo.softmax.rows -> demo.softmax.other"]),
    ("duplicate-id-across-files", two_files(PROPERTY, PROPERTY),
     ["other.yaml:5", "field 'id'", "duplicate property id, first defined in", "demo.yaml"]),
    ("unknown-field", spec(edit("    level: MUST\n", "    level: MUST\n    tolerence: {float64: {atol: 0.1}}\n")),
     ["demo.yaml:9", "field 'tolerence'", "did you mean 'tolerance'"]),
    ("unknown-checker", spec(edit("softmax_rows_sum_to_one", "softmax_rows_sums_to_one")),
     ["demo.yaml", "field 'check.name'", "did you mean 'softmax_rows_sum_to_one'", "'softmax_rows_sums_to_one'"]),
    ("claim-param-typo", raw("claims.yaml", (
        b"nnspec: 1\ntopic: demo\ntitle: Demo\nclaims:\n  - id: demo.claims.softmax\n    source:\n"
        b'      - {document: "Transformer Architecture (topic-wise interview questions)", question: "Q"}\n'
        b"    claim: The softmax of [3, 0, 0] is [0.95, 0.025, 0.025].\n    claimed: [0.95, 0.025, 0.025]\n"
        b"    check: {name: softmax_values, params: {logit: [3, 0, 0]}}\n")),
     ["claims.yaml:5", "property 'demo.claims.softmax', field 'check.params'", "did you mean 'logits'",
      "Received: {'logit': [3, 0, 0]}"]),
    ("alias-bomb", raw("bomb.yaml", alias_bomb()), ["bomb.yaml", "more than 100 uses of YAML aliases"]),
    ("recursive-alias", raw("loop.yaml", b"nnspec: 1\ntopic: demo\ntitle: Demo\nx: &x [1, *x]\n"),
     ["loop.yaml:4", "alias refers to a node that contains it"]),
    ("oversized", raw("big.yaml", (HEADER + PROPERTY).encode() + b"# padding\n" * 120_000),
     ["big.yaml", "larger than the 1048576 bytes"]),
    ("not-utf8", raw("latin1.yaml", b"nnspec: 1\ntopic: demo\ntitle: Caf\xe9\n"),
     ["latin1.yaml:3", "not UTF-8 text", "byte 0xe9"]),
    ("not-yaml", raw("broken.yaml", b"nnspec: 1\ntopic: [unclosed\n"), ["broken.yaml", "not valid YAML"]),
    ("top-level-list", raw("list.yaml", b"- nnspec: 1\n"), ["list.yaml", "expected a mapping at the top level"]),
]


@pytest.mark.parametrize("command", ["lint", "run"])
@pytest.mark.parametrize(("write", "fragments"), [(w, f) for _, w, f in ROWS], ids=[name for name, _, _ in ROWS])
def test_bad_spec_exits_2_naming_file_field_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str,
    write: Callable[[Path], None], fragments: list[str],
) -> None:
    write(tmp_path)
    argv = ["lint", str(tmp_path)] if command == "lint" else ["run", "--spec", str(tmp_path), "-b", "numpy",
                                                               "--profile", "quick"]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    for fragment in fragments:
        assert fragment in captured.err, (fragment, captured.err)
    assert "Traceback" not in captured.err
    if command == "run":
        assert "pass" not in captured.out.lower()  # nothing was run


def test_lint_reports_every_error_of_every_file_with_a_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two_files(edit("batch: [1, 2]", "batch: [2, 1]"), edit("    level: MUST\n", "    level: MUST\n    requires: [softmx]\n",
                                                         edit("length: [1, 4]", "length: [0, 4]", SECOND)))(tmp_path)
    raw("latin1.yaml", b"nnspec: 1\ntopic: demo\ntitle: Caf\xe9\n")(tmp_path)
    assert main(["lint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("nnspec lint: error:") == 4, err
    for fragment in ["demo.yaml:13", "field 'inputs.batch'", "other.yaml:9", "field 'requires.0'",
                     "other.yaml:15", "field 'inputs.length.0'", "latin1.yaml:3", "4 errors in 3 of 3 spec file(s)"]:
        assert fragment in err, (fragment, err)


def test_lint_of_a_clean_folder_exits_0_with_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec(PROPERTY)(tmp_path)
    assert main(["lint", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "ok: 1 properties and 0 claims in 1 topics (1 files)"


def test_shipped_catalogue_lints_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_lint_script_refuses_an_alias_bomb(tmp_path: Path) -> None:
    """The installed script, end to end, in a child process (a bomb must not take this process down)."""
    import subprocess

    raw("bomb.yaml", alias_bomb())(tmp_path)
    script = Path(sys.executable).with_name("nnspec")
    result = subprocess.run([str(script), "lint", str(tmp_path / "bomb.yaml")], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2, result
    assert "bomb.yaml:4: more than 100 uses of YAML aliases" in result.stderr


# The pytest plugin's collection -------------------------------------------------------------------

def test_a_non_utf8_yaml_elsewhere_does_not_break_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_other="def test_ok():\n    assert 1 + 1 == 2\n")
    (pytester.path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (pytester.path / "config.yml").write_text("nnspec_like: 1\nother: true\n")
    (pytester.path / "empty.yaml").write_bytes(b"")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_only_files_declaring_nnspec_are_collected(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", spec="# a comment\n---\n" + HEADER + PROPERTY, notspec="topic: demo\nnnspec: 1\n")
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["spec.yaml::demo.softmax.rows[[]numpy:cpu[]]"])
    assert "notspec" not in result.stdout.str()


def test_an_undecodable_spec_is_a_collection_error_naming_it(pytester: pytest.Pytester) -> None:
    (pytester.path / "latin1.yaml").write_bytes(b"nnspec: 1\ntopic: demo\ntitle: Caf\xe9\n")
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*latin1.yaml:3: not UTF-8 text*"])
    assert "UnicodeDecodeError" not in result.stdout.str()


def test_files_collected_one_by_one_are_validated_as_one_catalogue(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", demo=HEADER + PROPERTY,
                      other=HEADER.replace("topic: demo", "topic: other") + PROPERTY
                      + edit("    level: MUST\n", "    level: MUST\n    depends_on: [demo.softmax.gone]\n", SECOND))
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "other.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*other.yaml:5, property 'demo.softmax.rows', field 'id': duplicate property id*"])
    # A dependency found nowhere is not an error of the whole collection: that property is not run.
    assert "depends on an unknown property" not in result.stdout.str()


def test_a_dependency_found_nowhere_makes_only_its_property_not_run(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", demo=HEADER + PROPERTY + edit(
        "    level: MUST\n", "    level: MUST\n    depends_on: [demo.softmax.gone]\n", SECOND))
    result = pytester.runpytest("-p", "no:cacheprovider", "--nnspec-profile", "quick", "demo.yaml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ERROR: demo.softmax.other [[]numpy:cpu[]]*",
                                 "*not run: *demo.yaml, property 'demo.softmax.other', field 'depends_on.0' names "
                                 "'demo.softmax.gone', which is in none of the spec files given nor the shipped "
                                 "catalogue*"])


def test_a_dependency_in_a_sibling_file_is_found(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", demo=HEADER + PROPERTY,
                      other=HEADER.replace("topic: demo", "topic: other")
                      + edit("    level: MUST\n", "    level: MUST\n    depends_on: [demo.softmax.rows]\n", SECOND))
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "other.yaml")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["other.yaml::demo.softmax.other[[]numpy:cpu[]]"])


def test_an_unknown_parameter_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", demo=HEADER + edit("check: {name: softmax_rows_sum_to_one}",
                                                  LSTM_CHECK.replace("forget_bias", "forget_bais")))
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*field 'check.params.forget_bais'*did you mean 'forget_bias'*"])


def test_duplicate_ids_across_folders_are_a_collection_error(pytester: pytest.Pytester) -> None:
    for folder in ("first", "second"):
        (pytester.path / folder).mkdir()
        (pytester.path / folder / f"{folder}.yaml").write_text(HEADER.replace("demo", folder) + PROPERTY)
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "first", "second")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*second.yaml:5, property 'demo.softmax.rows', field 'id': duplicate property id, "
                                 "first defined in *first.yaml*"])
