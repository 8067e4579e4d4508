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
