"""No false alarms: correct backends pass every MUST property under many seeds."""

from __future__ import annotations

import importlib.util

import pytest

from nnspec.backends.discovery import resolve
from nnspec.backends.numpy import NumpyBackend
from nnspec.runner import RunOptions, run_property
from nnspec.spec_loader import Catalogue

SEEDS = range(1, 21)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_reference_backend_passes_every_must_property(seed: int, catalogue: Catalogue) -> None:
    from hypothesis.database import InMemoryExampleDatabase

    backend = NumpyBackend()
    options = RunOptions(profile="default", seed=seed, database=InMemoryExampleDatabase())
    alarms = []
    for prop in catalogue.properties:
        if prop.level != "MUST":
            continue
        record = run_property(prop, backend, options)
        if record.status not in ("pass", "skip"):
            alarms.append(f"{prop.id}: {record.status}: {record.message}")
    assert not alarms, f"seed {seed}: the reference backend failed MUST properties:\n" + "\n".join(alarms)


FRAMEWORKS = [name for name in ("torch", "jax") if importlib.util.find_spec(name) is not None]


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("seed", [1, 2])
def test_framework_cpu_backends_pass_every_must_property(framework: str, seed: int, catalogue: Catalogue) -> None:
    from hypothesis.database import InMemoryExampleDatabase

    from nnspec import divergences

    target = resolve(f"{framework}:cpu")[0]
    backend = target.instantiate()
    known = divergences.for_backend(backend.name)
    options = RunOptions(profile="quick", seed=seed, database=InMemoryExampleDatabase())
    alarms = []
    for prop in catalogue.properties:
        if prop.level != "MUST":
            continue
        record = run_property(prop, backend, options, known=known)
        if record.status in ("fail", "error", "xpass"):
            alarms.append(f"{prop.id}: {record.status}: {record.message}")
    assert not alarms, f"{framework}:cpu seed {seed}: false alarms:\n" + "\n".join(alarms)
