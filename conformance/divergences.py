"""Known divergences of real frameworks: one commented file per backend, each entry with its reason.

Format of ``backends/divergences/<backend>.txt``::

    # Fully masked query rows: the SDPA math kernel returns NaN where the reference returns 0.
    masking.fully_masked_rows.*   torch:cpu*                  # reason shown in the report
    attention.sdpa.*              jax:*       dtype=float64   # softmax computed in float32

Each entry is a property-id pattern and a target pattern (shell-style globs), optionally the
dtypes it concerns (``dtype=float64`` or ``dtype=float16,bfloat16``), then ``#`` and the reason.
A comment line applies as the reason to the entries below it that give none.

Where entries come from: a backend class's own file (``divergences = "my-divergences.txt"`` in
its body, next to its module; nnspec's own backends name theirs in ``backends/divergences/``),
its base classes' files when it sets ``inherit_divergences = True``, and the files a run is
given (``nnspec run --divergences FILE``, ``pytest --nnspec-divergences FILE``), in that order.

An entry without dtypes marks the whole property on that target: a failure is ``xfail``, a pass
``xpass`` (a stale entry). An entry with dtypes removes those dtypes from the property's domain on
that target, so the others stay checked; the runner still tries the left-out dtypes for a few
examples, and the record's message says what was left out, why, and whether the divergence showed.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from nnspec.backends.base import Backend
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


def load(path: str | Path) -> list[Divergence]:
    """The entries of one divergence file; a missing or malformed file is a :class:`SpecError`."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"divergence file not found (expected a file in the format of "
                        f"backends/divergences/*.txt). Received: {str(path)!r}", path=str(path))
    return parse(file.read_text(encoding="utf-8"), str(file))


def load_all(paths: Sequence[str | Path]) -> list[Divergence]:
    """The entries of every file in ``paths``, in order (``--divergences FILE``, repeatable)."""
    return [entry for path in paths for entry in load(path)]


def _declared(backend_class: type[Backend]) -> list[Divergence]:
    """The entries ``backend_class`` declares in its own body, plus its bases' when it asks for them.

    A base class's entries are renamed to this class: a target pattern ``base-name:...`` becomes
    ``class-name:...`` (targets are named after the class's own ``name``); other patterns stay.
    """
    body = vars(backend_class)
    entries: list[Divergence] = []
    declared = body.get("divergences")
    if declared is not None:
        module = sys.modules.get(backend_class.__module__)
        folder = Path(getattr(module, "__file__", None) or ".").resolve().parent
        path = folder / declared
        if not path.is_file():
            raise SpecError(f"{backend_class.__module__}.{backend_class.__qualname__}.divergences names a file "
                            f"that does not exist. Received: {str(declared)!r} (looked in {folder})", path=str(path))
        entries.extend(load(path))
    if body.get("inherit_divergences", False):
        for base in backend_class.__bases__:
            if issubclass(base, Backend):
                prefix = f"{base.name}:"
                for entry in _declared(base):
                    if entry.target_pattern.startswith(prefix):
                        renamed = f"{backend_class.name}:{entry.target_pattern.removeprefix(prefix)}"
                        entry = replace(entry, target_pattern=renamed)
                    entries.append(entry)
    return entries


def for_backend(backend: str | type[Backend], extra: Sequence[str | Path] | Path | None = None) -> list[Divergence]:
    """The known divergences of a backend, then those of ``extra`` (a user's own files).

    ``backend`` is a backend class or a backend name. A class gives the file its body declares
    (:attr:`nnspec.backends.Backend.divergences`, a path next to its module) and, when it sets
    ``inherit_divergences = True``, its base classes' entries; a name gives the file shipped as
    ``backends/divergences/<name>.txt``, if any.
    """
    entries: list[Divergence] = []
    if isinstance(backend, str):
        shipped = resources.files("nnspec.backends").joinpath(f"divergences/{backend}.txt")
        if shipped.is_file():
            entries.extend(parse(shipped.read_text(encoding="utf-8"), str(shipped)))
    else:
        entries.extend(_declared(backend))
    if isinstance(extra, (str, Path)):
        extra = [extra]
    entries.extend(load_all(extra or []))
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
