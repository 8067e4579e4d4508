"""Compare two runs: what broke, what was fixed, which margins moved, what was added or removed.

``diff(old, new)`` matches records by (property, backend target). A *new failure* is a record
that fails or errors in the new run but did not in the old one (or was absent); a *fix* is one
that failed or errored and now passes. Other status changes are listed apart, and so are
tolerance margins (worst error ÷ tolerance) that moved by more than ``threshold`` while the
status stayed the same.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path

from nnspec.reports.results import Record, RunDocument

FAILING = ("fail", "error")
DEFAULT_MARGIN_THRESHOLD = 0.1


@dataclass
class Change:
    """One (property, backend target) whose outcome differs between the two runs."""

    property: str
    backend: str
    old: Record | None
    new: Record | None

    @builtins.property  # the field named 'property' shadows the builtin in this class body
    def old_status(self) -> str:
        return self.old.status if self.old else "absent"

    @builtins.property
    def new_status(self) -> str:
        return self.new.status if self.new else "absent"

    @builtins.property
    def old_ratio(self) -> float | None:
        return self.old.ratio if self.old else None

    @builtins.property
    def new_ratio(self) -> float | None:
        return self.new.ratio if self.new else None

    @builtins.property
    def ratio_change(self) -> float | None:
        old, new = self.old_ratio, self.new_ratio
        if old is None or new is None:
            return None
        return float(new - old)

    @builtins.property
    def message(self) -> str:
        record = self.new or self.old
        return record.message.strip().splitlines()[0] if record and record.message.strip() else ""


@dataclass
class RunDiff:
    """The differences between an old and a new run."""

    new_failures: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    status_changes: list[Change] = field(default_factory=list)
    margin_changes: list[Change] = field(default_factory=list)
    properties_added: list[str] = field(default_factory=list)
    properties_removed: list[str] = field(default_factory=list)
    backends_added: list[str] = field(default_factory=list)
    backends_removed: list[str] = field(default_factory=list)
    threshold: float = DEFAULT_MARGIN_THRESHOLD
    old_environment: dict[str, object] = field(default_factory=dict)
    new_environment: dict[str, object] = field(default_factory=dict)
    #: (property, backend) pairs with a record in one run only, and in both.
    pairs_only_old: int = 0
    pairs_only_new: int = 0
    pairs_shared: int = 0
    #: Lines about the runs themselves (an interrupted run, different coverage).
    notes: list[str] = field(default_factory=list)

    @property
    def has_regressions(self) -> bool:
        """Whether the new run fails anything the old one did not (a CI gate's question)."""
        return bool(self.new_failures)

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.new_failures,
                self.fixed,
                self.status_changes,
                self.margin_changes,
                self.properties_added,
                self.properties_removed,
                self.backends_added,
                self.backends_removed,
            )
        )

    def to_text(self) -> str:
        """A plain-text summary for a terminal or a CI log."""
        lines = [
            f"{len(self.new_failures)} new failure(s), {len(self.fixed)} fixed, "
            f"{len(self.status_changes)} other status change(s), "
            f"{len(self.margin_changes)} margin change(s) above {self.threshold:g} of tolerance"
        ]
        lines.extend(f"Note: {note}" for note in self.notes)

        def section(title: str, changes: list[Change], show_ratio: bool = False) -> None:
            if not changes:
                return
            lines.append("")
            lines.append(f"{title}:")
            for change in changes:
                line = f"  {change.property}[{change.backend}]: {change.old_status} -> {change.new_status}"
                if show_ratio:
                    line += f" (error/tolerance {_ratio(change.old_ratio)} -> {_ratio(change.new_ratio)})"
                elif change.message and change.new_status in FAILING:
                    line += f"  {change.message}"
                lines.append(line)

        section("New failures", self.new_failures)
        section("Fixed", self.fixed)
        section("Other status changes", self.status_changes)
        section("Margins moved", self.margin_changes, show_ratio=True)
        for title, names in (
            ("Properties added", self.properties_added),
            ("Properties removed", self.properties_removed),
            ("Backends added", self.backends_added),
            ("Backends removed", self.backends_removed),
        ):
            if names:
                lines.append("")
                lines.append(f"{title}: {', '.join(names)}")
        if self.empty:
            lines.append("No differences." if not self.notes else "No differences in the pairs both runs checked.")
        return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _property_ids(document: RunDocument) -> set[str]:
    """The properties a run checked: those with a record (a document lists every property's metadata)."""
    return {record.property for record in document.results}


def diff(old: RunDocument, new: RunDocument, threshold: float = DEFAULT_MARGIN_THRESHOLD) -> RunDiff:
    """Compare ``old`` with ``new``; ``threshold`` is the margin move (in units of tolerance) worth listing."""
    old_records = {(record.property, record.backend): record for record in old.results}
    new_records = {(record.property, record.backend): record for record in new.results}
    old_properties, new_properties = _property_ids(old), _property_ids(new)
    old_backends = {record.backend for record in old.results}
    new_backends = {record.backend for record in new.results}
    result = RunDiff(
        properties_added=sorted(new_properties - old_properties),
        properties_removed=sorted(old_properties - new_properties),
        backends_added=sorted(new_backends - old_backends),
        backends_removed=sorted(old_backends - new_backends),
        threshold=threshold,
        old_environment=dict(old.environment),
        new_environment=dict(new.environment),
    )
    result.pairs_only_old = len(set(old_records) - set(new_records))
    result.pairs_only_new = len(set(new_records) - set(old_records))
    result.pairs_shared = len(set(old_records) & set(new_records))
    if result.pairs_only_old or result.pairs_only_new:
        result.notes.append(
            f"the two runs cover different pairs: {len(old_records)} records in the old run, "
            f"{len(new_records)} in the new, {result.pairs_shared} in both; only those are compared")
    for name, document in (("old", old), ("new", new)):
        if document.status != "complete":
            result.notes.append(f"the {name} run is {document.status}: some of its pairs have no record")
    for key in sorted(set(old_records) | set(new_records)):
        change = Change(key[0], key[1], old_records.get(key), new_records.get(key))
        if change.new_status in FAILING and change.old_status not in FAILING:
            result.new_failures.append(change)
        elif change.old_status in FAILING and change.new_status == "pass":
            result.fixed.append(change)
        elif change.old is None or change.new is None:
            # Added or removed records are summarised by the property/backend lists, unless they fail.
            continue
        elif change.old_status != change.new_status:
            result.status_changes.append(change)
        elif change.ratio_change is not None and abs(change.ratio_change) > threshold:
            result.margin_changes.append(change)
    result.margin_changes.sort(key=lambda change: -abs(change.ratio_change or 0.0))
    return result


def render_diff_html(run_diff: RunDiff, title: str = "nnspec run comparison") -> str:
    """Render a diff as one self-contained HTML page (same look as the report)."""
    from nnspec.reports.html import _environment, environment_rows
    from nnspec.reports.text import visible

    template = _environment().get_template("diff.html.j2")
    runs = [
        ("Old run", environment_rows(run_diff.old_environment)),
        ("New run", environment_rows(run_diff.new_environment)),
    ]
    return visible(str(template.render(diff=run_diff, title=title, runs=runs)))


def write_diff_html(run_diff: RunDiff, path: str | Path, title: str = "nnspec run comparison") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_diff_html(run_diff, title), encoding="utf-8")
    return path
