"""The documents' own numeric and mathematical claims, and the computations that judge them.

A claim is an entry under ``claims:`` in a spec file: what a document asserts in our words
(``claim``), the document's own words (``quote``, optional), what it asserts *as data*
(``claimed``), and ``check: {name, params}`` naming a registered *claim check*.

``claimed`` takes one of five forms (the schema, ``$defs/claimed``, enforces them):

- a number or a quantity as the document writes it (``0.62``, ``"16.8TB"``, ``"262K"``, ``"3x"``);
- a list of them (``[0.95, 0.025, 0.025]``);
- named quantities (``{mask: 0.8, random: 0.1, unchanged: 0.1}``, ``{n: 2, d: 1}``);
- a proposition with its evidence (``{proposition: equivariant, is: true, evidence: [equivariance_gap]}``);
- a relation between quantities (``{relation: ">", left: scores_without_cache, right: scores_with_cache}``).

A claim check computes from its parameters alone, **never from the claimed value** (it is not
passed to it): it returns a :class:`Measurement`, the named quantities and facts it computed with
their explanation. :func:`judge` then holds the claimed data against the measurement and gives one
of the verdicts:

- ``holds``: the computation agrees with the document to the precision the document states (or,
  for a measured or sampled quantity, within the measurement's stated uncertainty or test).
- ``imprecise``: rounded beyond the precision stated, or true only under a condition the text leaves
  out (a :class:`Condition` of the measurement under which the claim would hold).
- ``refuted``: the computation contradicts the document.
- ``unchecked``: the claim is about a framework that is not installed here; never a pass.

Registering a new check::

    @claim_check("softmax_values")
    def softmax_values(logits):
        weights = ...
        return Measurement({"weights": weights}, "softmax(...) = ...", primary="weights")

``nnspec claims`` prints every verdict; :func:`check_all` returns them as plain dicts for a
results document (``RunDocument.claims``), where the HTML report shows them.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnspec.documents import DOCUMENTS
from nnspec.errors import NnspecError, SpecError
from nnspec.model import Catalogue
from nnspec.registry import import_modules, lookup

HOLDS, IMPRECISE, REFUTED, UNCHECKED = "holds", "imprecise", "refuted", "unchecked"
VERDICTS = (HOLDS, IMPRECISE, REFUTED, UNCHECKED)
_SEVERITY = (HOLDS, IMPRECISE, REFUTED, UNCHECKED)

#: What a claim's ``claimed`` data is, as :func:`claimed_kind` names it.
KINDS = ("number", "list", "quantities", "proposition", "relation")


@dataclass(frozen=True)
class Finding:
    """A claim's verdict, what was computed, and why."""

    verdict: str
    computed: Any
    explanation: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise NnspecError(f"a claim check must return one of {VERDICTS}. Received: {self.verdict!r}")


@dataclass(frozen=True)
class Condition:
    """Values the quantities take under a condition the document leaves out (``text`` says which).

    A claim that disagrees with the measurement but agrees with it under the condition is
    *imprecise*, not refuted.
    """

    text: str
    values: Mapping[str, Any]
    tolerance: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Measurement:
    """What a claim check computed, from its parameters alone.

    ``values``: named quantities (numbers, lists) and facts (booleans; ``None`` when the framework
    they are about is absent). ``primary``: the quantity a claim that is a bare number or list
    is compared with. ``tolerance``: an absolute uncertainty per quantity (a fitted exponent's, a
    sampled statistic's test band) that replaces the precision the document's digits state.
    ``under``: the same quantities under conditions the document leaves out.
    """

    values: dict[str, Any]
    explanation: str
    primary: str | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    under: tuple[Condition, ...] = ()
    band: float = 0.1


@dataclass(frozen=True)
class ClaimCheck:
    name: str
    function: Callable[..., Measurement]


_CHECKS: dict[str, ClaimCheck] = {}


