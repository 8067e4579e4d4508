"""Loading and validating specification files.

Every file is parsed with YAML's safe loader, within stated bounds (``MAX_FILE_BYTES``,
``MAX_ALIASES``, ``MAX_NODES``, ``MAX_DEPTH``; duplicate keys are errors), validated against the
shipped JSON Schema (``schema/spec-v1.json``), and then checked for what a schema cannot say: range
order, ``requires`` naming protocol primitives, each checker's declared parameters, known documents,
and, across files, unique ids and ``depends_on`` naming known ids without cycles. Every error is
collected (``check_catalogue``); each names the file, the line, the property id, the field and the
received value, with a "did you mean" where a near name exists.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from nnspec.documents import DOCUMENTS
from nnspec.errors import SpecError
from nnspec.model import Catalogue, Claim, Property, Source

# The spec model is re-exported: it is built here, and older code imports it from here.
__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "SCHEMA_VERSION", "Catalogue", "Claim", "Property",
           "Source", "SpecErrors", "check_catalogue", "default_spec_dir", "load_catalogue", "load_file", "schema",
           "spec_files"]

SCHEMA_VERSION = 1


@cache
def schema() -> dict[str, Any]:
    text = resources.files("nnspec").joinpath("schema/spec-v1.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def default_spec_dir() -> Path:
    """The specs shipped inside the installed package (``nnspec/spec``)."""
    return Path(str(resources.files("nnspec.spec")))


def _sources(raw: list[dict[str, str]]) -> list[Source]:
    return [Source(item["document"], item["question"]) for item in raw]


# Bounds on one spec file, so that a hostile or broken file is refused quickly and in little memory
# instead of exhausting either. The largest shipped spec is about 18 KB with a few thousand nodes.
MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_ALIASES = 100  # uses of YAML aliases (``*name``) in one file
MAX_NODES = 100_000  # YAML nodes in one file, each alias counted as the nodes it stands for
MAX_DEPTH = 64  # nesting of mappings and sequences

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Location = tuple[Any, ...]


class SpecErrors(SpecError):
    """Several spec errors at once; ``errors`` holds each, in file and line order."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        super().__init__(f"{len(errors)} errors in the spec files:\n" + "\n".join(f"  {e}" for e in errors))
        first = errors[0]
        self.errors = list(errors)
        self.path, self.property_id, self.field, self.line = first.path, first.property_id, first.field, first.line


