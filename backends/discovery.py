"""Finding backends: entry points in the ``nnspec.backends`` group, or ``module:Class`` paths.

nnspec's own backends are registered through the same entry-point group as third-party ones.
A backend that fails to import is reported as unavailable with its error; it never stops a run.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

from nnspec.backends.base import Backend
from nnspec.errors import BackendError

GROUP = "nnspec.backends"


@dataclass
class BackendTarget:
    """One target of a backend (``torch:cuda``), available here or not."""

    target: str
    backend_class: type[Backend] | None
    device: str
    variant: str | None
    reason: str = ""
    #: The ``--backend`` value that selects exactly this target (for reproduce lines).
    selector: str = ""

    @property
    def is_available(self) -> bool:
        return not self.reason

    def instantiate(self) -> Backend:
        if self.backend_class is None or self.reason:
            raise BackendError(f"backend target {self.target!r} is unavailable: {self.reason}")
        return self.backend_class(device=self.device, variant=self.variant)


def _load_class(path: str) -> type[Backend]:
    module_name, _, class_name = path.partition(":")
    if not module_name or not class_name:
        raise BackendError(f"a backend path looks like 'package.module:ClassName'. Received: {path!r}")
    module = importlib.import_module(module_name)
    try:
        backend_class = getattr(module, class_name)
    except AttributeError:
        raise BackendError(f"module {module_name!r} has no attribute {class_name!r} (from {path!r})") from None
    if not (isinstance(backend_class, type) and issubclass(backend_class, Backend)):
        raise BackendError(f"{path!r} is not a subclass of nnspec.backends.Backend. Received: {backend_class!r}")
    return backend_class


def entry_point_names() -> dict[str, str]:
    """Registered backend names and the ``module:Class`` each points at; duplicates rejected."""
    found: dict[str, str] = {}
    for entry in entry_points(group=GROUP):
        if entry.name in found and found[entry.name] != entry.value:
            raise BackendError(
                f"two installed packages register the backend name {entry.name!r}: "
                f"{found[entry.name]!r} and {entry.value!r}; uninstall one or select one by module:Class path"
            )
        found[entry.name] = entry.value
    return found


def _targets_of(label: str, path: str, wanted: str | None) -> list[BackendTarget]:
    try:
        backend_class = _load_class(path)
    except Exception as error:  # an import failure of a plug-in is reported, not raised
        reason = f"failed to import {path}: {type(error).__name__}: {error}"
        return [BackendTarget(f"{label}:{wanted or '?'}", None, wanted or "?", None, reason)]
    offered = backend_class.targets()
    if not offered:
        return [BackendTarget(f"{label}:{wanted or '?'}", backend_class, wanted or "?", None,
                              f"{path}.targets() offers no target")]
    if wanted is not None:
        # Exactly the target named, or the targets a glob matches: 'cpu' is cpu alone, 'cpu*' its variants too.
        matches = [t for t in offered if fnmatch.fnmatchcase(t, wanted)]
        if not matches:
            raise BackendError(
                f"backend {label!r} offers targets {offered}; {wanted!r} is not one of them "
                "(nor a glob matching one, such as 'cpu*')"
            )
        offered = matches
    result = []
    for spec in offered:
        device, _, variant = spec.partition("/")
        ok, why = backend_class.available(spec)
        name = f"{backend_class.name}:{spec}"
        exact = f"{label}@{spec}" if ":" in label else f"{label}:{spec}"  # module:Class paths take '@'
        result.append(BackendTarget(name, backend_class, device, variant or None, "" if ok else why, exact))
    return result


def _current_folder_importable() -> None:
    """Put the current folder first on ``sys.path``, as ``python -m`` does, so that a backend named
    by import path (``mykernels.softmax:Base2SoftmaxBackend``) imports from where nnspec is run."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def resolve(selector: str) -> list[BackendTarget]:
    """Targets for one ``--backend`` value.

    ``torch`` is every target of the backend, ``torch:cpu`` exactly that target, ``torch:cpu*``
    (a shell-style glob) the targets it matches: ``cpu``, ``cpu/math``, ``cpu/flash``. A plug-in
    named by import path takes ``@`` for the target: ``pkg.mod:Class``, ``pkg.mod:Class@cpu*``.
    """
    names = entry_point_names()
    head, _, device = selector.partition(":")
    if head in names:
        return _targets_of(head, names[head], device or None)
    if ":" in selector:
        path, _, wanted = selector.partition("@")
        _current_folder_importable()
        return _targets_of(path, path, wanted or None)
    raise BackendError(
        f"unknown backend {selector!r}. Known names: {sorted(names)}; "
        "a plug-in may also be named by import path, 'package.module:ClassName'"
    )


def discover(default_run: bool = False) -> list[BackendTarget]:
    """Every target of every registered backend, sorted by target name.

    With ``default_run``, only those of a plain ``nnspec run`` (no ``--backend``): a backend class
    with ``in_default_run = False`` (the ecosystem adapters) is left out; ``-b NAME`` selects it.
    """
    targets: list[BackendTarget] = []
    for name in sorted(entry_point_names()):
        found = resolve(name)
        if default_run and any(t.backend_class is not None and not t.backend_class.in_default_run for t in found):
            continue
        targets.extend(found)
    return sorted(targets, key=lambda t: t.target)