def claim_check(name: str) -> Callable[[Callable[..., Measurement]], Callable[..., Measurement]]:
    """Register ``function(**params) -> Measurement`` as the claim check called ``name``.

    The function never receives the claimed value: a check that takes a parameter called
    ``claimed`` is rejected here.
    """

    def register(function: Callable[..., Measurement]) -> Callable[..., Measurement]:
        if "claimed" in inspect.signature(function).parameters:
            raise NnspecError(f"a claim check computes without the claimed value; {function.__name__} takes "
                              f"a parameter 'claimed'. Received: {function!r}")
        if name in _CHECKS and _CHECKS[name].function is not function:
            raise NnspecError(f"a claim check named {name!r} is already registered by {_CHECKS[name].function!r}")
        _CHECKS[name] = ClaimCheck(name, function)
        return function

    return register


def _load_builtin() -> None:
    """Import every module of :mod:`nnspec.claim_checks` (each registers its checks on import)."""
    import_modules("nnspec.claim_checks")


def check_names() -> set[str]:
    _load_builtin()
    return set(_CHECKS)


def get(name: str) -> ClaimCheck:
    _load_builtin()
    return lookup(_CHECKS, name, "claim check")

# --- judging numbers against the precision a document states -------------------------------------

_MULTIPLIERS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "T": 1e12}
_QUANTITY = re.compile(
    r"^\s*(?P<sign>[-+±]?)(?P<number>\d[\d,]*(?:\.\d+)?|\.\d+)\s*(?P<scale>[KMGTB]?)(?P<unit>B|x|×|%|s|min)?\s*$"
)


@dataclass(frozen=True)
class Quantity:
    """A number as a document writes it: its value and half a unit of its last stated digit."""

    value: float
    half_unit: float
    text: str
    scale: str = ""
    unit: str = ""

    def show(self, computed: float) -> str:
        """``computed`` written in this quantity's scale and unit, for side-by-side reading."""
        return _format(computed / _MULTIPLIERS[self.scale]) + self.scale + self.unit


def quantity(claimed: Any) -> Quantity:
    """Read ``350``, ``0.62``, ``"16.8TB"``, ``"262K"``, ``"10B"`` (billion), ``"16x"`` into a Quantity.

    Precision follows the digits written: ``11.83`` is good to 0.005, ``16.8TB`` to 0.05 TB, ``350``
    to 5 (trailing zeros of a whole number are read as not significant).
    """
    if isinstance(claimed, bool) or not isinstance(claimed, (int, float, str)):
        raise NnspecError(f"expected a number or a quantity such as '16.8TB'. Received: {claimed!r}")
    text = repr(claimed) if isinstance(claimed, float) else str(claimed)
    if isinstance(claimed, float) and not math.isfinite(claimed):
        raise NnspecError(f"expected a finite number. Received: {claimed!r}")
    if isinstance(claimed, float) and "e" in text.lower():
        mantissa, exponent = text.lower().split("e")
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return Quantity(claimed, 10.0 ** (int(exponent) - decimals) / 2, text)
    match = _QUANTITY.match(text)
    if not match:
        raise NnspecError(f"expected a number or a quantity such as '16.8TB'. Received: {claimed!r}")
    digits = match["number"].replace(",", "")
    scale, unit = match["scale"], match["unit"] or ""
    multiplier = _MULTIPLIERS[scale]
    if "." in digits:
        step = 10.0 ** -len(digits.split(".")[1])
    else:
        trailing = len(digits) - len(digits.rstrip("0")) if digits.strip("0") else 0
        step = 10.0**trailing
    value = float(digits) * (-1 if match["sign"] == "-" else 1)
    return Quantity(value * multiplier, step * multiplier / 2, text.strip(), scale, unit)


def _format(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.4g}"
    return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.2f}".rstrip("0").rstrip(".")


def judge_number(computed: float, claimed: Any, *, band: float = 0.1) -> tuple[str, str]:
    """``holds`` within half a unit of the claim's last digit, ``imprecise`` within ``band``
    (relative), ``refuted`` beyond; with a sentence saying which."""
    stated = quantity(claimed)
    gap = abs(computed - stated.value)
    shown = stated.show(computed)
    if gap <= stated.half_unit * (1 + 1e-9):
        return HOLDS, f"{shown} agrees with {stated.text} to the precision stated"
    if gap <= band * abs(stated.value):
        return IMPRECISE, f"{shown} is {stated.text} only after rounding beyond the precision stated"
    relative = gap / abs(stated.value) if stated.value else math.inf
    return REFUTED, f"{shown} differs from {stated.text} by {relative:.0%}"


