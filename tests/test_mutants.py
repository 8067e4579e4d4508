"""Teeth: every property rejects some mutant, and every mutant is rejected where we expect.

A property that no broken backend fails proves nothing; a mutant that no property fails shows a
hole in the catalogue. Every module in ``tests/mutants/`` declares ``REJECTED_BY`` (mutant ->
property ids or globs that must reject it); a module whose ``FRAMEWORK`` is not installed is
left out. A module may name the backend it subclasses in ``DIVERGENCES_OF``: that backend's
dtype-scoped divergences then apply to its mutants, so a mutant is judged only in the dtypes where
the correct backend is, and a rejection is the planted bug's, not the framework's.
``benchmarks/kill_matrix.py`` prints the whole mutant x property matrix.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil

import pytest

import tests.mutants
from nnspec import divergences
from nnspec.backends.base import Backend
from nnspec.runner import run_property
from nnspec.spec_loader import Catalogue
from tests.conftest import quick_options


def mutant_table() -> list[tuple[str, type, tuple[str, ...]]]:
    """(module, mutant class, patterns) for every mutant whose framework is installed."""
    found = []
    for info in sorted(pkgutil.iter_modules(tests.mutants.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"tests.mutants.{info.name}")
        framework = getattr(module, "FRAMEWORK", None)
        if framework is not None and importlib.util.find_spec(framework) is None:
            continue
        found.extend((info.name, cls, tuple(patterns)) for cls, patterns in module.REJECTED_BY.items())
    return found


MUTANTS = mutant_table()


def mutant_divergences(module: str, backend: Backend) -> list[divergences.Divergence]:
    """The dtype-scoped divergences of the backend ``module`` declares in ``DIVERGENCES_OF``, on
    this mutant's target; whole-property entries are left out (they would turn a rejection into
    xfail, and such properties are not listed in ``REJECTED_BY``)."""
    base = getattr(importlib.import_module(f"tests.mutants.{module}"), "DIVERGENCES_OF", None)
    if base is None:
        return []
    return [
        divergences.Divergence(entry.property_pattern, backend.target, entry.reason, entry.dtypes)
        for entry in divergences.for_backend(base)
        if entry.dtypes and fnmatch.fnmatchcase(f"{base}:{backend.device}", entry.target_pattern)
    ]


def expected_properties(patterns: tuple[str, ...], catalogue: Catalogue) -> list[str]:
    return [
        prop.id for prop in catalogue.properties if any(fnmatch.fnmatchcase(prop.id, p) for p in patterns)
    ]


@pytest.mark.parametrize(
    ("module", "mutant", "patterns"),
    MUTANTS,
    ids=[f"{module}.{mutant.__name__}" for module, mutant, _ in MUTANTS],
)
def test_mutant_is_rejected_by_the_expected_properties(
    module: str, mutant: type, patterns: tuple[str, ...], catalogue: Catalogue
) -> None:
    for pattern in patterns:
        assert expected_properties((pattern,), catalogue), (
            f"{mutant.__name__}: {pattern!r} matches no property"
        )
    backend = mutant()
    options = quick_options()
    known = mutant_divergences(module, backend)
    passed = []
    for property_id in expected_properties(patterns, catalogue):
        record = run_property(catalogue.property(property_id), backend, options, known=known)
        # A rejection is a failed check or the backend raising; a crash of the checker proves nothing.
        if not (record.status == "fail" or record.message.startswith("the backend raised")):
            passed.append(f"{property_id} ({record.status}: {record.message[:200]})")
    assert not passed, f"{mutant.__name__} ({mutant.__doc__}) should be rejected by {passed}"


def test_every_property_is_expected_to_reject_some_mutant(catalogue: Catalogue) -> None:
    covered: set[str] = set()
    for _, _, patterns in MUTANTS:
        covered.update(expected_properties(patterns, catalogue))
    toothless = sorted(prop.id for prop in catalogue.properties if prop.id not in covered)
    assert not toothless, f"properties that no mutant is shown to fail (they prove nothing): {toothless}"


def test_mutants_are_named_after_their_bug() -> None:
    for _, mutant, _ in MUTANTS:
        assert mutant.__doc__, f"{mutant.__name__} needs a docstring saying which bug it plants"
