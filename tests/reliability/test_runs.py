"""The reliability table: faults in backends, selections, options, outputs and result files.

Each row runs ``nnspec`` in a subprocess and asserts the exit code, the run's status, a message
fragment, and that no finished result was lost (every record in the ``.jsonl`` stream is in the
document, and a complete run has one record per planned pair).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import Outcome, environment, nnspec, read_back

F = "tests.reliability.faulty:"
TWO = ["-p", "softmax.rows.sum_to_one", "-p", "softmax.formula.matches"]
QUICK = ["--max-examples", "2", "--no-claims", "-q"]

# (row id, extra run arguments, exit code, run status or None when no document may be written,
#  message fragment in the output, {(property, backend): status} expected among the records,
#  the number of records a complete run must keep)
RUN_ROWS = [
    ("segfault", ["-b", "numpy", "-b", F + "Segfault"], 1, "complete", "killed by SIGSEGV",
     {("softmax.rows.sum_to_one", "segfault:cpu"): "error", ("softmax.rows.sum_to_one", "numpy:cpu"): "pass"}, 4),
    ("segfault-workers", ["-b", "numpy", "-b", F + "Segfault", "-j", "2"], 1, "complete", "killed by SIGSEGV",
     {("softmax.formula.matches", "segfault:cpu"): "error", ("softmax.formula.matches", "numpy:cpu"): "pass"}, 4),
    ("os-exit", ["-b", "numpy", "-b", F + "OsExit"], 1, "complete", "exited with code 0",
     {("softmax.rows.sum_to_one", "osexit:cpu"): "error", ("softmax.rows.sum_to_one", "numpy:cpu"): "pass"}, 4),
    ("os-exit-workers", ["-b", "numpy", "-b", F + "OsExit", "-j", "2"], 1, "complete", "exited with code 0",
     {("softmax.rows.sum_to_one", "osexit:cpu"): "error"}, 4),
    ("sys-exit", ["-b", "numpy", "-b", F + "SysExit"], 1, "complete", "the backend raised SystemExit",
     {("softmax.rows.sum_to_one", "sysexit:cpu"): "error"}, 4),
    ("sys-exit-workers", ["-b", "numpy", "-b", F + "SysExit", "-j", "2"], 1, "complete", "SystemExit",
     {("softmax.rows.sum_to_one", "sysexit:cpu"): "error"}, 4),
    ("raise-keyboard-interrupt", ["-b", "numpy", "-b", F + "RaisesKeyboardInterrupt"], 1, "complete",
     "the backend raised KeyboardInterrupt", {("softmax.rows.sum_to_one", "raiseskbi:cpu"): "error"}, 4),
    ("raise-generator-exit", ["-b", F + "RaisesGeneratorExit"], 1, "complete", "GeneratorExit",
     {("softmax.rows.sum_to_one", "raisesgenexit:cpu"): "error"}, 2),
    ("raise-system-exit-3", ["-b", F + "RaisesSystemExit"], 1, "complete", "SystemExit: 3",
     {("softmax.rows.sum_to_one", "raisessysexit:cpu"): "error"}, 2),
    ("native-hang", ["-b", "numpy", "-b", F + "NativeHang", "--timeout", "3"], 1, "complete",
     "the supervisor killed the worker", {("softmax.rows.sum_to_one", "nativehang:cpu"): "error",
                                          ("softmax.rows.sum_to_one", "numpy:cpu"): "pass"}, 4),
    ("native-hang-workers", ["-b", "numpy", "-b", F + "NativeHang", "--timeout", "3", "-j", "2"], 1, "complete",
     "the supervisor killed the worker", {("softmax.formula.matches", "nativehang:cpu"): "error"}, 4),
    ("dies-when-loaded", ["-b", "numpy", "-b", F + "DiesWhenLoaded"], 1, "complete",
     "(exited with code 7) while loading target 'dieswhenloaded:cpu'",
     {("softmax.rows.sum_to_one", "dieswhenloaded:cpu"): "error", ("softmax.rows.sum_to_one", "numpy:cpu"): "pass"},
     4),
    ("memory-limit", ["-b", "numpy", "-b", F + "MemoryHog", "--memory-limit", "300"], 1, "complete",
     "exceeded the memory limit of 300 MB", {("softmax.rows.sum_to_one", "memoryhog:cpu"): "error",
                                            ("softmax.formula.matches", "numpy:cpu"): "pass"}, 4),
    ("memory-limit-workers", ["-b", "numpy", "-b", F + "MemoryHog", "--memory-limit", "300", "-j", "2"], 1,
     "complete", "exceeded the memory limit of 300 MB",
     {("softmax.formula.matches", "memoryhog:cpu"): "error", ("softmax.rows.sum_to_one", "numpy:cpu"): "pass"}, 4),
    ("wrong-shape", ["-b", F + "WrongShape"], 1, "complete", "expected shape",
     {("softmax.formula.matches", "wrongshape:cpu"): "fail"}, 2),
    ("returns-string", ["-b", F + "ReturnsString"], 1, "complete", "softmax returned a str",
     {("softmax.formula.matches", "returnsstring:cpu"): "fail"}, 2),
    ("returns-none", ["-b", F + "ReturnsNone"], 1, "complete", "softmax returned a NoneType",
     {("softmax.rows.sum_to_one", "returnsnone:cpu"): "fail"}, 2),
    ("nan-result-strict-json", ["-b", F + "NaNSoftmax"], 1, "complete", "FAIL",
     {("softmax.rows.sum_to_one", "nansoftmax:cpu"): "fail"}, 2),
    ("hostile-exception-text", ["-b", F + "HostileMessage"], 1, "complete", "RuntimeError: bad",
     {("softmax.rows.sum_to_one", "hostile:cpu"): "error"}, 2),
    ("non-deterministic", ["-b", F + "NonDeterministic"], 1, "complete", "FAIL",
     {("softmax.rows.sum_to_one", "nondeterministic:cpu"): "fail"}, 2),
    ("wrong-only-once", ["-b", F + "WrongOnce"], 1, "complete",
     "non-deterministic: two calls of softmax on the same input differ by 0.001",
     {("softmax.formula.matches", "wrongonce:cpu"): "fail", ("softmax.rows.sum_to_one", "wrongonce:cpu"): "pass"}, 2),
    ("reference-passes", ["-b", "numpy"], 0, "complete", "2 pass",
     {("softmax.rows.sum_to_one", "numpy:cpu"): "pass"}, 2),
    ("reference-passes-workers", ["-b", "numpy", "-j", "2"], 0, "complete", "2 pass",
     {("softmax.formula.matches", "numpy:cpu"): "pass"}, 2),
    ("same-backend-twice-is-one-target", ["-b", "numpy", "-b", "numpy:cpu"], 0, "complete", "2 pass",
     {("softmax.rows.sum_to_one", "numpy:cpu"): "pass"}, 2),
    ("name-collision", ["-b", "numpy", "-b", F + "SameNameKernel"], 2, None,
     "two backends give the target name 'numpy:cpu'", {}, 0),
    ("module-not-importable", ["-b", "nosuchmodule_xyz:Kernel"], 2, None, "failed to import", {}, 0),
    ("class-missing", ["-b", F + "Missing"], 2, None, "has no attribute 'Missing'", {}, 0),
    ("not-a-backend", ["-b", F + "NotABackend"], 2, None, "not a subclass", {}, 0),
    ("constructor-raises", ["-b", F + "ConstructorRaises"], 2, None, "no licence for this kernel", {}, 0),
    ("no-targets", ["-b", F + "NoTargets"], 2, None, "offers no target", {}, 0),
    ("unknown-backend-name", ["-b", "nosuchbackend"], 2, None, "unknown backend 'nosuchbackend'", {}, 0),
    ("device-not-offered", ["-b", "numpy:tpu"], 2, None, "is not one of them", {}, 0),
]

OPTION_ROWS = [
    ("unknown-topic", ["-b", "numpy", "--topic", "nosuch"], "no property has topic ['nosuch']"),
    ("glob-matches-nothing", ["-b", "numpy", "-p", "nosuch.*"], "no property matches ['nosuch.*']"),
    ("one-glob-matches-nothing", ["-b", "numpy", "-p", "softmax.rows.sum_to_one", "-p", "nosuch*"],
     "no property matches ['nosuch*']"),
    ("negative-timeout", ["-b", "numpy", "--timeout", "-1"], "must be greater than 0"),
    ("zero-timeout", ["-b", "numpy", "--timeout", "0"], "must be greater than 0"),
    ("negative-max-examples", ["-b", "numpy", "--max-examples", "-1"], "must be greater than 0"),
    ("zero-memory-limit", ["-b", "numpy", "--memory-limit", "0"], "must be greater than 0"),
    ("zero-workers", ["-b", "numpy", "--workers", "0"], "must be greater than 0"),
    ("json-names-a-folder", ["-b", "numpy", "--json", "."], "is a folder"),
    ("html-under-a-file", ["-b", "numpy", "--html", "blocker/report.html"], "is not a folder"),
    ("junit-under-a-file", ["-b", "numpy", "--junitxml", "blocker/sub/junit.xml"], "is not a folder"),
]


@pytest.mark.parametrize(("row", "args", "code", "status", "fragment", "statuses", "count"), RUN_ROWS,
                         ids=[row[0] for row in RUN_ROWS])
def test_run_row(tmp_path: Path, row: str, args: list[str], code: int, status: str | None, fragment: str,
                 statuses: dict[tuple[str, str], str], count: int) -> None:
    outcome = nnspec(["run", *args, *TWO, *QUICK, "--timeout", "60"] if "--timeout" not in args
                     else ["run", *args, *TWO, *QUICK], tmp_path)
    assert outcome.code == code, outcome.out
    assert fragment in outcome.out
    if status is None:
        assert outcome.document is None and not outcome.jsonl
        return
    assert outcome.document is not None and outcome.document["status"] == status
    records = outcome.records()
    for key, expected in statuses.items():
        assert records[key]["status"] == expected, records[key]["message"]
    assert len(outcome.document["results"]) == len(outcome.jsonl) == count  # nothing lost


def test_a_target_that_kills_every_worker_loading_it_is_given_up(tmp_path: Path) -> None:
    outcome = nnspec(["run", "-b", "numpy", "-b", F + "DiesWhenLoaded", "-p", "softmax.*", *QUICK], tmp_path)
    assert outcome.code == 1, outcome.out
    assert outcome.document is not None and outcome.document["status"] == "complete"
    records = outcome.document["results"]
    assert len(records) == len(outcome.jsonl) and len(records) >= 6  # nothing lost
    dying = [r for r in records if r["backend"] == "dieswhenloaded:cpu"]
    assert all(r["status"] == "error" for r in dying)
    given_up = [r for r in dying if "not run: the worker process died each of the 2 times" in r["message"]]
    assert given_up and all("exited with code 7" in r["message"] for r in given_up)
    assert len(dying) - len(given_up) == 2  # loaded twice, then no more restarts for it
    assert all(r["status"] == "pass" for r in records if r["backend"] == "numpy:cpu")


def test_a_spec_file_alone_runs_with_its_dependencies_in_other_files(tmp_path: Path) -> None:
    shipped = (Path(__file__).resolve().parents[2] / "spec" / "masking.yaml").read_text(encoding="utf-8")
    (tmp_path / "masking.yaml").write_text(shipped, encoding="utf-8")  # depends on attention and softmax
    chosen = ["-p", "masking.causal.future_independence", "-p", "masking.causal.upper_triangle_zero"]
    alone = nnspec(["run", "-b", "numpy", "--spec", "masking.yaml", *chosen, *QUICK], tmp_path)
    assert alone.code == 0, alone.out
    assert [r["status"] for r in alone.records().values()] == ["pass", "pass"]
    # A dependency in no file given nor in the shipped catalogue: only its property is not run.
    assert shipped.count("depends_on: [attention.sdpa.matches_formula]") >= 1
    (tmp_path / "masking.yaml").write_text(
        shipped.replace("depends_on: [attention.sdpa.matches_formula]", "depends_on: [nowhere.at.all]", 1))
    broken = nnspec(["run", "-b", "numpy", "--spec", "masking.yaml", *chosen, *QUICK], tmp_path)
    assert broken.code == 1, broken.out
    assert broken.document is not None and broken.document["status"] == "complete"
    records = broken.records()
    not_run = records[("masking.causal.future_independence", "numpy:cpu")]
    assert not_run["status"] == "error"
    assert "not run:" in not_run["message"] and "'depends_on.0' names 'nowhere.at.all'" in not_run["message"]
    assert records[("masking.causal.upper_triangle_zero", "numpy:cpu")]["status"] == "pass"
    assert len(broken.document["results"]) == len(broken.jsonl) == 2  # nothing lost


@pytest.mark.parametrize(("row", "args", "fragment"), OPTION_ROWS, ids=[row[0] for row in OPTION_ROWS])
def test_usage_row(tmp_path: Path, row: str, args: list[str], fragment: str) -> None:
    (tmp_path / "blocker").write_text("a file where a folder is expected")
    outcome = nnspec(["run", *args, *QUICK], tmp_path)
    assert outcome.code == 2, outcome.out
    assert fragment in outcome.out
    assert outcome.document is None and not outcome.jsonl  # refused before the run started


def test_requires_nothing_selected_provides_is_said(tmp_path: Path) -> None:
    outcome = nnspec(["run", "-b", "numpy", "-p", "training.truncated_bptt.gradient_window", *QUICK], tmp_path)
    assert outcome.code == 0
    assert "warning: training.truncated_bptt.gradient_window: requires stop_gradient" in outcome.out
    assert outcome.document is not None and outcome.document["warnings"]
    assert [r["status"] for r in outcome.document["results"]] == ["skip"] == [r["status"] for r in outcome.jsonl]


def _interrupt(tmp_path: Path, sign: int, workers: int) -> tuple[float, Outcome]:
    command = [sys.executable, "-m", "nnspec.cli", "run", "-b", F + "Slow", "-p", "softmax.*",
               "--max-examples", "3", "--no-claims", "-j", str(workers), "--json", str(tmp_path / "out.json"),
               "--html", str(tmp_path / "out.html"), "--junitxml", str(tmp_path / "out.xml")]
    process = subprocess.Popen(command, cwd=tmp_path, env=environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    jsonl = tmp_path / "out.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 2):
        time.sleep(0.1)
    sent = time.monotonic()
    process.send_signal(sign)
    out, _ = process.communicate(timeout=60)
    return time.monotonic() - sent, read_back(process.returncode, out, tmp_path)


@pytest.mark.parametrize(("sign", "workers"), [(signal.SIGINT, 1), (signal.SIGTERM, 1),
                                               (signal.SIGINT, 2), (signal.SIGTERM, 2)],
                         ids=["sigint-serial", "sigterm-serial", "sigint-workers", "sigterm-workers"])
def test_interrupted_run_writes_every_output(tmp_path: Path, sign: int, workers: int) -> None:
    _, outcome = _interrupt(tmp_path, sign, workers)
    assert outcome.code == 3, outcome.out
    assert "interrupted" in outcome.out
    assert outcome.document is not None and outcome.document["status"] == "interrupted"
    assert len(outcome.document["results"]) == len(outcome.jsonl) >= 2  # nothing finished was lost
    assert (tmp_path / "out.html").stat().st_size > 0 and (tmp_path / "out.xml").stat().st_size > 0
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def _document(results: list[dict[str, object]], **extra: object) -> dict[str, object]:
    return {"format": "nnspec-results", "format_version": 1, "environment": {}, "properties": {},
            "results": results, **extra}


PASS = {"property": "a.b", "backend": "numpy:cpu", "status": "pass", "level": "MUST"}
FAIL = {**PASS, "status": "fail", "message": "it failed"}

FILE_ROWS = [
    ("report-list", ["report", "bad.json"], [1, 2], 2, "a results document is a JSON object"),
    ("report-null", ["report", "bad.json"], None, 2, "Received: NoneType"),
    ("report-missing-results", ["report", "bad.json"], {"format": "nnspec-results", "format_version": 1}, 2,
     "field 'results' is missing"),
    ("report-other-version", ["report", "bad.json"], {**_document([]), "format_version": 99}, 2,
     "field 'format_version' should be 1"),
    ("report-foreign-format", ["report", "bad.json"], {"format": "other"}, 2, "field 'format'"),
    ("report-record-missing-field", ["report", "bad.json"], _document([{"property": "a.b"}]), 2, "lacks field"),
    ("report-record-not-object", ["report", "bad.json"], _document(["x"]), 2, "should be a JSON object"),
    ("report-results-not-list", ["report", "bad.json"], _document({}), 2, "should be a JSON array"),  # type: ignore[arg-type]
    ("diff-list", ["diff", "bad.json", "bad.json"], [], 2, "a results document is a JSON object"),
    ("report-unknown-run-status", ["report", "bad.json"], _document([], status="half"), 2, "field 'status'"),
]


@pytest.mark.parametrize(("row", "args", "content", "code", "fragment"), FILE_ROWS, ids=[r[0] for r in FILE_ROWS])
def test_result_file_row(tmp_path: Path, row: str, args: list[str], content: object, code: int,
                         fragment: str) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(content))
    outcome = nnspec(args, tmp_path)
    assert outcome.code == code, outcome.out
    assert fragment in outcome.out
    assert "Traceback" not in outcome.out


@pytest.mark.parametrize("order", [("a.json", "b.json"), ("b.json", "a.json")], ids=["fail-last", "fail-first"])
def test_overlapping_shards_keep_the_failure(tmp_path: Path, order: tuple[str, str]) -> None:
    (tmp_path / "a.json").write_text(json.dumps(_document([PASS])))
    (tmp_path / "b.json").write_text(json.dumps(_document([FAIL])))
    outcome = nnspec(["report", *order, "-o", "r.html", "--json", "out.json"], tmp_path)
    assert outcome.code == 0, outcome.out
    assert "conflict: a.b [numpy:cpu] is" in outcome.out
    assert outcome.document is not None
    assert [r["status"] for r in outcome.document["results"]] == ["fail"]
    assert any("conflict" in warning for warning in outcome.document["warnings"])


def test_diff_says_the_runs_cover_different_pairs(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text(json.dumps(_document([PASS])))
    (tmp_path / "new.json").write_text(json.dumps(_document([PASS, {**PASS, "property": "a.c"}])))
    outcome = nnspec(["diff", "old.json", "new.json"], tmp_path)
    assert outcome.code == 0
    assert "the two runs cover different pairs: 1 records in the old run, 2 in the new" in outcome.out
    assert "No differences.\n" not in outcome.out


def test_reproduce_lines_rerun_the_same_pair_with_the_same_status(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[2] / "spec" / "softmax.yaml"
    first = nnspec(["run", "-b", "numpy", "-b", F + "WrongShape", "-b", F + "ReturnsNone", "--spec", str(spec),
                    *TWO, *QUICK], tmp_path)
    assert first.code == 1 and first.document is not None
    failing = [r for r in first.document["results"] if r["status"] in ("fail", "error")]
    assert len(failing) >= 3
    for record in failing[:3]:
        line = record["reproduce"]
        assert "--spec" in line and "--max-examples 2" in line and "@cpu" in line
        words = line.split()[1:]
        again = nnspec([*words, "--no-claims", "--json", str(tmp_path / "again.json")], tmp_path)
        rerun = json.loads((tmp_path / "again.json").read_text())["results"]
        assert again.code == 1
        assert [(r["property"], r["backend"], r["status"]) for r in rerun] == [
            (record["property"], record["backend"], record["status"])]


def test_example_database_is_written_and_replayed(tmp_path: Path) -> None:
    database = tmp_path / "db"
    os.environ["NNSPEC_DATABASE"] = str(database)
    try:
        first = nnspec(["run", "-b", F + "WrongShape", "-p", "softmax.formula.matches", *QUICK], tmp_path)
        saved = [path for path in database.rglob("*") if path.is_file()]
        again = nnspec(["run", "-b", F + "WrongShape", "-p", "softmax.formula.matches", *QUICK], tmp_path)
    finally:
        del os.environ["NNSPEC_DATABASE"]
    assert first.code == again.code == 1
    assert saved, "the failing example was not saved to NNSPEC_DATABASE"
    assert again.records()[("softmax.formula.matches", "wrongshape:cpu")]["status"] == "fail"
