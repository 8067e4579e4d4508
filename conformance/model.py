"""The spec model: a property, a claim and the catalogue of both, as the spec files state them.

:mod:`nnspec.spec_loader` builds these from YAML (and re-exports them); everything above it reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Source:
    document: str
    question: str


@dataclass
class Property:
    """One checked property, as its spec file states it."""

    id: str
    title: str
    statement: str
    level: str
    topic: str
    source: list[Source]
    check: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    path: str
    line: int | None = None
    formula: str = ""
    tolerance: dict[str, Any] = field(default_factory=dict)
    statistical: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    examples: int | None = None
    notes: str = ""
    field_lines: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def metadata(self) -> dict[str, Any]:
        """What a results document keeps about the property, so a report needs nothing else."""
        return {
            "id": self.id,
            "title": self.title,
            "statement": self.statement,
            "formula": self.formula,
            "level": self.level,
            "topic": self.topic,
            "source": [{"document": s.document, "question": s.question} for s in self.source],
            "check": {"name": self.check, "params": self.params},
            "inputs": self.inputs,
            "tolerance": self.tolerance,
            "statistical": self.statistical,
            "depends_on": self.depends_on,
            "notes": self.notes,
        }


@dataclass
class Claim:
    """A numeric or mathematical statement a document makes, with the computation that checks it."""

    id: str
    topic: str
    source: list[Source]
    claim: str
    check: str
    params: dict[str, Any]
    path: str
    claimed: Any = None
    notes: str = ""
    line: int | None = None
    quote: str = ""


@dataclass
class Catalogue:
    properties: list[Property] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    topics: dict[str, str] = field(default_factory=dict)
    #: Properties that cannot run, with why: a dependency in none of the files given nor the
    #: shipped catalogue (only when loaded with ``partial=True``).
    not_run: dict[str, str] = field(default_factory=dict)

    def property(self, property_id: str) -> Property:
        for prop in self.properties:
            if prop.id == property_id:
                return prop
        raise KeyError(property_id)