def _raise(errors: Sequence[SpecError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors)


def _read(path: Path, shown: str) -> str:
    """The file's text: at most MAX_FILE_BYTES, UTF-8, else a SpecError naming the file."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise SpecError(f"cannot read the file: {error.strerror or error}", path=shown) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"the file is larger than the {MAX_FILE_BYTES} bytes a spec file may have "
                        f"(nnspec.spec_loader.MAX_FILE_BYTES)", path=shown)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SpecError(f"not UTF-8 text: byte 0x{raw[error.start]:02x} at offset {error.start} cannot be "
                        "decoded; spec files must be UTF-8", path=shown,
                        line=raw[: error.start].count(b"\n") + 1) from None


def _parse(text: str, shown: str) -> tuple[Any, dict[Location, int], list[tuple[Location, int, str]]]:
    """``(data, line of every key and item by its path, duplicate-key problems)``, within the bounds above.

    The document is composed once; its node graph is walked once with a budget of nodes and
    aliases (so an alias bomb stops at the budget), and only then turned into Python objects.
    """
    lines: dict[Location, int] = {}
    duplicates: list[tuple[Location, int, str]] = []
    seen: set[int] = set()
    budget = {"nodes": 0, "aliases": 0}

    def walk(node: yaml.Node, path: Location, active: tuple[int, ...]) -> None:
        line = node.start_mark.line + 1
        if id(node) in active:
            raise SpecError("a YAML alias refers to a node that contains it", path=shown, line=line)
        if id(node) in seen:
            budget["aliases"] += 1
            if budget["aliases"] > MAX_ALIASES:
                raise SpecError(f"more than {MAX_ALIASES} uses of YAML aliases (nnspec.spec_loader.MAX_ALIASES)",
                                path=shown, line=line)
        seen.add(id(node))
        budget["nodes"] += 1
        if budget["nodes"] > MAX_NODES:
            raise SpecError(f"the document has more than {MAX_NODES} YAML nodes, aliases expanded "
                            "(nnspec.spec_loader.MAX_NODES)", path=shown, line=line)
        if len(active) >= MAX_DEPTH:
            raise SpecError(f"nested more than {MAX_DEPTH} levels deep (nnspec.spec_loader.MAX_DEPTH)",
                            path=shown, line=line)
        lines.setdefault(path, line)
        inner = (*active, id(node))
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                key_line = key.start_mark.line + 1
                if name is not None and name in first_line and name != "<<":
                    duplicates.append(((*path, name), key_line,
                                       f"duplicate key {name!r} (first at line {first_line[name]}); a YAML "
                                       "loader would silently keep only the last value"))
                else:
                    first_line.setdefault(name, key_line)
                    lines[(*path, name)] = key_line
                walk(value, (*path, name), inner)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index), inner)

    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, lines, duplicates
        walk(root, (), ())
        return loader.construct_document(root), lines, duplicates
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise SpecError(f"not valid YAML: {getattr(error, 'problem', None) or error}", path=shown,
                        line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise SpecError("nested too deeply to parse", path=shown) from None
    finally:
        loader.dispose()


def _line(lines: dict[Location, int], location: Location) -> int | None:
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            return lines[location[:end]]
    return None


def _located(shown: str, data: Any, lines: dict[Location, int], location: Location, message: str,
             line: int | None = None) -> SpecError:
    """A SpecError at ``location`` (a path in the document), naming the property id when there is one."""
    property_id = None
    if len(location) >= 2 and location[0] in ("properties", "claims") and isinstance(data, dict):
        entries = data.get(location[0])
        index = location[1]
        if isinstance(entries, list) and isinstance(index, int) and index < len(entries):
            entry = entries[index]
            found = entry.get("id") if isinstance(entry, dict) else None
            property_id = found if isinstance(found, str) else None
    parts = location[2:] if property_id else location
    return SpecError(message, path=shown, property_id=property_id,
                     field=".".join(map(str, parts)) or None, line=line or _line(lines, location))


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def _schema_errors(shown: str, data: Any, lines: dict[Location, int]) -> list[tuple[Location, SpecError]]:
    from nnspec.registry import suggest

    validator = jsonschema.Draft202012Validator(schema())
    found: list[tuple[Location, SpecError]] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        location = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {})) if isinstance(error.schema, dict) else set()
            for key in [k for k in error.instance if k not in allowed]:
                message = (f"unknown field{suggest(str(key), allowed)}; allowed fields are {sorted(allowed)}. "
                           f"Received: {key}: {_shown(error.instance[key])}")
                found.append(((*location, key), _located(shown, data, lines, (*location, key), message)))
            continue
        message = f"{error.message}. Received: {_shown(error.instance)}"
        found.append((location, _located(shown, data, lines, location, message)))
    return found


def _check_params(check: str, params: Any, error: Any) -> None:
    """Each ``check.params`` key against the checker's declared :class:`nnspec.registry.Param`."""
    from nnspec.registry import get, suggest

    declared = get(check).params
    for key, value in params.items():
        if key not in declared:
            known = f"its parameters are {sorted(declared)}" if declared else "it takes no parameters"
            error(("check", "params", key), f"not a parameter of checker {check!r}{suggest(str(key), declared)}; "
                                            f"{known}. Received: {key}: {_shown(value)}")
            continue
        problem = declared[key].problem(value)
        if problem:
            error(("check", "params", key), f"{problem}. Received: {_shown(value)}")
    for key, param in declared.items():
        if param.required and key not in params:
            error(("check", "params"), f"checker {check!r} requires the parameter {key!r}. Received: "
                                       f"{_shown(params)}")


def _check_property(raw: dict[str, Any], known_checkers: set[str], error: Any) -> None:
    """The rules JSON Schema cannot state, for one property that passed the schema."""
    from nnspec.backends.base import PRIMITIVES
    from nnspec.registry import suggest

    for index, source in enumerate(raw["source"]):
        if source["document"] not in DOCUMENTS:
            error(("source", index, "document"),
                  f"unknown document{suggest(source['document'], DOCUMENTS)}; expected one of "
                  f"{sorted(DOCUMENTS)}. Received: {source['document']!r}")
    for name, value in raw["inputs"].items():
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value) \
                and value[0] > value[1]:
            error(("inputs", name), f"the range's minimum is larger than its maximum. Received: {_shown(value)}")
    for index, name in enumerate(raw.get("requires", [])):
        if name not in PRIMITIVES:
            error(("requires", index), f"not a backend primitive{suggest(name, PRIMITIVES)}; the primitives "
                                       f"are listed in nnspec.backends.base.PRIMITIVES. Received: {name!r}")
    check = raw["check"]["name"]
    if check not in known_checkers:
        error(("check", "name"), f"unknown checker{suggest(check, known_checkers)}; registered checkers are "
                                 f"{sorted(known_checkers)}. Received: {check!r}")
    else:
        _check_params(check, raw["check"].get("params", {}), error)


