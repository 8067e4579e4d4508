"""Known divergences of real frameworks: one commented file per backend, each entry with its reason.

Format of ``backends/divergences/<backend>.txt``::

    # Fully masked query rows: the SDPA math kernel returns NaN where the reference returns 0.
    masking.fully_masked_rows.*   torch:cpu*                  # reason shown in the report
    attention.sdpa.*              jax:*       dtype=float64   # softmax computed in float32

Each entry is a property-id pattern and a target pattern (shell-style globs), optionally the
dtypes it concerns (``dtype=float64`` or ``dtype=float16,bfloat16``), then ``#`` and the reason.
A comment line applies as the reason to the entries below it that give none.

An entry without dtypes marks the whole property on that target: a failure is ``xfail``, a pass
``xpass`` (a stale entry). An entry with dtypes removes those dtypes from the property's domain on
that target, so the others stay checked; the runner still tries the left-out dtypes for a few
examples, and the record's message says what was left out, why, and whether the divergence showed.
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
    dtypes: tuple[str, ...] = ()

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
        dtypes: tuple[str, ...] = ()
        if len(fields) == 3 and fields[2].startswith("dtype="):
            dtypes = tuple(fields[2].removeprefix("dtype=").split(","))
            fields = fields[:2]
        if len(fields) != 2:
            raise SpecError(
                f"expected '<property pattern> <target pattern> [dtype=...]  # reason'. Received: {raw!r}",
                path=path, line=number,
            )
        entries.append(Divergence(fields[0], fields[1], reason.strip() or section or "known divergence", dtypes))
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
    """The entry marking the whole property on this target, if any."""
    return next((e for e in entries if not e.dtypes and e.matches(property_id, target)), None)


def excluded_dtypes(entries: list[Divergence], property_id: str, target: str) -> dict[str, str]:
    """Dtypes to leave out of the property on this target, each with its reason."""
    excluded: dict[str, str] = {}
    for entry in entries:
        if entry.dtypes and entry.matches(property_id, target):
            for dtype in entry.dtypes:
                excluded.setdefault(dtype, entry.reason)
    return excluded