def judge_numbers(computed: Sequence[float], claimed: Sequence[Any], *, band: float = 0.1) -> tuple[str, str]:
    """Element by element; the verdict is the worst element's."""
    if len(computed) != len(claimed):
        return REFUTED, f"{len(computed)} values computed, {len(claimed)} claimed"
    verdicts = [judge_number(c, s, band=band) for c, s in zip(computed, claimed, strict=True)]
    worst = max(verdicts, key=lambda pair: VERDICTS.index(pair[0]))[0]
    wrong = [f"[{index}] {text}" for index, (verdict, text) in enumerate(verdicts) if verdict != HOLDS]
    return worst, "; ".join(wrong) if wrong else "every element agrees to the precision stated"


def claimed_kind(claimed: Any) -> str:
    """Which of :data:`KINDS` a claim's ``claimed`` data is."""
    if isinstance(claimed, Mapping):
        if "proposition" in claimed:
            return "proposition"
        if "relation" in claimed:
            return "relation"
        return "quantities"
    if isinstance(claimed, (list, tuple)):
        return "list"
    return "number"


_RELATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
}
#: The relation that is false exactly where each one is true.
NEGATED_RELATIONS = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!="}
_RELATIONS["!="] = operator.ne


def _lookup(values: Mapping[str, Any], name: str) -> Any:
    if name not in values:
        raise NnspecError(f"the measurement has no quantity {name!r}; it has {sorted(values)}. Received: {name!r}")
    return values[name]


def _as_numbers(value: Any) -> list[float]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [float(v) for v in value]


def _judge_one(computed: Any, claimed: Any, tolerance: float | None, band: float) -> tuple[str, str]:
    """One claimed value (number, quantity or list) against one computed value."""
    if computed is None:
        return UNCHECKED, "not computed here (the framework it is about is not installed)"
    if isinstance(claimed, bool) or isinstance(computed, bool):
        same = bool(computed) == bool(claimed)
        return (HOLDS if same else REFUTED), f"computed {bool(computed)}, claimed {bool(claimed)}"
    if isinstance(claimed, str) and not _QUANTITY.match(claimed):
        same = str(computed) == claimed
        return (HOLDS if same else REFUTED), f"computed {computed!r}, claimed {claimed!r}"
    if isinstance(claimed, (list, tuple)):
        numbers = _as_numbers(computed)
        if len(numbers) != len(claimed):
            return REFUTED, f"{len(numbers)} values computed, {len(claimed)} claimed"
        parts = [_judge_one(c, s, tolerance, band) for c, s in zip(numbers, claimed, strict=True)]
        worst = max((v for v, _ in parts), key=_SEVERITY.index)
        wrong = [f"[{i}] {text}" for i, (v, text) in enumerate(parts) if v != HOLDS]
        return worst, "; ".join(wrong) if wrong else "every element agrees"
    value = float(computed)
    if tolerance is not None:
        stated = quantity(claimed)
        gap = abs(value - stated.value)
        if gap <= tolerance:
            return HOLDS, f"{_format(value)} is within {_format(tolerance)} of {stated.text}"
        return REFUTED, f"{_format(value)} is {_format(gap)} from {stated.text}, beyond the uncertainty {_format(tolerance)}"
    if isinstance(claimed, int):
        same = value == claimed
        return (HOLDS if same else REFUTED), f"{_format(value)} {'equals' if same else 'is not'} {claimed}"
    return judge_number(value, claimed, band=band)


