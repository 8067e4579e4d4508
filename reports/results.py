"""The results document.

One JSON document per run::

    {
      "format": "nnspec-results", "format_version": 1,
      "environment": {...},            # versions, devices, seed, profile, command line
      "properties": {id: {...}},       # each property's metadata, so a report needs nothing else
      "claims": [...],                 # verdicts on the documents' own claims, when checked
      "results": [Record, ...]         # one per (property, backend target)
    }

Records are also appended, one JSON object per line, to a ``.jsonl`` file as each finishes,
so an interrupted run keeps every finished result; :func:`load` reads either form.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nnspec.errors import ResultsError

FORMAT = "nnspec-results"
FORMAT_VERSION = 1
STATUSES = ("pass", "fail", "error", "skip", "xfail", "xpass")


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
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        known = {name for name in cls.__dataclass_fields__}
        record = cls(**{key: value for key, value in data.items() if key in known})
        if record.status not in STATUSES:
            raise ResultsError(f"record {record.property}[{record.backend}] has unknown status {record.status!r}")
        return record


@dataclass
class RunDocument:
    environment: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)
    results: list[Record] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "environment": self.environment,
            "properties": self.properties,
            "claims": self.claims,
            "results": [record.to_json() for record in self.results],
        }

    def write(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=1, default=_jsonable) + "\n")
        temporary.replace(path)

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(STATUSES, 0)
        for record in self.results:
            totals[record.status] += 1
        return totals


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def append_jsonl(path: str | Path, record: Record) -> None:
    """Append one record as a line and flush it to disk, so it survives an interrupted run."""
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record.to_json(), default=_jsonable) + "\n")
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
    if data.get("format") != FORMAT:
        raise ResultsError(f"{path}: field 'format' should be {FORMAT!r}. Received: {data.get('format')!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise ResultsError(
            f"{path}: field 'format_version' should be {FORMAT_VERSION}. Received: {data.get('format_version')!r}"
        )
    return RunDocument(
        environment=data.get("environment", {}),
        properties=data.get("properties", {}),
        claims=data.get("claims", []),
        results=[Record.from_json(item) for item in data.get("results", [])],
    )


def merge(documents: list[RunDocument]) -> RunDocument:
    """Merge shards or per-backend runs: later documents win for the same (property, backend).

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
            by_key[(record.property, record.backend)] = record
    merged.claims = list(claims.values())
    merged.results = [by_key[key] for key in sorted(by_key)]
    merged.environment = dict(runs[0]) if len(runs) == 1 else {"merged_from": runs}
    return merged
