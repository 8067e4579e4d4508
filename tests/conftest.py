"""Shared fixtures for nnspec's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis.database import InMemoryExampleDatabase

from nnspec.runner import RunOptions
from nnspec.spec_loader import Catalogue, load_catalogue

REPOSITORY = Path(__file__).resolve().parent.parent
SPEC_DIR = REPOSITORY / "spec"


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue([SPEC_DIR])


def quick_options(seed: int = 0, profile: str = "quick") -> RunOptions:
    """Options for tests: no shared example database, so results never depend on earlier runs."""
    return RunOptions(profile=profile, seed=seed, database=InMemoryExampleDatabase())