def _judge_values(claimed: Any, values: Mapping[str, Any], measurement: Measurement,
                  condition: Condition | None = None) -> tuple[str, str]:
    kind = claimed_kind(claimed)
    tolerance = {**measurement.tolerance, **(condition.tolerance if condition else {})}
    if kind in ("number", "list"):
        if measurement.primary is None:
            raise NnspecError(f"a bare {kind} was claimed but the measurement names no primary quantity; it has "
                              f"{sorted(values)}. Received: {claimed!r}")
        name = measurement.primary
        verdict, text = _judge_one(_lookup(values, name), claimed, tolerance.get(name), measurement.band)
        return verdict, f"{name}: {text}"
    if kind == "quantities":
        parts = [(name, *_judge_one(_lookup(values, name), value, tolerance.get(name), measurement.band))
                 for name, value in claimed.items()]
        worst = max((v for _, v, _ in parts), key=_SEVERITY.index)
        return worst, "; ".join(f"{name}: {text}" for name, _, text in parts)
    if kind == "proposition":
        fact = _lookup(values, claimed["proposition"])
        for name in claimed.get("evidence", []):
            _lookup(values, name)
        if fact is None:
            return UNCHECKED, f"{claimed['proposition']}: not computed here (the framework it is about is not installed)"
        same = bool(fact) == bool(claimed["is"])
        return (HOLDS if same else REFUTED), f"{claimed['proposition']} is {bool(fact)}, claimed {bool(claimed['is'])}"
    operands = []
    for side in ("left", "right"):
        operand = claimed[side]
        operands.append(_lookup(values, operand) if isinstance(operand, str) else operand)
    if any(o is None for o in operands):
        return UNCHECKED, "an operand was not computed here (the framework it is about is not installed)"
    relation = claimed["relation"]
    true = _RELATIONS[relation](float(operands[0]), float(operands[1]))
    sides = [f"{name} = {_format(float(value))}" if isinstance(name, str) else _format(float(value))
             for name, value in zip((claimed["left"], claimed["right"]), operands, strict=True)]
    shown = f"{sides[0]} {relation} {sides[1]}"
    return (HOLDS if true else REFUTED), f"{shown} is {'true' if true else 'false'}"


def judge(claimed: Any, measurement: Measurement) -> tuple[str, str]:
    """The verdict on ``claimed`` data against a measurement, with a sentence saying why.

    A claim refuted or rounded against the measurement but holding under one of its conditions
    (``measurement.under``) is *imprecise*, and the sentence names the condition.
    """
    verdict, text = _judge_values(claimed, measurement.values, measurement)
    if verdict in (REFUTED, IMPRECISE):
        for condition in measurement.under:
            alternative, _ = _judge_values(claimed, {**measurement.values, **condition.values}, measurement, condition)
            if alternative == HOLDS:
                return IMPRECISE, f"{text}; it holds only {condition.text}, which the text leaves out"
    return verdict, text


def truth_of(claimed: Any, measurement: Measurement) -> Any:
    """``claimed`` rewritten to say what the measurement found (the claim a correct document would make)."""
    kind = claimed_kind(claimed)
    values = measurement.values

    def as_data(value: Any) -> Any:
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, (list, tuple)):
            return [as_data(v) for v in value]
        return value if isinstance(value, (bool, str)) else float(value)

    if kind in ("number", "list"):
        return as_data(values[measurement.primary])  # type: ignore[index]
    if kind == "quantities":
        return {name: as_data(values[name]) if not isinstance(claimed[name], bool) else bool(values[name])
                for name in claimed}
    if kind == "proposition":
        return {**claimed, "is": bool(values[claimed["proposition"]])}
    verdict, _ = _judge_values(claimed, values, measurement)
    return claimed if verdict == HOLDS else {**claimed, "relation": NEGATED_RELATIONS[claimed["relation"]]}