def _load(path: Path, known_checkers: set[str]) -> tuple[str | None, str, list[Property], list[Claim], list[SpecError]]:
    """Parse and check one file, collecting every error it has: ``(topic, title, properties, claims, errors)``."""
    shown = str(path)
    try:
        data, lines, duplicates = _parse(_read(path, shown), shown)
    except SpecError as error:
        return None, "", [], [], [error]
    errors = [_located(shown, data, lines, location, message, line) for location, line, message in duplicates]
    if not isinstance(data, dict):
        errors.append(SpecError(f"expected a mapping at the top level. Received: {type(data).__name__}", path=shown))
        return None, "", [], [], errors
    located = _schema_errors(shown, data, lines)
    errors += [error for _, error in located]
    broken = {loc[:2] for loc, _ in located if len(loc) >= 2 and loc[0] in ("properties", "claims")}
    if any(len(loc) < 2 or loc[0] not in ("properties", "claims") for loc, _ in located):
        return None, "", [], [], errors  # the file as a whole is malformed; its entries cannot be trusted

    topic, title = data["topic"], data["title"]
    properties: list[Property] = []
    for index, raw in enumerate(data.get("properties", [])):
        here = ("properties", index)
        flagged = {loc for loc, _ in located if loc[:2] == here}
        found: list[SpecError] = []

        def report(where: Location, message: str, here: Location = here, flagged: set[Location] = flagged,
                   found: list[SpecError] = found) -> None:
            if (*here, *where) not in flagged:
                found.append(_located(shown, data, lines, (*here, *where), message))

        try:
            _check_property(raw, known_checkers, report)
        except (KeyError, TypeError, AttributeError, IndexError):
            if here not in broken:
                raise
            # a property the schema rejected: what else is wrong is reported as far as its shape allows
        errors += found
        if here in broken or found:
            continue
        properties.append(Property(
            id=raw["id"], title=raw["title"], statement=raw["statement"].strip(), level=raw["level"],
            topic=topic, source=_sources(raw["source"]), check=raw["check"]["name"],
            params=raw["check"].get("params", {}), inputs=raw["inputs"], path=shown, line=lines.get(here),
            formula=raw.get("formula", ""), tolerance=raw.get("tolerance", {}),
            statistical=raw.get("statistical", {}), depends_on=raw.get("depends_on", []),
            requires=raw.get("requires", []), examples=raw.get("examples"), notes=raw.get("notes", ""),
            field_lines={f"depends_on.{i}": lines.get((*here, "depends_on", i)) or 0
                         for i in range(len(raw.get("depends_on", [])))},
        ))
    claims = [
        Claim(
            id=raw["id"], topic=topic, source=_sources(raw["source"]), claim=raw["claim"].strip(),
            check=raw["check"]["name"], params=raw["check"].get("params", {}), path=shown,
            claimed=raw.get("claimed"), notes=raw.get("notes", ""), line=lines.get(("claims", index)),
            quote=raw.get("quote", ""),
        )
        for index, raw in enumerate(data.get("claims", []))
        if ("claims", index) not in broken
    ]
    errors.sort(key=lambda e: e.line or 0)
    return topic, title, properties, claims, errors


def load_file(path: str | Path) -> tuple[str, str, list[Property], list[Claim]]:
    """Parse and validate one spec file: ``(topic, title, properties, claims)``.

    Raises the file's SpecError, or a :class:`SpecErrors` holding all of them when there are several.
    """
    from nnspec.registry import checker_names  # checkers register on import

    topic, title, properties, claims, errors = _load(Path(path), checker_names())
    _raise(errors)
    assert topic is not None
    return topic, title, properties, claims


def spec_files(paths: Sequence[str | Path] | None = None) -> list[Path]:
    """The files a catalogue is loaded from: each file named, and every ``*.yaml`` in each folder named."""
    files: list[Path] = []
    for entry in [Path(p) for p in (paths or [default_spec_dir()])]:
        files.extend(sorted(entry.glob("*.yaml")) if entry.is_dir() else [entry])
    if not files:
        raise SpecError("no spec files found", path=", ".join(str(p) for p in paths or []))
    return files


def _cycles(properties: list[Property]) -> list[list[str]]:
    """Each ``depends_on`` cycle once, as the ids along it, starting from its smallest id."""
    graph = {p.id: p.depends_on for p in properties}
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    cycles: list[list[str]] = []
    for start in sorted(graph):
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                path.append(node)
            targets = [t for t in graph.get(node, []) if t in graph]
            if index < len(targets):
                stack.append((node, index + 1))
                target = targets[index]
                if state.get(target) == 1:
                    cycle = path[path.index(target):]
                    turn = cycle.index(min(cycle))
                    cycles.append(cycle[turn:] + cycle[:turn])
                elif not state.get(target):
                    stack.append((target, 0))
            else:
                state[node] = 2
                path.pop()
    return cycles


