"""Run-to-run history: several results documents of the same pairs, oldest first, as a trend.

:func:`build_history` reads the runs' records only. The report shows the trend of the runs' totals
as stacked bars, then every (property, target) pair whose status changed across the runs, with
one square per run, the runs in which it changed, and whether the latest run made it better or
worse. Pairs whose status never changed are counted, not listed.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnspec.reports.results import RunDocument, load

NOT_RUN = "notrun"
# Bottom to top in a stacked bar; also the order of the legend.
TREND_STATES = ("pass", "xfail", "skip", "xpass", "error", "fail")
FAILING = ("fail", "error")


@dataclass
class HistoryRun:
    """One run: a label (its file or date), its totals, and its bar in the trend chart."""

    label: str
    date: str
    totals: dict[str, int]
    segments: list[tuple[str, int, float, float]] = field(default_factory=list)  # state, count, y, height

    @property
    def failing(self) -> int:
        return sum(self.totals.get(state, 0) for state in FAILING)

    @property
    def total(self) -> int:
        return sum(self.totals.values())


@dataclass
class PairHistory:
    """One (property, target) pair's status in each run (``notrun`` where a run had no record)."""

    property: str
    backend: str
    states: list[str]
    ratios: list[float | None]

    @builtins.property  # the field ``property`` shadows the builtin inside this class body
    def changes(self) -> list[int]:
        """Indexes of the runs in which the status differs from the run before."""
        return [index for index in range(1, len(self.states)) if self.states[index] != self.states[index - 1]]

    @builtins.property
    def latest(self) -> str:
        return self.states[-1]

    @builtins.property
    def trend(self) -> str:
        """``worse``/``better`` when the latest run started or stopped failing, else ``changed``."""
        before, now = self.states[-2] if len(self.states) > 1 else NOT_RUN, self.states[-1]
        if now in FAILING and before not in FAILING:
            return "worse"
        if before in FAILING and now not in FAILING:
            return "better"
        return "changed"

    @builtins.property
    def flips(self) -> int:
        return len(self.changes)


@dataclass
class HistoryView:
    runs: list[HistoryRun]
    changed: list[PairHistory]
    stable: int
    chart_width: int
    chart_height: int
    states: tuple[str, ...] = TREND_STATES

    @property
    def pairs(self) -> int:
        return len(self.changed) + self.stable


def _date(environment: dict[str, Any]) -> str:
    """The run's date; a merged run's is the latest of its shards'."""
    dates = [str(run.get("date")) for run in environment.get("merged_from") or [environment] if run.get("date")]
    return max(dates, default="")


def build_history(documents: list[RunDocument], labels: list[str] | None = None) -> HistoryView:
    """The trend over ``documents`` (oldest first); ``labels`` name the runs (default: their dates)."""
    labels = labels or [_date(document.environment) or f"run {index + 1}" for index, document in enumerate(documents)]
    states: dict[tuple[str, str], list[str]] = {}
    ratios: dict[tuple[str, str], list[float | None]] = {}
    runs = []
    for index, document in enumerate(documents):
        totals: dict[str, int] = {}
        for record in document.results:
            key = (record.property, record.backend)
            states.setdefault(key, [NOT_RUN] * len(documents))[index] = record.status
            ratios.setdefault(key, [None] * len(documents))[index] = record.ratio
            totals[record.status] = totals.get(record.status, 0) + 1
        runs.append(HistoryRun(labels[index], _date(document.environment), totals))

    chart_height, bar_top, bar_bottom = 150, 8, 128
    tallest = max((run.total for run in runs), default=0) or 1
    for run in runs:
        y = float(bar_bottom)
        for state in TREND_STATES:
            count = run.totals.get(state, 0)
            height = (bar_bottom - bar_top) * count / tallest
            y -= height
            if count:
                run.segments.append((state, count, round(y, 1), round(height, 1)))

    pairs = [PairHistory(key[0], key[1], states[key], ratios[key]) for key in sorted(states)]
    changed = [pair for pair in pairs if pair.changes]
    order = {"worse": 0, "changed": 1, "better": 2}
    changed.sort(key=lambda pair: (order[pair.trend], -pair.flips, pair.property, pair.backend))
    return HistoryView(
        runs=runs,
        changed=changed,
        stable=len(pairs) - len(changed),
        chart_width=max(240, 60 * len(runs) + 20),
        chart_height=chart_height,
    )


def load_history(paths: list[str | Path]) -> tuple[RunDocument, HistoryView]:
    """The latest run (the last path) and the history of all of them, each labelled by its file name
    (or by its whole path, where two runs share a file name, as ``ci/123/latest.json`` and ``ci/124/latest.json`` do)."""
    documents = [load(path) for path in paths]
    names = [Path(path).name for path in paths]
    labels = names if len(set(names)) == len(names) else [str(path) for path in paths]
    return documents[-1], build_history(documents, labels)
