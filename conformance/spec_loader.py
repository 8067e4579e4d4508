"""Loading and validating specification files.

Every file is parsed with ``yaml.safe_load`` and validated against the shipped JSON Schema
(``schema/spec-v1.json``) before anything runs. Errors name the file, the line, the property id,
the field and the received value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from nnspec.documents import DOCUMENTS
from nnspec.errors import SpecError

SCHEMA_VERSION = 1


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

    def property(self, property_id: str) -> Property:
        for prop in self.properties:
            if prop.id == property_id:
                return prop
        raise KeyError(property_id)


@cache
def schema() -> dict[str, Any]:
    text = resources.files("nnspec").joinpath("schema/spec-v1.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def default_spec_dir() -> Path:
    """The specs shipped inside the installed package (``nnspec/spec``)."""
    return Path(str(resources.files("nnspec.spec")))


def _line_map(text: str) -> dict[tuple[Any, ...], int]:
    """1-based line of every mapping key and sequence item, by its path in the document."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*path, key.value)] = key.start_mark.line + 1
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _sources(raw: list[dict[str, str]]) -> list[Source]:
    return [Source(item["document"], item["question"]) for item in raw]


def load_file(path: str | Path) -> tuple[str, str, list[Property], list[Claim]]:
    """Parse and validate one spec file: ``(topic, title, properties, claims)``."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read the file: {error}", path=shown) from None
    try:
        data = yaml.safe_load(text)
        lines = _line_map(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise SpecError(
            f"not valid YAML: {getattr(error, 'problem', error)}", path=shown, line=mark.line + 1 if mark else None
        ) from None
    if not isinstance(data, dict):
        raise SpecError(f"expected a mapping at the top level. Received: {type(data).__name__}", path=shown)

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        location = tuple(first.absolute_path)
        property_id = None
        if len(location) >= 2 and location[0] in ("properties", "claims"):
            entry = data[location[0]][location[1]]
            property_id = entry.get("id") if isinstance(entry, dict) else None
        field_name = ".".join(str(part) for part in location[2:]) if property_id else ".".join(map(str, location))
        if first.validator == "additionalProperties":
            field_name = ".".join(filter(None, [field_name, *_unexpected(first)]))
        received = json.dumps(first.instance, default=str)
        if len(received) > 120:
            received = received[:117] + "..."
        raise SpecError(
            f"{first.message}. Received: {received}",
            path=shown,
            property_id=property_id,
            field=field_name or None,
            line=lines.get(location) or lines.get(location[:-1]),
        )

    topic, title = data["topic"], data["title"]
    properties: list[Property] = []
    for index, raw in enumerate(data.get("properties", [])):
        line = lines.get(("properties", index))
        for source_index, source in enumerate(raw["source"]):
            if source["document"] not in DOCUMENTS:
                raise SpecError(
                    f"unknown document; expected one of {sorted(DOCUMENTS)}. Received: {source['document']!r}",
                    path=shown, property_id=raw["id"], field=f"source.{source_index}.document",
                    line=lines.get(("properties", index, "source", source_index, "document"), line),
                )
        properties.append(
            Property(
                id=raw["id"], title=raw["title"], statement=raw["statement"].strip(), level=raw["level"],
                topic=topic, source=_sources(raw["source"]), check=raw["check"]["name"],
                params=raw["check"].get("params", {}), inputs=raw["inputs"], path=shown, line=line,
                formula=raw.get("formula", ""), tolerance=raw.get("tolerance", {}),
                statistical=raw.get("statistical", {}), depends_on=raw.get("depends_on", []),
                requires=raw.get("requires", []), examples=raw.get("examples"), notes=raw.get("notes", ""),
            )
        )
    claims = [
        Claim(
            id=raw["id"], topic=topic, source=_sources(raw["source"]), claim=raw["claim"].strip(),
            check=raw["check"]["name"], params=raw["check"].get("params", {}), path=shown,
            claimed=raw.get("claimed"), notes=raw.get("notes", ""), line=lines.get(("claims", index)),
            quote=raw.get("quote", ""),
        )
        for index, raw in enumerate(data.get("claims", []))
    ]
    return topic, title, properties, claims


def _unexpected(error: jsonschema.ValidationError) -> list[str]:
    schema_part = error.schema if isinstance(error.schema, dict) else {}
    allowed = set(schema_part.get("properties", {}))
    return [key for key in error.instance if key not in allowed][:1] if isinstance(error.instance, dict) else []


def load_catalogue(paths: Sequence[str | Path] | None = None) -> Catalogue:
    """Load spec files (or every ``*.yaml`` in the given folders; the shipped specs by default)."""
    from nnspec.registry import checker_names  # checkers register on import

    files: list[Path] = []
    for entry in [Path(p) for p in (paths or [default_spec_dir()])]:
        files.extend(sorted(entry.glob("*.yaml")) if entry.is_dir() else [entry])
    if not files:
        raise SpecError("no spec files found", path=", ".join(str(p) for p in paths or []))
    catalogue = Catalogue()
    seen: dict[str, str] = {}
    known_checkers = checker_names()
    for path in files:
        topic, title, properties, claims = load_file(path)
        catalogue.topics[topic] = title
        for prop in properties:
            if prop.id in seen:
                raise SpecError(f"duplicate property id, first defined in {seen[prop.id]}",
                                path=prop.path, property_id=prop.id, field="id", line=prop.line)
            seen[prop.id] = prop.path
            if prop.check not in known_checkers:
                raise SpecError(
                    f"unknown checker; registered checkers are {sorted(known_checkers)}. Received: {prop.check!r}",
                    path=prop.path, property_id=prop.id, field="check.name", line=prop.line,
                )
            catalogue.properties.append(prop)
        for claim in claims:
            if claim.id in seen:
                raise SpecError(f"duplicate id, first defined in {seen[claim.id]}",
                                path=claim.path, property_id=claim.id, field="id", line=claim.line)
            seen[claim.id] = claim.path
            catalogue.claims.append(claim)
    for prop in catalogue.properties:
        for dependency in prop.depends_on:
            if dependency not in seen:
                raise SpecError(f"depends on an unknown property. Received: {dependency!r}",
                                path=prop.path, property_id=prop.id, field="depends_on", line=prop.line)
    catalogue.properties.sort(key=lambda p: p.id)
    from nnspec.claims import validate as validate_claims  # claim checks are registered there

    validate_claims(catalogue.claims)
    return catalogue
