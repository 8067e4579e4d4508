"""The self-contained HTML compliance report, rendered from a results document.

:func:`build_view` turns a :class:`~nnspec.reports.results.RunDocument` into plain view objects
(the compliance matrix, per-backend summaries, failures grouped by root cause, histograms);
:func:`render_report` renders them with Jinja2 (autoescaping on) into one HTML file with inline
CSS, JavaScript and SVG, so the report opens from disk or a CI artifact without a network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from nnspec.reports.console import UNAVAILABLE_PREFIX, is_unavailable
from nnspec.reports.results import STATUSES, Record, RunDocument
from nnspec.reports.text import visible

if TYPE_CHECKING:
    from nnspec.reports.history import HistoryView

LEVELS = ("MUST", "SHOULD", "MAY")
FAILING = ("fail", "error")
NOT_RUN = "notrun"
# Every cell state in the order the legend and the filters list them.
CELL_STATES = ("pass", "fail", "error", "xfail", "xpass", "skip", NOT_RUN)
STATE_LABELS = {
    "pass": "pass",
    "fail": "fail",
    "error": "error",
    "xfail": "xfail",
    "xpass": "xpass",
    "skip": "n/a",
    NOT_RUN: "not run",
}
STATE_TITLES = {
    "pass": "passed",
    "fail": "failed",
    "error": "errored",
    "xfail": "expected failure (known divergence)",
    "xpass": "passed although a failure was expected",
    "skip": "not applicable",
    NOT_RUN: "not run",
}
# Upper edges of the error/tolerance histogram bins; the last bin is open-ended.
RATIO_BIN_EDGES = (1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 10.0)
RATIO_BIN_LABELS = ("<1e-4", "<1e-3", "<0.01", "<0.1", "<0.5", "≤1", "≤10", ">10")

# (label, keys looked up at the top level, then in environment["versions"]), in display order.
_ENVIRONMENT_FIELDS = (
    ("Date", ("date",)),
    ("nnspec", ("nnspec_version", "nnspec")),
    ("Python", ("python",)),
    ("Platform", ("platform",)),
    ("NumPy", ("numpy",)),
    ("PyTorch", ("torch",)),
    ("JAX", ("jax",)),
    ("Hypothesis", ("hypothesis",)),
    ("Devices", ("devices",)),
    ("GPU", ("gpu",)),
    ("Profile", ("profile",)),
    ("Seed", ("seed",)),
    ("Command line", ("command", "command_line", "argv")),
)
_ENVIRONMENT_SHOWN = {key for _, keys in _ENVIRONMENT_FIELDS for key in keys} | {"versions", "backends", "merged_from"}


@dataclass
class Cell:
    """One (property, backend target) square of the matrix."""

    backend: str
    index: int
    state: str
    record: Record | None = None

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def ratio(self) -> float | None:
        return self.record.ratio if self.record else None

    @property
    def ratio_text(self) -> str:
        return format_ratio(self.ratio)

    @property
    def reason(self) -> str:
        """The record's message (an xfail's reason, a skip's missing primitive, a failure's summary)."""
        return self.record.message if self.record else ""

    @property
    def short_reason(self) -> str:
        """The reason's first line, without a prefix that repeats the cell's own label."""
        reason = first_line(self.reason)
        for prefix in ("not applicable: ", "not applicable - "):
            if reason.lower().startswith(prefix):
                return reason[len(prefix) :]
        return reason

    @property
    def measure_text(self) -> str:
        """A failure's worst error against its tolerance, ``3e-06 > 1e-06``; ``""`` when not measured."""
        record = self.record
        if record is None or record.worst_error is None or record.tolerance is None:
            return ""
        relation = ">" if record.worst_error > record.tolerance else "≤"
        return f"{format_number(record.worst_error)} {relation} {format_number(record.tolerance)}"

    @property
    def tooltip(self) -> str:
        parts = [STATE_TITLES[self.state]]
        if self.measure_text:
            parts.append(f"worst error {self.measure_text} (tolerance), {self.ratio_text} of tolerance")
        elif self.ratio is not None:
            parts.append(f"worst error {self.ratio_text} of tolerance")
        if self.reason:
            parts.append(first_line(self.reason))
        return " — ".join(parts)


