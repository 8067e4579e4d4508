"""The results document.

One JSON document per run::

    {
      "format": "nnspec-results", "format_version": 1,
      "status": "complete",            # or "interrupted" (Ctrl-C, SIGTERM) or "incomplete"
      "warnings": [...],               # what the run could not check, said once per property
      "environment": {...},            # versions, devices, seed, profile, command line
      "properties": {id: {...}},       # each property's metadata, so a report needs nothing else
      "claims": [...],                 # verdicts on the documents' own claims, when checked
      "results": [Record, ...]         # one per (property, backend target)
    }

Records are also appended, one JSON object per line, to a ``.jsonl`` file as each finishes,
so an interrupted run keeps every finished result; :func:`load` reads either form.

Both are strict JSON (RFC 8259), written as ASCII (so UTF-8 too; any other character, lone
surrogates included, is a ``\\u`` escape). JSON has no NaN or infinity: a non-finite number is
written as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, and :func:`load` reads those
strings back as floats in the numeric fields of a record. Documents are written atomically
(a temporary file in the same folder, then a rename), so a reader never sees half a document.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nnspec.errors import ResultsError

FORMAT = "nnspec-results"
FORMAT_VERSION = 1
STATUSES = ("pass", "fail", "error", "skip", "xfail", "xpass")
RUN_STATUSES = ("complete", "interrupted", "incomplete")
#: How severe a status is when two shards disagree about one pair: the most severe is kept.
SEVERITY = {"error": 5, "fail": 4, "xpass": 3, "xfail": 2, "pass": 1, "skip": 0}
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_NUMERIC_FIELDS = ("worst_error", "tolerance", "time_s", "compile_s")


@dataclass
class Record:
    """The outcome of one property on one backend target."""

    property: str
    backend: str
    status: str
    level: str = "MUST"
    topic: str = ""
    examples: int = 0
    time_s: float = 0.0
    worst_error: float | None = None
    tolerance: float | None = None
    counterexample: dict[str, Any] | None = None
    message: str = ""
    reproduce: str = ""
    seed: int | None = None
    #: Seconds the backend spent compiling during this record (backends with a compile clock only).
    compile_s: float | None = None

    @builtins.property  # the field ``property`` shadows the builtin inside this class body
    def ratio(self) -> float | None:
        """Worst error as a fraction of its tolerance (above 1 is a failure)."""
        if self.worst_error is None or not self.tolerance:
            return None
        return self.worst_error / self.tolerance

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return strict(data)

    @classmethod
    def from_json(cls, data: Any) -> Record:
        if not isinstance(data, dict):
            raise ResultsError(f"a record should be a JSON object. Received: {type(data).__name__} {str(data)[:60]!r}")
        missing = [name for name in ("property", "backend", "status") if name not in data]
        if missing:
            raise ResultsError(f"a record lacks field(s) {missing}. Received keys: {sorted(data)[:12]}")
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in data.items() if key in known}
        for name in _NUMERIC_FIELDS:
            if isinstance(values.get(name), str) and values[name] in _NON_FINITE:
                values[name] = _NON_FINITE[values[name]]
        record = cls(**values)
        if record.status not in STATUSES:
            raise ResultsError(f"record {record.property}[{record.backend}] has unknown status {record.status!r}")
        return record


@dataclass
class RunDocument:
    environment: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)
    results: list[Record] = field(default_factory=list)
    #: ``complete``, ``interrupted`` (Ctrl-C or SIGTERM) or ``incomplete`` (pairs without a record).
    status: str = "complete"
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "status": self.status,
            "warnings": self.warnings,
            "environment": self.environment,
            "properties": self.properties,
            "claims": self.claims,
            "results": [record.to_json() for record in self.results],
        }

    def write(self, path: str | Path) -> None:
        """Write the document as strict JSON, atomically."""
        text = json.dumps(strict(self.to_json()), indent=1, default=_jsonable, allow_nan=False) + "\n"
        write_atomic(path, text)

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(STATUSES, 0)
        for record in self.results:
            totals[record.status] += 1
        return totals


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return strict(value.tolist())
    if hasattr(value, "item"):
        return strict(value.item())
    return str(value)


def strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its string name (JSON has no NaN)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        return strict(value.tolist())
    return value


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in its folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def append_jsonl(path: str | Path, record: Record) -> None:
    """Append one record as a line and flush it to disk, so it survives an interrupted run."""
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record.to_json(), default=_jsonable, allow_nan=False) + "\n")
        stream.flush()


def load(path: str | Path) -> RunDocument:
    """Read a results document (``.json``) or a stream of records (``.jsonl``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ResultsError(f"{path}: cannot read results: {error}") from None
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(Record.from_json(json.loads(line)))
            except ResultsError as error:
                raise ResultsError(f"{path}:{number}: {error}") from None
            except json.JSONDecodeError:
                # The last line of an interrupted run may be cut short; earlier lines are whole.
                if number == len(text.splitlines()):
                    break
                raise ResultsError(f"{path}:{number}: not a JSON record") from None
        return RunDocument(results=records)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: a results document is a JSON object with 'format': {FORMAT!r}. "
                           f"Received: {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ResultsError(f"{path}: field 'format' should be {FORMAT!r}. Received: {data.get('format')!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise ResultsError(
            f"{path}: field 'format_version' should be {FORMAT_VERSION}. Received: {data.get('format_version')!r}"
        )
    for name, kind in (("results", list), ("environment", dict), ("properties", dict), ("claims", list)):
        if name == "results" and name not in data:
            raise ResultsError(f"{path}: field 'results' is missing")
        if name in data and not isinstance(data[name], kind):
            raise ResultsError(f"{path}: field {name!r} should be a JSON {'array' if kind is list else 'object'}. "
                               f"Received: {type(data[name]).__name__}")
    status = data.get("status", "complete")
    if status not in RUN_STATUSES:
        raise ResultsError(f"{path}: field 'status' should be one of {list(RUN_STATUSES)}. Received: {status!r}")
    results = []
    for number, item in enumerate(data["results"]):
        try:
            results.append(Record.from_json(item))
        except ResultsError as error:
            raise ResultsError(f"{path}: results[{number}]: {error}") from None
    return RunDocument(
        environment=data.get("environment", {}),
        properties=data.get("properties", {}),
        claims=data.get("claims", []),
        results=results,
        status=status,
        warnings=list(data.get("warnings", [])),
    )


def merge(documents: list[RunDocument]) -> RunDocument:
    """Merge shards or per-backend runs into one document.

    When two documents hold a record for the same (property, backend) the rule is: the most
    severe status wins (error, fail, xpass, xfail, pass, skip; a tie keeps the later one), so a
    failure is never dropped, and every disagreement is listed in the merged document's
    ``warnings`` (and :attr:`RunDocument.conflicts`). The merged status is the worst of the inputs'
    (``complete`` only when every input is complete).

    Claims are merged by id (later wins). The environment of a merge is ``{"merged_from": [...]}``,
    one entry per run; merging an already merged document lists its runs, not the merge.
    """
    if not documents:
        raise ResultsError("merge needs at least one results document. Received: none")
    merged = RunDocument()
    by_key: dict[tuple[str, str], Record] = {}
    claims: dict[str, dict[str, Any]] = {}
    runs: list[dict[str, Any]] = []
    for document in documents:
        merged.properties.update(document.properties)
        for claim in document.claims:
            claims[str(claim.get("id", len(claims)))] = claim
        runs.extend(document.environment.get("merged_from") or [document.environment])
        for record in document.results:
            key = (record.property, record.backend)
            before = by_key.get(key)
            if before is not None and before.status != record.status:
                kept = before if SEVERITY[before.status] > SEVERITY[record.status] else record
                merged.warnings.append(f"conflict: {key[0]} [{key[1]}] is {before.status} in one input and "
                                       f"{record.status} in a later one; kept {kept.status}")
                by_key[key] = kept
            else:
                by_key[key] = record
        merged.warnings.extend(w for w in document.warnings if w not in merged.warnings)
        if document.status != "complete":
            merged.status = document.status
    merged.claims = list(claims.values())
    merged.results = [by_key[key] for key in sorted(by_key)]
    merged.environment = dict(runs[0]) if len(runs) == 1 else {"merged_from": runs}
    return merged