def plain(value: Any) -> Any:
    """NumPy scalars and arrays as JSON-ready Python values, floats to 6 significant digits."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return str(value)


# --- checking a catalogue's claims -------------------------------------------------------------------


def validate(claims: Iterable[Any]) -> None:
    """Every claim names a registered check and a known document, else a SpecError naming both."""
    known = check_names()
    for claim in claims:
        if claim.check not in known:
            raise SpecError(
                f"unknown claim check; registered claim checks are {sorted(known)}. Received: {claim.check!r}",
                path=claim.path, property_id=claim.id, field="check.name", line=claim.line,
            )
        for index, source in enumerate(claim.source):
            if source.document not in DOCUMENTS:
                raise SpecError(
                    f"unknown document; expected one of {sorted(DOCUMENTS)}. Received: {source.document!r}",
                    path=claim.path, property_id=claim.id, field=f"source.{index}.document", line=claim.line,
                )


def call_text(claim: Any) -> str:
    """The check as a one-line call, e.g. ``softmax_values(logits=[3, 0, 0])``: the claimed value is not an argument."""
    arguments = [f"{key}={json.dumps(value)}" for key, value in claim.params.items()]
    return f"{claim.check}({', '.join(arguments)})"


def measure(claim: Any) -> Measurement:
    """Run one claim's check on its parameters (never on its claimed value)."""
    check = get(claim.check)
    try:
        inspect.signature(check.function).bind(**claim.params)
    except TypeError as error:
        raise SpecError(f"the claim check {claim.check!r} does not take these parameters ({error}). "
                        f"Received: {claim.params!r}",
                        path=claim.path, property_id=claim.id, field="check.params", line=claim.line) from None
    measurement = check.function(**claim.params)
    if not isinstance(measurement, Measurement):
        raise NnspecError(f"the claim check {claim.check!r} must return a Measurement. Received: {measurement!r}")
    return measurement


def verdict_of(claim: Any, measurement: Measurement, claimed: Any) -> tuple[str, str]:
    """:func:`judge` with errors that name the claim's file and field."""
    try:
        return judge(claimed, measurement)
    except NnspecError as error:
        raise SpecError(str(error), path=claim.path, property_id=claim.id, field="claimed", line=claim.line) from None


def evaluate(claim: Any) -> dict[str, Any]:
    """Run one claim's check: ``{id, source, claim, quote, claimed, computed, verdict, explanation, code}``."""
    check = get(claim.check)
    measurement = measure(claim)
    verdict, detail = verdict_of(claim, measurement, claim.claimed)
    explanation = f"{measurement.explanation} Verdict: {detail}." + (f" {claim.notes.strip()}" if claim.notes else "")
    source_lines, first_line = inspect.getsourcelines(check.function)
    module = inspect.getmodule(check.function)
    where = f"# {module.__name__ if module else '?'}, line {first_line}"
    return {
        "id": claim.id,
        "source": [{"document": s.document, "question": s.question} for s in claim.source],
        "claim": claim.claim,
        "quote": getattr(claim, "quote", "") or "",
        "claimed": claim.claimed,
        "kind": claimed_kind(claim.claimed),
        "computed": plain(measurement.values),
        "verdict": verdict,
        "explanation": explanation,
        "code": f"{call_text(claim)}\n\n{where}\n{''.join(source_lines)}",
        "check": {"name": claim.check, "params": claim.params},
    }


def check_all(catalogue: Catalogue) -> list[dict[str, Any]]:
    """Every claim of a catalogue, checked, in id order (see :func:`evaluate` for the keys)."""
    validate(catalogue.claims)
    return [evaluate(claim) for claim in sorted(catalogue.claims, key=lambda c: c.id)]


def _short(value: Any, width: int = 90) -> str:
    text = json.dumps(plain(value), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def main(args: argparse.Namespace, catalogue: Catalogue) -> int:
    """``nnspec claims``: print each verdict of ``catalogue``'s claims, computed beside claimed, source and check."""
    results = check_all(catalogue)
    counts = {verdict: sum(r["verdict"] == verdict for r in results) for verdict in VERDICTS}
    if args.verdict:
        results = [r for r in results if r["verdict"] in args.verdict]
    if args.format == "json":
        print(json.dumps(results, indent=1, ensure_ascii=False))
        return 0
    for result in results:
        print(f"{result['verdict'].upper():<9} {result['id']}")
        print(f"  claim:     {result['claim']}")
        print(f"  claimed:   {_short(result['claimed'])}")
        print(f"  computed:  {_short(result['computed'])}")
        print(f"  why:       {result['explanation']}")
        for source in result["source"]:
            print(f"  source:    {source['document']} / {source['question']}")
        print(f"  check:     {result['code'].splitlines()[0]}\n")
    shown = f" ({len(results)} shown)" if args.verdict else ""
    print(", ".join(f"{counts[v]} {v}" for v in VERDICTS) + f" of {sum(counts.values())} claims{shown}")
    return 0
