"""Known divergences of real frameworks: one commented file per backend, each entry with its reason.

Format of ``backends/divergences/<backend>.txt``::

    # Fully masked query rows: the SDPA math kernel returns NaN where the reference returns 0.
    masking.fully_masked_rows.*   torch:cpu*   # reason shown in the report

Each entry is a property-id pattern and a target pattern (shell-style globs), then ``#`` and the
reason. A comment line applies as the reason to the entries below it that give none.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nnspec.errors import SpecError


@dataclass(frozen=True)
class Divergence:
    property_pattern: str
    target_pattern: str
    reason: str

    def matches(self, property_id: str, target: str) -> bool:
        return fnmatch.fnmatchcase(property_id, self.property_pattern) and fnmatch.fnmatchcase(
            target, self.target_pattern
        )


def parse(text: str, path: str) -> list[Divergence]:
    entries: list[Divergence] = []
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            section = ""
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip()
            continue
        body, _, reason = line.partition("#")
        fields = body.split()
        if len(fields) != 2:
            raise SpecError(
                f"expected '<property pattern> <target pattern>  # reason'. Received: {raw!r}",
                path=path, line=number,
            )
        entries.append(Divergence(fields[0], fields[1], reason.strip() or section or "known divergence"))
    return entries


def for_backend(name: str, extra: Path | None = None) -> list[Divergence]:
    """The divergences shipped for backend ``name`` (and those in ``extra``, a user's own file)."""
    entries: list[Divergence] = []
    shipped = resources.files("nnspec.backends").joinpath(f"divergences/{name}.txt")
    if shipped.is_file():
        entries.extend(parse(shipped.read_text(encoding="utf-8"), str(shipped)))
    if extra is not None:
        entries.extend(parse(extra.read_text(encoding="utf-8"), str(extra)))
    return entries


def find(entries: list[Divergence], property_id: str, target: str) -> Divergence | None:
    return next((entry for entry in entries if entry.matches(property_id, target)), None)
