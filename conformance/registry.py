"""The registry of named checkers: a spec's ``check.name`` picks one.

A checker is a small function that takes a :class:`nnspec.strategies.Case`, draws what it needs
from the property's input domain, calls the backend, and judges the result through the case
(``case.close``, ``case.require``, ``case.significance``). Registering a new one::

    @checker("my_property", requires=("attention",))
    def my_property(case: Case) -> None:
        ...
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nnspec.errors import NnspecError

if TYPE_CHECKING:
    from nnspec.strategies import Case


@dataclass(frozen=True)
class Checker:
    name: str
    function: Callable[[Case], None]
    requires: tuple[str, ...]
    statistical: bool
    doc: str


_CHECKERS: dict[str, Checker] = {}


def checker(
    name: str, *, requires: tuple[str, ...] = (), statistical: bool = False
) -> Callable[[Callable[[Case], None]], Callable[[Case], None]]:
    """Register ``function`` as the checker called ``name``; ``requires`` lists backend primitives."""

    def register(function: Callable[[Case], None]) -> Callable[[Case], None]:
        if name in _CHECKERS and _CHECKERS[name].function is not function:
            raise NnspecError(f"a checker named {name!r} is already registered by {_CHECKERS[name].function!r}")
        _CHECKERS[name] = Checker(name, function, requires, statistical, (function.__doc__ or "").strip())
        return function

    return register


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    import nnspec.checkers as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    _loaded = True


def get(name: str) -> Checker:
    _load_builtin()
    try:
        return _CHECKERS[name]
    except KeyError:
        raise NnspecError(f"no checker named {name!r}; registered: {sorted(_CHECKERS)}") from None


def checker_names() -> set[str]:
    _load_builtin()
    return set(_CHECKERS)