def _claim_params_problem(claim: Claim) -> str | None:
    """Why the claim's ``check.params`` do not fit its claim check's signature, or ``None``."""
    from nnspec.claims import get as claim_check
    from nnspec.registry import suggest

    signature = inspect.signature(claim_check(claim.check).function)
    try:
        signature.bind(**claim.params)  # the claimed value is never an input of its check
    except TypeError as error:
        takes = list(signature.parameters)
        unknown = [key for key in claim.params if key not in signature.parameters]
        hint = suggest(str(unknown[0]), takes) if unknown else ""
        return (f"the claim check {claim.check!r} does not take these parameters ({error}){hint}; it takes "
                f"{takes}. Received: {claim.params!r}")
    return None


def check_catalogue(
    paths: Sequence[str | Path] | None = None, partial: bool = False
) -> tuple[Catalogue, list[SpecError], list[Path]]:
    """Load and check every spec file, collecting every error: ``(catalogue, errors, files)``.

    Besides each file's own checks: ids unique across files, ``depends_on`` naming known ids and
    free of cycles, and each claim naming a registered claim check. ``partial`` is for a part of
    a catalogue run on its own (one spec file): a dependency in another file is then looked up in
    the shipped catalogue, and one found nowhere makes its property not run
    (``catalogue.not_run``) instead of an error of every file.
    """
    from nnspec.claims import validate as validate_claims  # claim checks are registered there
    from nnspec.registry import checker_names, suggest  # checkers register on import

    files = spec_files(paths)
    known_checkers = checker_names()
    catalogue = Catalogue()
    errors: list[SpecError] = []
    seen: dict[str, str] = {}
    for path in files:
        topic, title, properties, claims, found = _load(path, known_checkers)
        errors += found
        if topic is None:
            continue
        catalogue.topics[topic] = title
        entries: list[Property | Claim] = [*properties, *claims]
        for entry in entries:
            if entry.id in seen:
                kind = "property id" if isinstance(entry, Property) else "id"
                errors.append(SpecError(f"duplicate {kind}, first defined in {seen[entry.id]}. Received: {entry.id!r}",
                                        path=entry.path, property_id=entry.id, field="id", line=entry.line))
                continue
            seen[entry.id] = entry.path
            if isinstance(entry, Property):
                catalogue.properties.append(entry)
            else:
                try:
                    validate_claims([entry])
                except SpecError as error:
                    errors.append(error)
                    continue
                problem = _claim_params_problem(entry)
                if problem:
                    errors.append(SpecError(problem, path=entry.path, property_id=entry.id, field="check.params",
                                            line=entry.line))
                    continue
                catalogue.claims.append(entry)
    ids = {p.id for p in catalogue.properties}
    for prop in catalogue.properties:
        for index, dependency in enumerate(prop.depends_on):
            if dependency not in ids and partial and dependency in _shipped_ids():
                continue
            if dependency not in ids and partial:
                catalogue.not_run[prop.id] = (
                    f"not run: {prop.path}, property {prop.id!r}, field 'depends_on.{index}' names "
                    f"{dependency!r}, which is in none of the spec files given nor the shipped catalogue"
                    f"{suggest(dependency, (ids | _shipped_ids()) - {prop.id})}; give its spec file too")
                continue
            if dependency not in ids:
                errors.append(SpecError(
                    f"depends on an unknown property{suggest(dependency, ids)}. Received: {dependency!r}",
                    path=prop.path, property_id=prop.id, field=f"depends_on.{index}",
                    line=prop.field_lines.get(f"depends_on.{index}") or prop.line))
    by_id = {p.id: p for p in catalogue.properties}
    for cycle in _cycles(catalogue.properties):
        first = by_id[cycle[0]]
        errors.append(SpecError(f"depends_on forms a cycle: {' -> '.join([*cycle, cycle[0]])}",
                                path=first.path, property_id=first.id, field="depends_on", line=first.line))
    catalogue.properties.sort(key=lambda p: p.id)
    return catalogue, errors, files


@cache
def _shipped_ids() -> frozenset[str]:
    """The property ids of the shipped catalogue."""
    catalogue, _, _ = check_catalogue(None)
    return frozenset(p.id for p in catalogue.properties)


def load_catalogue(paths: Sequence[str | Path] | None = None, partial: bool = False) -> Catalogue:
    """Load spec files (or every ``*.yaml`` in the given folders; the shipped specs by default).

    Raises the SpecError, or a :class:`SpecErrors` holding every one when there are several.
    ``partial`` is as for :func:`check_catalogue`.
    """
    catalogue, errors, _ = check_catalogue(paths, partial)
    _raise(errors)
    return catalogue