@dataclass
class Row:
    """One property: its metadata and one cell per backend target."""

    id: str
    title: str
    level: str
    topic: str
    meta: dict[str, Any]
    cells: list[Cell]

    @property
    def tokens(self) -> str:
        """``index:state`` pairs that the page's filter matches against."""
        return " ".join(f"{cell.index}:{cell.state}" for cell in self.cells)

    @property
    def search_text(self) -> str:
        words = [self.id, self.title, self.topic]
        words += [first_line(cell.reason)[:200] for cell in self.cells if cell.state != "pass" and cell.reason]
        return " ".join(words).lower()

    @property
    def failing(self) -> bool:
        return any(cell.state in FAILING for cell in self.cells)


@dataclass
class Topic:
    name: str
    rows: list[Row]

    def count(self, state: str) -> int:
        """Cells in this state (a property failing on three targets counts three times)."""
        return sum(cell.state == state for row in self.rows for cell in row.cells)

    @property
    def failing_properties(self) -> int:
        """Properties that fail or error on at least one target (each property counted once)."""
        return sum(row.failing for row in self.rows)


@dataclass
class BackendSummary:
    """Counts by level and state for one backend target."""

    backend: str
    index: int
    counts: dict[str, dict[str, int]]  # level -> state -> count
    totals: dict[str, int]
    time_s: float

    @property
    def must_failures(self) -> int:
        must = self.counts.get("MUST", {})
        return sum(must.get(state, 0) for state in FAILING)

    @property
    def run(self) -> int:
        return sum(count for state, count in self.totals.items() if state != NOT_RUN)


@dataclass
class Downstream:
    property: str
    state: str
    via: list[str]


@dataclass
class CauseGroup:
    """A failing property on one backend, and every failure downstream of it through depends_on."""

    root: str
    backend: str
    index: int
    record: Record
    topic: str
    level: str
    downstream: list[Downstream] = field(default_factory=list)

    @property
    def tokens(self) -> str:
        states = {self.record.status} | {item.state for item in self.downstream}
        return " ".join(f"{self.index}:{state}" for state in sorted(states))

    @property
    def search_text(self) -> str:
        return " ".join([self.root, self.backend, *(item.property for item in self.downstream)]).lower()


@dataclass
class Bar:
    label: str
    count: int
    x: float
    y: float
    width: float
    height: float
    over: bool


@dataclass
class Histogram:
    backend: str
    index: int
    bars: list[Bar]
    total: int
    width: int
    height: int
    baseline: float
    maximum: int


@dataclass
class UnavailableTarget:
    """A target none of whose pairs could run here: listed once, not shown as a column of skips."""

    backend: str
    reason: str
    counts: dict[str, int]

    @property
    def failing(self) -> int:
        return sum(self.counts.get(state, 0) for state in FAILING)


@dataclass
class ReportView:
    """Everything the template shows, computed once in Python."""

    title: str
    runs: list[dict[str, list[tuple[str, str]]]]
    merged: bool
    backends: list[str]
    topics: list[Topic]
    summaries: list[BackendSummary]
    causes: list[CauseGroup]
    histograms: list[Histogram]
    claims: list[dict[str, Any]]
    totals: dict[str, int]
    unavailable: list[UnavailableTarget] = field(default_factory=list)
    history: HistoryView | None = None
    levels: tuple[str, ...] = LEVELS
    states: tuple[str, ...] = CELL_STATES
    state_labels: dict[str, str] = field(default_factory=lambda: dict(STATE_LABELS))

    @property
    def rows(self) -> list[Row]:
        return [row for topic in self.topics for row in topic.rows]

    def cell(self, property_id: str, backend: str) -> Cell:
        for row in self.rows:
            if row.id == property_id:
                return row.cells[self.backends.index(backend)]
        raise KeyError(property_id)


def format_ratio(ratio: float | None) -> str:
    """Worst error as a share of tolerance: ``3.1%``, ``240%``, ``12×``."""
    if ratio is None or math.isnan(ratio):
        return ""
    if math.isinf(ratio):
        return "∞"
    if ratio >= 10:
        return f"{ratio:.3g}×"
    percent = ratio * 100
    if percent == 0:
        return "0%"
    if percent < 0.01:
        return "<0.01%"
    return f"{percent:.2g}%" if percent < 10 else f"{percent:.0f}%"


