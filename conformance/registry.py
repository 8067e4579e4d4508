"""The registry of named checkers: a spec's ``check.name`` picks one.

A checker is a small function that takes a :class:`nnspec.case.Case`, draws what it needs
from the property's input domain, calls the backend, and judges the result through the case
(``case.close``, ``case.require``, ``case.significance``). Registering a new one::

    @checker("my_property", requires=("attention",), params={"causal": Param(bool, default=False)})
    def my_property(case: Case) -> None:
        causal = bool(case.params.get("causal", False))

Every key the body reads from ``case.params`` is declared in ``params`` (a test keeps them in step);
the loader rejects a spec that names an undeclared parameter or gives one of the wrong type or out
of range. Third-party checkers register the same way, from a module named by an entry point in the
group ``nnspec.checkers`` (importing the module runs its ``@checker`` decorators).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from nnspec.errors import NnspecError

if TYPE_CHECKING:
    from nnspec.case import Case


ENTRY_POINT_GROUP = "nnspec.checkers"
_Entry = TypeVar("_Entry")
_REQUIRED = object()
_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}


@dataclass(frozen=True)
class Param:
    """One parameter a checker reads from ``check.params``.

    ``kind`` is ``bool``, ``int``, ``float`` (an integer is accepted), ``str`` or ``list``;
    ``choices`` bounds a ``str`` value or each item of a ``list``; ``minimum``/``maximum`` bound a
    number (inclusive). A parameter without a ``default`` is required.
    """

    kind: type
    default: Any = _REQUIRED
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in _TYPE_NAMES:
            raise NnspecError(f"a checker parameter's kind must be one of {sorted(t.__name__ for t in _TYPE_NAMES)}. "
                              f"Received: {self.kind!r}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this parameter, or ``None`` when it is."""
        expected = _TYPE_NAMES[self.kind]
        if self.kind is float:
            fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            fits = isinstance(value, self.kind) and not (self.kind is int and isinstance(value, bool))
        if not fits:
            return f"expected {expected}, not {type(value).__name__}"
        if self.kind in (int, float) and self.minimum is not None and value < self.minimum:
            return f"expected at least {self.minimum}"
        if self.kind in (int, float) and self.maximum is not None and value > self.maximum:
            return f"expected at most {self.maximum}"
        if self.choices is not None:
            items = value if self.kind is list else [value]
            if self.kind is list and not items:
                return f"expected a non-empty list of {list(self.choices)}"
            for item in items:
                if item not in self.choices:
                    hint = suggest(str(item), [str(c) for c in self.choices])
                    return f"expected one of {list(self.choices)}, not {item!r}{hint}"
        return None


def suggest(word: str, candidates: Any) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def lookup(table: Mapping[str, _Entry], name: str, kind: str) -> _Entry:
    """``table[name]``, or an error naming ``kind``, the closest registered name and all of them."""
    try:
        return table[name]
    except KeyError:
        raise NnspecError(f"no {kind} named {name!r}{suggest(name, table)}; registered: {sorted(table)}") from None


def import_modules(package_name: str) -> None:
    """Import every module of the package ``package_name``: how a registry finds what registers on import."""
    package = importlib.import_module(package_name)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


@dataclass(frozen=True)
class Checker:
    name: str
    function: Callable[[Case], None]
    requires: tuple[str, ...]
    statistical: bool
    params: Mapping[str, Param] = field(default_factory=dict)


_CHECKERS: dict[str, Checker] = {}


def checker(
    name: str, *, requires: tuple[str, ...] = (), statistical: bool = False, params: Mapping[str, Param] | None = None
) -> Callable[[Callable[[Case], None]], Callable[[Case], None]]:
    """Register ``function`` as the checker called ``name``.

    ``requires`` lists backend primitives; ``params`` declares every ``check.params`` key the
    checker reads, with its :class:`Param`.
    """
    declared = dict(params or {})
    for key, param in declared.items():
        if not isinstance(param, Param):
            raise NnspecError(f"checker {name!r}: parameter {key!r} must be declared with Param(...). Received: {param!r}")

    def register(function: Callable[[Case], None]) -> Callable[[Case], None]:
        if name in _CHECKERS and _CHECKERS[name].function is not function:
            raise NnspecError(f"a checker named {name!r} is already registered by {_CHECKERS[name].function!r}")
        _CHECKERS[name] = Checker(name, function, requires, statistical, declared)
        return function

    return register


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    import_modules("nnspec.checkers")
    _loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()  # importing the module registers its checkers
        except Exception as error:
            raise NnspecError(f"the {ENTRY_POINT_GROUP} entry point {entry.name!r} ({entry.value}) "
                              f"could not be loaded: {type(error).__name__}: {error}") from error


def get(name: str) -> Checker:
    _load_builtin()
    return lookup(_CHECKERS, name, "checker")


def checker_names() -> set[str]:
    _load_builtin()
    return set(_CHECKERS)
