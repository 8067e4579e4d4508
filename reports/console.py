"""Plain-text summaries of a run for the console, computed from its records alone."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from nnspec.reports.results import Record

UNAVAILABLE_PREFIX = "backend unavailable: "
NOT_APPLICABLE_PREFIX = "not applicable: "
_MISSING = re.compile(r"^the backend has no (?P<names>.+)$")
_SHOWN_TARGETS = 4


def is_unavailable(record: Record) -> bool:
    """Whether the record says its target could not run here at all (no device, no framework)."""
    return record.message.startswith(UNAVAILABLE_PREFIX)


def skip_cause(record: Record) -> tuple[str, str]:
    """``(kind, detail)`` of a skip: kind is "not applicable", "unavailable" or "skipped"."""
    message = record.message.strip().splitlines()[0] if record.message.strip() else ""
    if message.startswith(UNAVAILABLE_PREFIX):
        return "unavailable", message[len(UNAVAILABLE_PREFIX) :]
    if message.lower().startswith(NOT_APPLICABLE_PREFIX):
        detail = message[len(NOT_APPLICABLE_PREFIX) :]
        missing = _MISSING.match(detail)
        return "not applicable", f"no {missing['names']}" if missing else detail
    return "skipped", message or "no reason given"


def _targets_text(targets: Iterable[str]) -> str:
    ordered = sorted(set(targets))
    shown = ", ".join(ordered[:_SHOWN_TARGETS])
    if len(ordered) > _SHOWN_TARGETS:
        shown += f" and {len(ordered) - _SHOWN_TARGETS} more"
    return shown


def summarise_skips(records: Iterable[Record]) -> list[str]:
    """The run's skips summarised by cause, largest first; an empty list when nothing was skipped.

    The first line is the total split by kind (``163 skipped: 158 not applicable, 5 unavailable``);
    each following line is one cause with its count and the targets it hit, so an unavailable
    target is named once, with its reason, rather than once per property.
    """
    skips = [record for record in records if record.status == "skip"]
    if not skips:
        return []
    causes: dict[tuple[str, str], list[Record]] = {}
    for record in skips:
        causes.setdefault(skip_cause(record), []).append(record)
    kinds: dict[str, int] = {}
    for (kind, _), members in causes.items():
        kinds[kind] = kinds.get(kind, 0) + len(members)
    lines = [f"{len(skips)} skipped: " + ", ".join(f"{count} {kind}" for kind, count in
                                                   sorted(kinds.items(), key=lambda item: (-item[1], item[0])))]
    width = len(str(max(len(members) for members in causes.values())))
    for (kind, detail), members in sorted(causes.items(), key=lambda item: (-len(item[1]), item[0])):
        if kind == "unavailable":
            names = sorted({record.backend for record in members})
            lines.append(f"  {len(members):>{width}} unavailable: {len(names)} target{'s' * (len(names) != 1)} "
                         f"cannot run here ({detail}): {', '.join(names)}")
            continue
        targets = _targets_text(record.backend for record in members)
        lines.append(f"  {len(members):>{width}} {kind}: {detail} (on {targets})")
    return lines


def output_lines(paths: dict[str, Any]) -> list[str]:
    """``label: path`` for each output that was written (``None`` paths are left out)."""
    width = max((len(label) for label, path in paths.items() if path), default=0)
    return [f"  {label + ':':<{width + 1}} {path}" for label, path in paths.items() if path]
