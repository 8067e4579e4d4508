"""JUnit XML from a results document, for CI systems that read test reports.

One ``testsuite`` per backend target, one ``testcase`` per property, named
``<property id>[<target>]`` like the pytest items. A failure or error carries, in its ``message``
attribute, the worst error against its tolerance and the record's first line; in its text, the
property's statement, the whole message, the minimal counterexample and the command that
reproduces it, so a CI system's test tab shows what broke and how to rerun it. Every string passes
through :func:`~nnspec.reports.text.visible`, so control characters or lone surrogates in a
backend's message still give well-formed XML.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path
from typing import Any

from nnspec.reports.results import Record, RunDocument
from nnspec.reports.text import visible

MESSAGE_LIMIT = 300


def _number(value: float) -> str:
    return f"{value:.4g}"


def worst_error_text(record: Record) -> str:
    """``worst error 3e-06 > tolerance 1e-06 (3x)`` or ``""`` when the record measured none."""
    if record.worst_error is None:
        return ""
    text = f"worst error {_number(record.worst_error)}"
    if record.tolerance is not None:
        relation = ">" if record.worst_error > record.tolerance else "<="
        text += f" {relation} tolerance {_number(record.tolerance)}"
        if record.ratio is not None:
            text += f" ({record.ratio:.3g}x)"
    return text


def counterexample_lines(counterexample: dict[str, Any] | None) -> list[str]:
    """The minimal counterexample as indented lines: dtype, seed, draws, then each array."""
    if not counterexample:
        return []
    lines = []
    facts = [f"{name}={counterexample[name]}" for name in ("dtype", "seed") if counterexample.get(name) is not None]
    if counterexample.get("draws"):
        facts.append(f"draws={json.dumps(counterexample['draws'], sort_keys=True, default=str)}")
    if facts:
        lines.append("  " + " ".join(facts))
    shapes = counterexample.get("shapes") or {}
    for name, values in (counterexample.get("arrays") or {}).items():
        shape = f" {tuple(shapes[name])}" if isinstance(shapes.get(name), list) else ""
        lines.append(f"  {name}{shape}: {json.dumps(values, default=str)}")
    for name, shape in shapes.items():
        if name not in (counterexample.get("arrays") or {}):
            lines.append(f"  {name}: shape {shape}")
    return lines


def failure_text(record: Record, meta: dict[str, Any]) -> str:
    """The text of a failure or error: statement, message, worst error, counterexample, reproduce."""
    lines = [f"{record.property} [{record.backend}] ({record.level}): {record.status}"]
    if meta.get("statement"):
        lines += ["", "statement: " + " ".join(str(meta["statement"]).split())]
    if record.message:
        lines += ["", record.message.rstrip()]
    if worst_error_text(record):
        lines += ["", worst_error_text(record)]
    if record.counterexample:
        lines += ["", "minimal counterexample:", *counterexample_lines(record.counterexample)]
    if record.reproduce:
        lines += ["", f"reproduce: {record.reproduce}"]
    return visible("\n".join(lines))


def summary_line(record: Record) -> str:
    """The ``message`` attribute: the worst error against the tolerance, then the message's first line."""
    first = record.message.strip().splitlines()[0] if record.message.strip() else record.status
    measured = worst_error_text(record)
    text = f"{measured}: {first}" if measured and measured not in first else first
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return visible(text)


def build_junit(document: RunDocument) -> ElementTree.Element:
    """The ``testsuites`` element for ``document``."""
    by_backend: dict[str, list[Record]] = defaultdict(list)
    for record in document.results:
        by_backend[record.backend].append(record)
    root = ElementTree.Element("testsuites", name="nnspec", tests=str(len(document.results)))
    for backend, records in sorted(by_backend.items()):
        suite = ElementTree.SubElement(
            root, "testsuite", name=visible(backend), tests=str(len(records)),
            failures=str(sum(r.status == "fail" for r in records)),
            errors=str(sum(r.status == "error" for r in records)),
            skipped=str(sum(r.status in ("skip", "xfail") for r in records)),
            time=f"{sum(r.time_s or 0.0 for r in records):.3f}",
        )
        for record in records:
            meta = document.properties.get(record.property, {})
            case = ElementTree.SubElement(
                suite, "testcase", classname=visible(f"nnspec.{record.topic}" if record.topic else "nnspec"),
                name=visible(f"{record.property}[{backend}]"), time=f"{record.time_s or 0.0:.3f}",
            )
            properties = ElementTree.SubElement(case, "properties")
            for name, value in (("level", record.level), ("examples", record.examples), ("seed", record.seed),
                                ("worst_error", record.worst_error), ("tolerance", record.tolerance),
                                ("reproduce", record.reproduce)):
                if value is not None and value != "":
                    ElementTree.SubElement(properties, "property", name=name, value=visible(str(value)))
            if record.status in ("fail", "error"):
                tag = "failure" if record.status == "fail" else "error"
                ElementTree.SubElement(case, tag, message=summary_line(record),
                                       type=record.status).text = failure_text(record, meta)
            elif record.status in ("skip", "xfail"):
                ElementTree.SubElement(case, "skipped", message=summary_line(record))
            elif record.status == "xpass":
                ElementTree.SubElement(case, "system-out").text = visible(
                    f"passed although a failure was expected: {record.message}".strip())
    return root


def write_junit(document: RunDocument, path: str | Path) -> Path:
    """Write :func:`build_junit`'s XML to ``path`` (parent folders are created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(build_junit(document)).write(path, encoding="utf-8", xml_declaration=True)
    return path