def format_number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


def format_environment_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(format_environment_value(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}: {format_environment_value(item)}" for key, item in value.items())
    return "" if value is None else str(value)


def environment_rows(environment: dict[str, Any]) -> list[tuple[str, str]]:
    """Label/value pairs for a run: well-known fields first, in a fixed order, then any others.

    Versions may sit at the top level or under ``versions``; each backend target's own details
    (``backends``: target -> {torch, cuda, gpu, jax_devices, ...}) get a row each, and GPU names
    found there are also collected into the GPU row.
    """
    versions = environment.get("versions") or {}
    backends = environment.get("backends") or {}
    gpus = [str(details["gpu"]) for details in backends.values() if isinstance(details, dict) and details.get("gpu")]
    rows = []
    for label, keys in _ENVIRONMENT_FIELDS:
        value = next((environment[key] for key in keys if key in environment), None)
        if value is None:
            value = next((versions[key] for key in keys if key in versions), None)
        if value is None and label == "GPU" and gpus:
            value = sorted(set(gpus))
        if value is not None:
            rows.append((label, format_environment_value(value)))
    for target, details in sorted(backends.items()):
        rows.append((f"Backend {target}", format_environment_value(details) or "—"))
    for key, value in environment.items():
        if key not in _ENVIRONMENT_SHOWN:
            rows.append((key, format_environment_value(value)))
    return rows


def format_shape(shape: Any) -> str:
    """``[2, 1, 3]`` as ``(2, 1, 3)``; anything else as plain text."""
    if isinstance(shape, (list, tuple)) and all(isinstance(size, int) for size in shape):
        return "(" + ", ".join(str(size) for size in shape) + ("," if len(shape) == 1 else "") + ")"
    return format_environment_value(shape)


def format_array(values: Any) -> str:
    """A counterexample array printed the way NumPy prints it (small arrays in full)."""
    import numpy

    try:
        array = numpy.asarray(values)
        if array.dtype == object:
            raise ValueError("ragged")
        return str(numpy.array2string(array, precision=6, max_line_width=100, threshold=400, edgeitems=4))
    except ValueError:
        return json.dumps(values)


def format_inputs(inputs: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The input domain as readable pairs: ``q_len: 1–16``, ``dtypes: float32, float64``."""
    pairs = []
    for name, value in (inputs or {}).items():
        if isinstance(value, list) and len(value) == 2 and all(isinstance(item, (int, float)) for item in value):
            text = f"{value[0]}–{value[1]}"
        else:
            text = format_environment_value(value)
        pairs.append((name, text))
    return pairs


def format_tolerance(tolerance: dict[str, Any] | None) -> str:
    parts = []
    for name, value in (tolerance or {}).items():
        if isinstance(value, dict):
            inner = ", ".join(f"{key} {format_number(item)}" for key, item in value.items())
            parts.append(f"{name}: {inner}")
        else:
            parts.append(f"{name}: {format_environment_value(value)}")
    return "; ".join(parts)


def format_sources(sources: Any) -> list[tuple[str, str]]:
    if isinstance(sources, dict):
        sources = [sources]
    pairs = []
    for source in sources or []:
        if isinstance(source, dict):
            pairs.append((str(source.get("document", "")), str(source.get("question", ""))))
        else:
            pairs.append((str(source), ""))
    return pairs


def _topic_of(property_id: str, meta: dict[str, Any], records: Iterable[Record]) -> str:
    if meta.get("topic"):
        return str(meta["topic"])
    for record in records:
        if record.topic:
            return str(record.topic)
    return property_id.split(".", 1)[0]


def _level_of(meta: dict[str, Any], records: Iterable[Record]) -> str:
    if meta.get("level") in LEVELS:
        return str(meta["level"])
    for record in records:
        if record.level in LEVELS:
            return str(record.level)
    return "MUST"


def _cause_groups(
    rows: list[Row], backends: list[str], properties: dict[str, dict[str, Any]]
) -> list[CauseGroup]:
    """Group failures by root cause: a failure whose dependency also fails on that backend sits under it."""
    state_of = {(row.id, cell.backend): cell.state for row in rows for cell in row.cells}

    def failing_dependencies(property_id: str, backend: str) -> list[str]:
        dependencies = properties.get(property_id, {}).get("depends_on") or []
        return sorted(dep for dep in dependencies if state_of.get((dep, backend)) in FAILING)

    roots_memo: dict[tuple[str, str], frozenset[str]] = {}

    def roots(property_id: str, backend: str, visiting: frozenset[str]) -> frozenset[str]:
        key = (property_id, backend)
        if key in roots_memo:
            return roots_memo[key]
        found: set[str] = set()
        for dependency in failing_dependencies(property_id, backend):
            if dependency in visiting:  # a dependency cycle: stop here and blame this property
                continue
            found |= roots(dependency, backend, visiting | {property_id})
        result = frozenset(found) if found else frozenset({property_id})
        roots_memo[key] = result
        return result

    groups: dict[tuple[str, str], CauseGroup] = {}
    members: list[tuple[str, str, frozenset[str]]] = []
    for row in rows:
        for cell in row.cells:
            if cell.state not in FAILING or cell.record is None:
                continue
            found = roots(row.id, cell.backend, frozenset())
            if found == {row.id}:
                groups[(row.id, cell.backend)] = CauseGroup(
                    root=row.id,
                    backend=cell.backend,
                    index=cell.index,
                    record=cell.record,
                    topic=row.topic,
                    level=row.level,
                )
            else:
                members.append((row.id, cell.backend, found))
    for property_id, backend, found in members:
        via = failing_dependencies(property_id, backend)
        for root in sorted(found):
            groups[(root, backend)].downstream.append(
                Downstream(property=property_id, state=state_of[(property_id, backend)], via=via)
            )
    ordered = sorted(
        groups.values(),
        key=lambda group: (-len(group.downstream), backends.index(group.backend), group.root),
    )
    for group in ordered:
        group.downstream.sort(key=lambda item: item.property)
    return ordered


def _histogram(backend: str, index: int, ratios: list[float]) -> Histogram:
    counts = [0] * (len(RATIO_BIN_EDGES) + 1)
    for ratio in ratios:
        position = len(RATIO_BIN_EDGES)
        for bin_index, edge in enumerate(RATIO_BIN_EDGES):
            if ratio < edge or (edge == 1.0 and ratio == 1.0):
                position = bin_index
                break
        counts[position] += 1
    width, height, left, bottom, top = 320, 130, 8, 30, 16
    slot = (width - 2 * left) / len(counts)
    maximum = max(counts) if counts else 0
    bars = []
    for bin_index, count in enumerate(counts):
        bar_height = 0.0 if not maximum else (height - bottom - top) * count / maximum
        bars.append(
            Bar(
                label=RATIO_BIN_LABELS[bin_index],
                count=count,
                x=round(left + bin_index * slot + 3, 1),
                y=round(height - bottom - bar_height, 1),
                width=round(slot - 6, 1),
                height=round(bar_height, 1),
                over=bin_index >= RATIO_BIN_EDGES.index(1.0) + 1,
            )
        )
    return Histogram(
        backend=backend,
        index=index,
        bars=bars,
        total=len(ratios),
        width=width,
        height=height,
        baseline=height - bottom,
        maximum=maximum,
    )


def unavailable_targets(document: RunDocument) -> list[UnavailableTarget]:
    """Targets every record of which says the target could not run here (no device, no framework)."""
    by_backend: dict[str, list[Record]] = {}
    for record in document.results:
        by_backend.setdefault(record.backend, []).append(record)
    found = []
    for backend, records in sorted(by_backend.items()):
        if records and all(is_unavailable(record) for record in records):
            reasons = sorted({first_line(record.message)[len(UNAVAILABLE_PREFIX) :] for record in records})
            counts: dict[str, int] = {}
            for record in records:
                counts[record.status] = counts.get(record.status, 0) + 1
            found.append(UnavailableTarget(backend, "; ".join(reasons), counts))
    return found


def build_view(document: RunDocument, title: str = "nnspec compliance report") -> ReportView:
    """Compute the matrix, summaries, cause groups and histograms that the report shows.

    A target that could not run here at all is left out of the matrix and listed once instead
    (:func:`unavailable_targets`); its records still count in the totals.
    """
    unavailable = unavailable_targets(document)
    folded = {target.backend for target in unavailable}
    by_property: dict[str, dict[str, Record]] = {}
    for record in document.results:
        by_property.setdefault(record.property, {})[record.backend] = record
    backends = sorted({record.backend for record in document.results} - folded)
    property_ids = sorted(set(document.properties) | set(by_property))

    topics: dict[str, list[Row]] = {}
    for property_id in property_ids:
        meta = document.properties.get(property_id, {})
        records = by_property.get(property_id, {})
        cells = []
        for index, backend in enumerate(backends):
            found = records.get(backend)
            cells.append(Cell(backend, index, found.status if found else NOT_RUN, found))
        topic = _topic_of(property_id, meta, records.values())
        row = Row(
            id=property_id,
            title=str(meta.get("title") or property_id),
            level=_level_of(meta, records.values()),
            topic=topic,
            meta=meta,
            cells=cells,
        )
        topics.setdefault(topic, []).append(row)
    topic_list = [Topic(name, topics[name]) for name in sorted(topics)]
    rows = [row for topic in topic_list for row in topic.rows]

    summaries = []
    histograms = []
    for index, backend in enumerate(backends):
        counts = {level: dict.fromkeys(CELL_STATES, 0) for level in LEVELS}
        totals = dict.fromkeys(CELL_STATES, 0)
        time_s = 0.0
        ratios = []
        for row in rows:
            cell = row.cells[index]
            counts.setdefault(row.level, dict.fromkeys(CELL_STATES, 0))[cell.state] += 1
            totals[cell.state] += 1
            if cell.record is not None:
                time_s += cell.record.time_s or 0.0
                if cell.ratio is not None and not math.isnan(cell.ratio):
                    ratios.append(cell.ratio)
        summaries.append(BackendSummary(backend, index, counts, totals, time_s))
        histograms.append(_histogram(backend, index, ratios))

    environments = document.environment.get("merged_from") or [document.environment]
    runs = [{"rows": environment_rows(environment)} for environment in environments]
    totals = dict.fromkeys(STATUSES, 0)
    for record in document.results:
        totals[record.status] += 1
    return ReportView(
        title=title,
        runs=runs,
        merged="merged_from" in document.environment,
        backends=backends,
        topics=topic_list,
        summaries=summaries,
        causes=_cause_groups(rows, backends, document.properties),
        histograms=histograms,
        claims=document.claims,
        totals=totals,
        unavailable=unavailable,
    )


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["ratio"] = format_ratio
    environment.filters["number"] = format_number
    environment.filters["first_line"] = first_line
    environment.filters["array"] = format_array
    environment.filters["shape"] = format_shape
    environment.filters["inputs"] = format_inputs
    environment.filters["tolerance"] = format_tolerance
    environment.filters["sources"] = format_sources
    environment.filters["plain"] = format_environment_value
    environment.filters["tojson_text"] = lambda value: json.dumps(value, sort_keys=True, default=str)
    return environment


def render_report(
    document: RunDocument, title: str = "nnspec compliance report", history: HistoryView | None = None
) -> str:
    """Render the whole compliance report as one self-contained HTML page.

    ``history`` (from :func:`nnspec.reports.history.build_history`) adds a run-to-run trend section.
    Any string is accepted: characters HTML cannot carry (NUL, lone surrogates, ...) are shown as
    ``\\xNN``/``\\uNNNN`` escapes (:func:`~nnspec.reports.text.visible`).
    """
    view = build_view(document, title)
    view.history = history
    environment = _environment()
    # Each property's details are rendered here (escaped like the rest of the page) but shipped as
    # one JSON map that the page inserts on demand: thousands of closed panels parsed up front
    # would double the time the page takes to open.
    property_body = getattr(environment.get_template("macros.html.j2").module, "property_body")  # noqa: B009
    details = {row.id: str(property_body(row)) for row in view.rows}
    return visible(str(environment.get_template("report.html.j2").render(view=view, details=details)))


def write_report(
    document: RunDocument,
    path: str | Path,
    title: str = "nnspec compliance report",
    history: HistoryView | None = None,
) -> Path:
    """Write :func:`render_report`'s page to ``path`` (parent folders are created) and return the path.

    The page is rendered in full before the file is touched, and written next to it first, so a
    failure never leaves an empty or half-written report behind.
    """
    path = Path(path)
    page = render_report(document, title, history)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(path)
    return path
