"""The HTML compliance report: matrix, summaries, grouping by cause, escaping, merging shards."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from nnspec.errors import ResultsError
from nnspec.reports.html import build_view, format_ratio, render_report, write_report
from nnspec.reports.results import RunDocument, load, merge

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from report_factory import details_from_html, document, matrix_from_html, prop, record, sample_document


def test_matrix_cells_match_the_records():
    run = sample_document()
    cells = matrix_from_html(render_report(run))
    backends = {item.backend for item in run.results}
    expected = {(item.property, item.backend): item.status for item in run.results}
    for property_id in run.properties:
        for backend in backends:
            expected.setdefault((property_id, backend), "notrun")
    assert cells == expected
    assert cells[("rope.relative", "jax:cpu")] == "notrun"


def test_a_property_known_only_from_its_records_still_gets_a_row():
    run = document([], [record("softmax.orphan", "numpy", "fail")])
    assert matrix_from_html(render_report(run)) == {("softmax.orphan", "numpy"): "fail"}


def test_cells_show_worst_error_as_a_share_of_tolerance():
    run = sample_document()
    view = build_view(run)
    for item in run.results:
        cell = view.cell(item.property, item.backend)
        assert cell.ratio == item.ratio
        if item.ratio is not None:
            assert format_ratio(item.ratio) in cell.tooltip


@pytest.mark.parametrize(
    ("ratio", "text"),
    [(None, ""), (0.0, "0%"), (1e-7, "<0.01%"), (0.031, "3.1%"), (0.5, "50%"), (2.4, "240%"), (12.0, "12×")],
)
def test_format_ratio(ratio, text):
    assert format_ratio(ratio) == text


def test_backend_summary_counts_by_level():
    run = sample_document()
    view = build_view(run)
    level_of = {property_id: meta["level"] for property_id, meta in run.properties.items()}
    for summary in view.summaries:
        expected = Counter(
            (level_of[item.property], item.status) for item in run.results if item.backend == summary.backend
        )
        for (level, status), count in expected.items():
            assert summary.counts[level][status] == count
        assert summary.run == sum(expected.values())
        assert summary.must_failures == sum(
            count for (level, status), count in expected.items() if level == "MUST" and status in ("fail", "error")
        )


def test_failures_are_grouped_under_their_root_cause():
    view = build_view(sample_document())
    groups = {(group.root, group.backend): group for group in view.causes}
    torch_root = groups[("softmax.row_sums", "torch:cpu")]
    assert [item.property for item in torch_root.downstream] == ["attention.output", "tiled.matches_dense"]
    assert {item.property: item.via for item in torch_root.downstream}["tiled.matches_dense"] == ["attention.output"]
    # Downstream failures are not roots of their own, on that backend.
    assert ("attention.output", "torch:cpu") not in groups
    assert ("tiled.matches_dense", "torch:cpu") not in groups
    # On jax:cpu the dependency passes, so the failure is its own cause.
    assert groups[("tiled.matches_dense", "jax:cpu")].downstream == []
    assert len(view.causes) == 2


def test_a_passing_dependency_breaks_the_chain():
    run = document(
        [prop("a.root"), prop("a.middle", depends_on=["a.root"]), prop("a.leaf", depends_on=["a.middle"])],
        [record("a.root", "numpy", "fail"), record("a.middle", "numpy", "pass"), record("a.leaf", "numpy", "fail")],
    )
    roots = sorted(group.root for group in build_view(run).causes)
    assert roots == ["a.leaf", "a.root"]


def test_a_failure_with_two_failing_dependencies_sits_under_both_and_cycles_terminate():
    run = document(
        [
            prop("x.one"),
            prop("x.two"),
            prop("x.both", depends_on=["x.one", "x.two"]),
            prop("y.first", depends_on=["y.second"]),
            prop("y.second", depends_on=["y.first"]),
        ],
        [
            record("x.one", "numpy", "fail"),
            record("x.two", "numpy", "error"),
            record("x.both", "numpy", "fail"),
            record("y.first", "numpy", "fail"),
            record("y.second", "numpy", "fail"),
        ],
    )
    groups = {group.root: [item.property for item in group.downstream] for group in build_view(run).causes}
    assert groups["x.one"] == ["x.both"]
    assert groups["x.two"] == ["x.both"]
    # Every failure in the cycle appears somewhere, and the grouping finished.
    in_cycle = {name for root, items in groups.items() for name in [root, *items] if name.startswith("y.")}
    assert in_cycle == {"y.first", "y.second"}


def test_strings_from_specs_and_backends_are_escaped():
    payload = "<script>window.pwned=1</script>"
    run = document(
        [prop("softmax.evil", title=f"Title {payload}", statement=f"Statement {payload}", formula=payload)],
        [
            record(
                "softmax.evil",
                f"evil{payload}",
                "fail",
                message=f"boom {payload}",
                reproduce=f"nnspec run {payload}",
                counterexample={"shapes": {"x": [1]}, "dtype": payload, "arrays": {payload: [1.0]}},
            )
        ],
        environment={"command": f"nnspec {payload}", payload: payload},
        claims=[{"id": "softmax.claims.evil", "source": [{"document": payload, "question": payload}],
                 "claim": payload, "claimed": payload, "computed": [payload], "verdict": "holds",
                 "explanation": payload, "code": payload}],
    )
    page = render_report(run)
    # Only the report's own two scripts: its JavaScript and the JSON map of property details.
    assert re.findall(r"<script[^>]*>", page) == ['<script type="application/json" id="property-details">', "<script>"]
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert "pwned=1</script>" not in page
    panel = details_from_html(page)["softmax.evil"]
    assert "<script" not in panel
    assert panel.count("&lt;script&gt;window.pwned=1&lt;/script&gt;") >= 4  # statement, formula, message, ...
    for attribute in re.findall(r'data-text="([^"]*)"', page):
        assert "<" not in attribute


def test_the_report_is_self_contained():
    page = render_report(sample_document())
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page
    assert page.count("<svg") == 1 + 3  # the grid and one histogram per backend


def test_a_failure_shows_its_counterexample_and_reproduce_command():
    run = sample_document()
    failing = next(item for item in run.results if item.status == "fail")
    details = details_from_html(render_report(run))[failing.property]
    assert failing.reproduce in details
    assert 'class="copy"' in details
    assert failing.counterexample is not None
    for row in failing.counterexample["arrays"]["x"][0]:
        for number in row:
            assert re.search(rf"(?<![\d.]){re.escape(str(number).rstrip('0'))}", details), number
    assert failing.counterexample["dtype"] in details


def test_histograms_count_every_measured_ratio():
    run = sample_document()
    view = build_view(run)
    for histogram in view.histograms:
        ratios = [item.ratio for item in run.results if item.backend == histogram.backend and item.ratio is not None]
        assert sum(bar.count for bar in histogram.bars) == len(ratios)
        assert sum(bar.count for bar in histogram.bars if bar.over) == sum(ratio > 1 for ratio in ratios)


def test_environment_and_claims_are_shown():
    run = sample_document()
    page = render_report(run)
    for value in ("NVIDIA H100 80GB HBM3", run.environment["command"], run.environment["torch"]):
        assert value in page
    claim = run.claims[0]
    assert 'id="claims"' in page
    assert f'data-claim="{claim["id"]}" data-verdict="{claim["verdict"]}"' in page
    assert 'id="claims"' not in render_report(document([], []))


def test_merging_two_shards_gives_one_report_with_both_runs():
    full = sample_document()
    shards = []
    for number, backends in enumerate((("numpy",), ("torch:cpu", "jax:cpu")), start=1):
        shards.append(
            document(
                list(full.properties.values()),
                [item for item in full.results if item.backend in backends],
                environment={"command": f"nnspec run --shard {number}", "seed": number},
                claims=full.claims,
            )
        )
    merged = merge(shards)
    assert [run["command"] for run in merged.environment["merged_from"]] == [
        "nnspec run --shard 1",
        "nnspec run --shard 2",
    ]
    page = render_report(merged)
    assert matrix_from_html(page) == matrix_from_html(render_report(full))
    assert "nnspec run --shard 1" in page and "nnspec run --shard 2" in page
    assert len(merged.claims) == 1


def test_merge_later_documents_win_and_merged_runs_flatten(tmp_path):
    first = document([prop("a.one")], [record("a.one", "numpy", "fail")], environment={"command": "first"})
    second = document([prop("a.one")], [record("a.one", "numpy", "pass")], environment={"command": "second"})
    third = document([prop("a.two")], [record("a.two", "numpy", "pass")], environment={"command": "third"})
    merged = merge([merge([first, second]), third])
    assert [run["command"] for run in merged.environment["merged_from"]] == ["first", "second", "third"]
    # Overlapping shards: the most severe status wins (a failure is never dropped), and it is listed.
    assert {(item.property, item.status) for item in merged.results} == {("a.one", "fail"), ("a.two", "pass")}
    assert any("conflict: a.one" in warning for warning in merged.warnings)
    # The merge survives a round trip through JSON.
    merged.write(tmp_path / "merged.json")
    assert matrix_from_html(render_report(load(tmp_path / "merged.json"))) == matrix_from_html(
        render_report(merged)
    )


def test_merge_of_nothing_is_an_error():
    with pytest.raises(ResultsError, match="at least one results document"):
        merge([])


def test_an_empty_document_renders():
    page = render_report(RunDocument())
    assert "This document holds no results." in page
    assert matrix_from_html(page) == {}


def test_write_report_writes_the_rendered_page(tmp_path):
    run = sample_document()
    path = write_report(run, tmp_path / "nested" / "report.html")
    assert path.read_text(encoding="utf-8") == render_report(run)


def test_environment_in_the_runners_shape_shows_versions_and_the_gpu():
    from nnspec.reports.html import environment_rows

    environment = {
        "date": "2026-11-23T06:00:00+00:00",
        "nnspec_version": "0.1.0",
        "python": "3.11.9",
        "versions": {"numpy": "2.1.0", "torch": "2.13.0", "jax": "0.4.35"},
        "backends": {"torch:cuda": {"torch": "2.13.0", "cuda": "12.4", "gpu": "NVIDIA H100 80GB HBM3"}},
        "profile": "ci",
        "seed": 7,
        "command": "nnspec run --backend torch:cuda",
        "hostname": "runner-3",
    }
    rows = dict(environment_rows(environment))
    assert rows["NumPy"] == "2.1.0" and rows["PyTorch"] == "2.13.0" and rows["JAX"] == "0.4.35"
    assert rows["GPU"] == "NVIDIA H100 80GB HBM3"
    assert "gpu: NVIDIA H100 80GB HBM3" in rows["Backend torch:cuda"]
    assert rows["hostname"] == "runner-3"
    assert rows["Seed"] == "7"


def test_every_property_has_a_detail_panel_with_its_metadata():
    run = sample_document()
    details = details_from_html(render_report(run))
    assert set(details) == set(run.properties)
    for property_id, meta in run.properties.items():
        panel = details[property_id]
        assert meta["statement"] in panel
        assert meta["formula"] in panel
        assert meta["source"][0]["question"].replace("&", "&amp;") in panel
        for dependency in meta.get("depends_on", []):
            assert f'href="#p-{dependency}"' in panel
        backends = {item.backend for item in run.results}
        assert {f'data-backend="{backend}"' for backend in backends} <= set(re.findall(r'data-backend="[^"]*"', panel))


# --- The first ten minutes (issue 14): counts, cells, layout order, unavailable targets, history ---


def _masking_run():
    """Three masking properties failing on two targets each, one passing: cells 6, properties 3."""
    properties = [prop(f"masking.p{number}") for number in range(4)]
    records = []
    for number in range(4):
        for backend in ("numpy", "torch:cpu", "jax:cpu"):
            failing = number < 3 and backend != "numpy"
            records.append(record(f"masking.p{number}", backend, "fail" if failing else "pass"))
    return document(properties, records)


def test_topic_counts_count_failing_properties_not_cells():
    run = _masking_run()
    topic = build_view(run).topics[0]
    assert topic.count("fail") == 6
    assert topic.failing_properties == 3
    page = render_report(run)
    assert re.search(r'data-properties="4" data-failing="3">4 properties · 3 failing<', page)


def test_a_failing_cell_shows_its_worst_error_against_its_tolerance():
    run = document([prop("softmax.a")], [record("softmax.a", "numpy", "fail", worst_error=7.63e4, tolerance=1e-6)])
    cell = build_view(run).cell("softmax.a", "numpy")
    assert cell.measure_text == "7.63e+04 > 1e-06"
    page = render_report(run)
    assert '<b class="m">7.63e+04 &gt; 1e-06</b>' in page
    # A passing cell keeps the short share of tolerance.
    passing = document([prop("softmax.a")], [record("softmax.a", "numpy", "pass")])
    assert "<i>20%</i>" in render_report(passing)


def test_the_matrix_comes_first_and_the_environment_is_folded():
    page = render_report(sample_document())
    order = [page.index(f'<section id="{name}"') for name in ("matrix", "causes", "summary", "run")]
    assert order == sorted(order)
    run_section = page[page.index('<section id="run"') :]
    assert run_section.index('<details class="env-fold">') < run_section.index("<table>")
    assert "scroll-margin-top" in page


def test_unavailable_targets_are_listed_once_not_shown_as_columns():
    records = [record("softmax.a", "numpy", "pass"), record("softmax.b", "numpy", "fail")]
    for target in ("torch:cuda", "torch:cuda/flash"):
        records += [record(name, target, "skip", message="backend unavailable: no CUDA device")
                    for name in ("softmax.a", "softmax.b")]
    run = document([prop("softmax.a"), prop("softmax.b")], records)
    view = build_view(run)
    assert view.backends == ["numpy"]
    assert [(item.backend, item.reason, item.counts) for item in view.unavailable] == [
        ("torch:cuda", "no CUDA device", {"skip": 2}),
        ("torch:cuda/flash", "no CUDA device", {"skip": 2}),
    ]
    page = render_report(run)
    assert set(matrix_from_html(page)) == {("softmax.a", "numpy"), ("softmax.b", "numpy")}
    assert page.count("no CUDA device:") == 1  # one line for both targets
    assert 'data-unavailable="torch:cuda"' in page and 'data-unavailable="torch:cuda/flash"' in page
    assert view.totals["skip"] == 4  # still counted


def test_an_unavailable_target_that_errored_makes_the_verdict_bad():
    run = document([prop("softmax.a")], [
        record("softmax.a", "numpy", "pass"),
        record("softmax.a", "torch:cuda", "error", message="backend unavailable: no CUDA device"),
    ])
    page = render_report(run)
    assert 'id="verdict">1 target could not run<' in page


@pytest.mark.parametrize(
    "nasty",
    ["NUL \x00 ESC \x1b[31mred\x1b[0m BEL \x07", "lone surrogate \udc80 and \ud83d", "C1 \x85 DEL \x7f \ufffe"],
    ids=["controls", "surrogates", "c1-and-nonchars"],
)
def test_any_string_gives_a_parseable_html_report_and_junit(tmp_path, nasty):
    import xml.etree.ElementTree as ElementTree

    from nnspec.reports.junit import write_junit

    run = document(
        [prop("softmax.nasty", title=nasty, statement=nasty)],
        [record("softmax.nasty", "numpy", "fail", message=nasty, reproduce=nasty,
                counterexample={"dtype": nasty, "arrays": {"x": [1.0]}, "shapes": {"x": [1]}}),
         record("softmax.nasty", "torch:cpu", "error", message=nasty),
         record("softmax.nasty", "jax:cpu", "skip", message=nasty)],
        environment={"command": nasty},
    )
    html_path = write_report(run, tmp_path / "report.html")
    page = html_path.read_bytes().decode("utf-8")  # strict: valid UTF-8
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]", page)
    assert "\\x00" in page or "\\udc80" in page or "\\x85" in page
    details_from_html(page)  # the embedded JSON still parses
    junit_path = write_junit(run, tmp_path / "junit.xml")
    root = ElementTree.parse(junit_path).getroot()  # raises on malformed XML
    failure = root.find(".//failure")
    assert failure is not None and failure.text is not None
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]", failure.text)


def test_a_report_that_cannot_render_leaves_the_old_file_alone(tmp_path, monkeypatch):
    import nnspec.reports.html as html

    path = tmp_path / "report.html"
    path.write_text("the previous report")

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(html, "render_report", broken)
    with pytest.raises(RuntimeError, match="template exploded"):
        html.write_report(sample_document(), path)
    assert path.read_text() == "the previous report"
    assert list(tmp_path.iterdir()) == [path]


def test_junit_failures_carry_statement_worst_error_counterexample_and_reproduce(tmp_path):
    import xml.etree.ElementTree as ElementTree

    from nnspec.reports.junit import write_junit

    run = sample_document()
    root = ElementTree.parse(write_junit(run, tmp_path / "junit.xml")).getroot()
    case = root.find(".//testcase[@name='softmax.row_sums[torch:cpu]']")
    assert case is not None and case.get("classname") == "nnspec.softmax"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("worst error 3e-06 > tolerance 1e-06 (3x): max |out")
    text = failure.text or ""
    failing = next(item for item in run.results if item.property == "softmax.row_sums" and item.status == "fail")
    assert "statement: Statement of softmax.row_sums." in text
    assert failing.message in text
    assert "minimal counterexample:" in text and "dtype=float32" in text and "x (1, 2, 3): [[[0.5, -1.0, 2.0]" in text
    assert text.rstrip().endswith(f"reproduce: {failing.reproduce}")
    properties = {item.get("name"): item.get("value") for item in case.iter("property")}
    assert properties["reproduce"] == failing.reproduce and properties["level"] == "MUST"
    error = root.find(".//testcase[@name='tiled.matches_dense[torch:cpu]']/error")
    assert error is not None and "Traceback line 2" in (error.text or "")
    skipped = root.find(".//testcase[@name='rope.relative[numpy]']/skipped")
    assert skipped is not None and skipped.get("message") == "backend lacks primitive 'rope'"
    suite = root.find("testsuite[@name='torch:cpu']")
    assert suite is not None and (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("2", "1", "1")


def test_skips_are_summarised_by_cause_and_unavailable_targets_named_once():
    from nnspec.reports.console import summarise_skips

    records = [record(f"lstm.p{n}", target, "skip", message="not applicable: the backend has no lstm_cell")
               for n in range(3) for target in ("torch:cpu/flash", "torch:cpu/math")]
    records += [record(f"lstm.p{n}", "torch:cuda", "skip", message="backend unavailable: no CUDA device")
                for n in range(3)]
    records += [record("softmax.a", "numpy", "skip", message="not applicable: the backend computes in none of ['float16']"),
                record("softmax.b", "numpy", "pass")]
    assert summarise_skips(records) == [
        "10 skipped: 7 not applicable, 3 unavailable",
        "  6 not applicable: no lstm_cell (on torch:cpu/flash, torch:cpu/math)",
        "  3 unavailable: 1 target cannot run here (no CUDA device): torch:cuda",
        "  1 not applicable: the backend computes in none of ['float16'] (on numpy)",
    ]
    assert summarise_skips([record("softmax.b", "numpy", "pass")]) == []


def _history_runs():
    runs = []
    for states in (("pass", "pass"), ("fail", "pass"), ("fail", "pass"), ("pass", "error")):
        runs.append(document(
            [prop("softmax.a"), prop("softmax.b")],
            [record("softmax.a", "numpy", states[0]), record("softmax.b", "numpy", states[1]),
             record("softmax.c", "numpy", "pass")],
        ))
    return runs


def test_history_lists_the_pairs_that_changed_with_one_state_per_run():
    from nnspec.reports.history import build_history

    history = build_history(_history_runs(), labels=["r1.json", "r2.json", "r3.json", "r4.json"])
    assert [run.totals for run in history.runs] == [
        {"pass": 3}, {"fail": 1, "pass": 2}, {"fail": 1, "pass": 2}, {"pass": 2, "error": 1}]
    changed = {(pair.property, pair.backend): pair for pair in history.changed}
    assert set(changed) == {("softmax.a", "numpy"), ("softmax.b", "numpy")}
    assert changed[("softmax.a", "numpy")].states == ["pass", "fail", "fail", "pass"]
    assert changed[("softmax.a", "numpy")].changes == [1, 3]
    assert changed[("softmax.a", "numpy")].trend == "better"
    assert changed[("softmax.b", "numpy")].trend == "worse"
    assert history.changed[0].property == "softmax.b"  # what got worse comes first
    assert history.stable == 1
    assert history.runs[0].date == "2026-11-23T06:00:00Z"
    merged = build_history([document([], [], environment={"merged_from": [{"date": "2026-11-01"}, {"date": "2026-11-03"}]})])
    assert merged.runs[0].date == "2026-11-03" and merged.runs[0].label == "2026-11-03"
    # Bar heights follow the counts: every run here has three results, so every bar is as tall.
    heights = {round(sum(segment[3] for segment in run.segments), 1) for run in history.runs}
    assert len(heights) == 1


def test_report_history_command_renders_the_latest_run_with_its_trend(tmp_path, capsys):
    from nnspec.cli import main

    paths = []
    for number, run in enumerate(_history_runs(), start=1):
        run.write(tmp_path / f"run{number}.json")
        paths.append(str(tmp_path / f"run{number}.json"))
    output = tmp_path / "history.html"
    assert main(["report", "--history", *paths, "-o", str(output)]) == 0
    assert "history of 4 runs (2 pairs changed status)" in capsys.readouterr().out
    page = output.read_text(encoding="utf-8")
    assert matrix_from_html(page)[("softmax.b", "numpy")] == "error"  # the matrix is the latest run's
    assert 'data-pair="softmax.a|numpy" data-trend="better" data-states="pass,fail,fail,pass"' in page
    assert 'data-pair="softmax.b|numpy" data-trend="worse" data-states="pass,pass,pass,error"' in page
    assert page.count('<g data-run="') == 4
    assert 'href="#history"' in page
    assert 'id="history"' not in render_report(_history_runs()[-1])


# --- Set-up (issue 14): progress, next steps, every output's path, no packaging warnings ---

ROOT = Path(__file__).resolve().parent.parent


def _make_dry_run(tmp_path, target):
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is absent")
    # A venv path that does not exist, so make plans the whole set-up; -n runs nothing.
    finished = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={tmp_path / 'venv'}"],
                              capture_output=True, text=True, check=True)
    return finished.stdout


def test_make_setup_shows_pip_progress_and_ends_with_the_next_commands(tmp_path):
    plan = _make_dry_run(tmp_path, "setup")
    # the downloads show their progress; the link tree's relink (no dependencies, seconds) may be quiet
    installs = [line for line in plan.splitlines() if "pip install" in line and "--no-deps" not in line]
    assert len(installs) == 2 and all("--progress-bar on" in line and "--quiet" not in line for line in installs)
    # what set-up prints once the install is done (the link tree's check follows it)
    lines = plan.strip().splitlines()
    last = lines[max(i for i, line in enumerate(lines) if "'.[dev]'" in line) + 1:]
    assert any("make run" in line for line in last) and any("make test" in line for line in last)
    assert any(f"{tmp_path / 'venv'}/bin/nnspec" in line and "activate" in line for line in last)


def test_make_run_names_every_output_and_how_to_call_nnspec(tmp_path):
    plan = _make_dry_run(tmp_path, "run")
    run_part = plan[plan.index("nnspec run --json") :]
    for output in ("latest.json", "latest.jsonl", "compliance.html", "junit.xml"):
        assert output in run_part
    assert "--junitxml reports/junit.xml" in run_part
    assert f"{tmp_path / 'venv'}/bin/nnspec run" in run_part and "/bin/activate" in run_part


def test_pyproject_declares_an_spdx_license_with_a_setuptools_that_reads_it():
    tomllib = pytest.importorskip("tomllib")

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert project["build-system"]["requires"] == ["setuptools>=77"]  # PEP 639 license strings
    packages = set(project["tool"]["setuptools"]["packages"])
    # Data folders listed as packages, so setuptools ships them without an "absent from packages" warning.
    assert {"nnspec.schema", "nnspec.backends.divergences", "nnspec.reports.templates"} <= packages


def test_nnspec_run_ends_with_skips_by_cause_and_every_outputs_path(tmp_path, capsys):
    from nnspec.cli import main

    paths = {"results": tmp_path / "run.json", "records": tmp_path / "run.jsonl",
             "report": tmp_path / "run.html", "junit": tmp_path / "junit.xml"}
    # No --backend: every target found runs, and the ones that cannot run here are listed once.
    status = main(["run", "-p", "softmax.rows.sum_to_one", "--profile", "quick",
                   "--json", str(paths["results"]), "--html", str(paths["report"]),
                   "--junitxml", str(paths["junit"]), "--no-claims"])
    out = capsys.readouterr().out
    assert status == 0
    tail = out[out.index("outputs:") :].splitlines()
    assert [line.split()[0] for line in tail[1:]] == [f"{label}:" for label in paths]
    for label, path in paths.items():
        assert path.exists() and any(line.endswith(str(path)) for line in tail), label
    if "torch:cuda: unavailable" in out:  # no GPU here: named once at the start, never run
        assert not re.search(r"\[torch:cuda[^\]]*\]", out)  # no progress line per property for them


def test_the_diff_page_survives_any_string_too():
    from nnspec.reports.diff import diff, render_diff_html

    nasty = "ESC \x1b NUL \x00 surrogate \udc80"
    old = document([prop("softmax.a")], [record("softmax.a", "numpy", "pass")], environment={"command": nasty})
    new = document([prop("softmax.a")], [record("softmax.a", "numpy", "fail", message=nasty)], environment={"command": nasty})
    page = render_diff_html(diff(old, new))
    page.encode("utf-8")  # strict: no lone surrogate left
    assert "\\x1b" in page and "\\udc80" in page


def test_record_detail_shows_compile_time_where_the_backend_compiled():
    run = document([prop("softmax.a"), prop("softmax.b")],
                   [record("softmax.a", "jax:cpu", "pass", compile_s=1.375), record("softmax.b", "jax:cpu", "pass"),
                    record("softmax.b", "numpy:cpu", "pass", compile_s=None)])
    details = details_from_html(render_report(run))
    assert "1.38 s compiling" in details["softmax.a"]
    assert "compiling" not in details["softmax.b"]
