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
BACKEND_FILES = ["base.py", "numpy.py", "torch.py", "jax.py"]


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


def test_base_class_lists_every_primitive_family_by_family() -> None:
    # The families partition the protocol, and the base class's stubs follow them one for one.
    members = [name for family in base.PRIMITIVE_FAMILIES.values() for name in family]
    assert len(members) == len(set(members)), "a primitive sits in two families"
    assert _methods_in_order(REPOSITORY / "backends" / "base.py") == list(base.PRIMITIVES)


def test_boundary_methods_are_outside_the_protocol() -> None:
    for name in ("asarray", "to_numpy", "cast"):
        assert name not in base.PRIMITIVES
        assert not getattr(getattr(base.Backend, name), "__nnspec_missing__", False), f"Backend.{name} is a stub"
    # The runner tells a backend with a compile clock from one without by the method's presence.
    assert not hasattr(base.Backend, "compile_seconds")


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


# --- the import graph: no circle, and every import points down the layers -----------------------------

#: The package's folders, as the installed package maps them (pyproject's package-dir).
PACKAGE_FOLDERS = {"nnspec": "conformance", "nnspec.backends": "backends", "nnspec.reports": "reports"}

#: The layers, bottom-up: a module may import its own layer and those below, never one above.
#: A name ending in ".*" covers a package and every module in it.
LAYERS: list[tuple[str, set[str]]] = [
    ("errors and tolerances", {"nnspec", "nnspec.errors", "nnspec.documents", "nnspec.tolerances"}),
    ("the spec and results models", {"nnspec.model", "nnspec.reports.*"}),
    ("the protocol, the backends and the float64 mathematics", {"nnspec.backends.*", "nnspec.oracles.*"}),
    ("drawing", {"nnspec.strategies"}),
    ("the case", {"nnspec.case"}),
    (
        "checkers and claims",
        {"nnspec.registry", "nnspec.checkers.*", "nnspec.claims", "nnspec.claim_checks.*"},
    ),
    ("loading the catalogue", {"nnspec.spec_loader", "nnspec.divergences"}),
    ("the runner", {"nnspec.runner", "nnspec.supervisor", "nnspec.sharding"}),
    # `python -m nnspec.backends.ecosystem` is a command: it runs adapters over the catalogue.
    (
        "the faces",
        {"nnspec.cli", "nnspec.pytest_plugin", "nnspec.coverage", "nnspec.gpu", "nnspec.backends.ecosystem.__main__"},
    ),
]

#: Upward imports that are known and accepted, each with its reason.
ACCEPTED_UPWARD = {
    # The GPU backends read the NVIDIA driver's version through gpu.py, which is also the gpu-check
    # command; the import is inside the functions that need it, and gpu.py imports no backend module
    # but discovery.
    ("nnspec.backends.torch", "nnspec.gpu"),
    ("nnspec.backends.jax", "nnspec.gpu"),
}

#: Circles that are known, each with its reason; any other circle fails.
ACCEPTED_CIRCLES = [
    # The runner starts the supervisor, whose worker processes call back into the runner's stages;
    # both imports sit inside functions. Passing the stages to the supervisor would break it.
    ["nnspec.runner", "nnspec.supervisor"],
]


def _module_files() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package, folder in PACKAGE_FOLDERS.items():
        for path in sorted((REPOSITORY / folder).rglob("*.py")):
            parts = list(path.relative_to(REPOSITORY / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Every nnspec module ``path`` imports: at the top, inside functions and under TYPE_CHECKING alike."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module in modules and module != name}


def _import_graph() -> dict[str, set[str]]:
    files = _module_files()
    return {name: _imports(path, name, set(files)) for name, path in files.items()}


def _layer(module: str) -> int | None:
    """The module's layer: where it is named exactly, else the first layer with a package covering it."""
    for index, (_, members) in enumerate(LAYERS):
        if module in members:
            return index
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if member.endswith(".*") and (module == member[:-2] or module.startswith(member[:-1])):
                return index
    return None


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_graph_finds_the_package() -> None:
    graph = _import_graph()
    assert {"nnspec.runner", "nnspec.case", "nnspec.backends.numpy", "nnspec.reports.results"} <= set(graph)
    assert "nnspec.case" in graph["nnspec.runner"]
    assert "nnspec.claims" in graph["nnspec.claim_checks.softmax"]


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle() -> None:
    circles = [circle for circle in _circles(_import_graph()) if circle not in ACCEPTED_CIRCLES]
    assert circles == [], f"modules that import each other, directly or around a circle: {circles}"


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(module for module in _import_graph() if _layer(module) is None)
    assert unplaced == [], f"place these modules in a layer of tests/test_structure.py's LAYERS: {unplaced}"


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, targets in sorted(_import_graph().items()):
        for target in sorted(targets):
            layer, target_layer = _layer(module), _layer(target)
            if (
                layer is not None
                and target_layer is not None
                and target_layer > layer
                and (module, target) not in ACCEPTED_UPWARD
            ):
                upward.append(f"{module} ({LAYERS[layer][0]}) imports {target} ({LAYERS[target_layer][0]})")
    assert upward == [], "imports against the layering:\n" + "\n".join(upward)
