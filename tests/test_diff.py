"""Comparing two runs: new failures, fixes, status changes, moved margins, added and removed entries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nnspec.reports.diff import diff, render_diff_html

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from report_factory import document, prop, record


def _pairs(changes):
    return [(change.property, change.backend, change.old_status, change.new_status) for change in changes]


@pytest.fixture
def runs():
    old = document(
        [prop("a.breaks"), prop("a.fixed"), prop("a.skips"), prop("a.drifts"), prop("a.steady"), prop("a.gone")],
        [
            record("a.breaks", "numpy", "pass"),
            record("a.fixed", "numpy", "fail"),
            record("a.skips", "numpy", "pass"),
            record("a.drifts", "numpy", "pass", worst_error=1e-7, tolerance=1e-6),
            record("a.steady", "numpy", "pass", worst_error=1e-7, tolerance=1e-6),
            record("a.gone", "numpy", "pass"),
            record("a.breaks", "jax:cpu", "pass"),
        ],
    )
    new = document(
        [prop("a.breaks"), prop("a.fixed"), prop("a.skips"), prop("a.drifts"), prop("a.steady"), prop("a.new")],
        [
            record("a.breaks", "numpy", "error"),
            record("a.fixed", "numpy", "pass"),
            record("a.skips", "numpy", "skip"),
            record("a.drifts", "numpy", "pass", worst_error=8e-7, tolerance=1e-6),
            record("a.steady", "numpy", "pass", worst_error=1.5e-7, tolerance=1e-6),
            record("a.new", "numpy", "fail"),
            record("a.breaks", "torch:cpu", "pass"),
        ],
    )
    return old, new


def test_diff_classifies_each_change(runs):
    result = diff(*runs)
    assert _pairs(result.new_failures) == [("a.breaks", "numpy", "pass", "error"), ("a.new", "numpy", "absent", "fail")]
    assert _pairs(result.fixed) == [("a.fixed", "numpy", "fail", "pass")]
    assert _pairs(result.status_changes) == [("a.skips", "numpy", "pass", "skip")]
    assert _pairs(result.margin_changes) == [("a.drifts", "numpy", "pass", "pass")]
    assert result.margin_changes[0].ratio_change == pytest.approx(0.7)
    assert result.properties_added == ["a.new"]
    assert result.properties_removed == ["a.gone"]
    assert result.backends_added == ["torch:cpu"]
    assert result.backends_removed == ["jax:cpu"]
    assert result.has_regressions


def test_threshold_decides_which_margins_are_listed(runs):
    assert _pairs(diff(*runs, threshold=0.01).margin_changes) == [
        ("a.drifts", "numpy", "pass", "pass"),
        ("a.steady", "numpy", "pass", "pass"),
    ]
    assert diff(*runs, threshold=0.9).margin_changes == []


def test_a_run_compared_with_itself_has_no_differences(runs):
    result = diff(runs[0], runs[0])
    assert result.empty and not result.has_regressions
    assert "No differences." in result.to_text()


def test_text_summary_names_every_change(runs):
    text = diff(*runs).to_text()
    assert text.startswith("2 new failure(s), 1 fixed, 1 other status change(s), 1 margin change(s)")
    for line in ("a.breaks[numpy]: pass -> error", "a.fixed[numpy]: fail -> pass", "a.skips[numpy]: pass -> skip",
                 "Backends added: torch:cpu", "Properties removed: a.gone"):
        assert line in text
    assert "a.drifts[numpy]: pass -> pass (error/tolerance 0.1 -> 0.8)" in text


def test_diff_html_lists_the_changes_and_escapes_strings(runs):
    old, new = runs
    new.results.append(record("a.breaks", "<b>evil</b>", "fail", message="<script>alert(1)</script>"))
    page = render_diff_html(diff(old, new))
    assert page.count("<script") == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-property="a.fixed" data-backend="numpy"' in page
    assert "&lt;b&gt;evil&lt;/b&gt;" in page
