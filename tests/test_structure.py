"""Structure the contract depends on: import purity, protocol order, the public surface."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import nnspec
from nnspec.backends import base

REPOSITORY = Path(__file__).resolve().parent.parent
BACKEND_FILES = ["numpy.py", "torch.py", "jax.py"]


def test_import_and_plugin_load_import_no_framework() -> None:
    code = (
        "import sys, nnspec, nnspec.pytest_plugin, nnspec.backends, nnspec.cli, nnspec.runner\n"
        "from nnspec.backends.discovery import discover\n"
        "discover_names = __import__('nnspec.backends.discovery', fromlist=['x']).entry_point_names()\n"
        "heavy = sorted(m for m in ('torch', 'jax', 'jaxlib') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"importing nnspec imported {result.stdout.strip()}"


def _methods_in_order(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("Backend"):
            names.extend(item.name for item in node.body if isinstance(item, ast.FunctionDef))
            break
    return [name for name in names if name in base.PRIMITIVES]


@pytest.mark.parametrize("filename", BACKEND_FILES)
def test_backend_lists_primitives_in_protocol_order(filename: str) -> None:
    path = REPOSITORY / "backends" / filename
    defined = _methods_in_order(path)
    in_protocol_order = [name for name in base.PRIMITIVES if name in defined]
    assert defined == in_protocol_order, f"{filename} defines its primitives out of the protocol's order"


def test_reference_backend_implements_every_primitive() -> None:
    from nnspec.backends.numpy import NumpyBackend

    backend = NumpyBackend()
    missing = {name for name in base.PRIMITIVES if not backend.supports(name)}
    assert missing == set(NumpyBackend.NOT_PROVIDED), "the reference must implement every primitive it can"


def test_every_primitive_has_a_documented_stub() -> None:
    for name in base.PRIMITIVES:
        stub = getattr(base.Backend, name)
        assert getattr(stub, "__nnspec_missing__", False), f"Backend.{name} is not a stub"
        assert inspect.getdoc(stub), f"Backend.{name} has no docstring"


def test_public_surface() -> None:
    assert {"NnspecError", "SpecError", "BackendError", "ResultsError"} <= set(nnspec.__all__)
    assert issubclass(nnspec.SpecError, ValueError) and issubclass(nnspec.SpecError, nnspec.NnspecError)
