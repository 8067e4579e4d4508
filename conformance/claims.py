"""The documents' own numeric and mathematical claims, and the computations that judge them.

A claim is an entry under ``claims:`` in a spec file: what a document asserts (``claim``), the
value it gives (``claimed``), and ``check: {name, params}`` naming a registered *claim check*.
A claim check is a small function that recomputes the quantity in float64 NumPy and returns a
:class:`Finding`: one of three verdicts beside the computed value and an explanation.

- ``holds``: the computation agrees with the document to the precision the document states.
- ``imprecise``: true only under a condition the text leaves out, true of a related quantity, or
  rounded beyond the precision the document states.
- ``refuted``: the computation contradicts the document.

Registering a new check::

    @claim_check("softmax_values")
    def softmax_values(claimed, logits):
        ...
        return Finding(verdict, computed, explanation)

``nnspec claims`` prints every verdict; :func:`check_all` returns them as plain dicts for a
results document (``RunDocument.claims``), where the HTML report shows them.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nnspec.documents import DOCUMENTS
from nnspec.errors import NnspecError, SpecError

HOLDS, IMPRECISE, REFUTED = "holds", "imprecise", "refuted"
VERDICTS = (HOLDS, IMPRECISE, REFUTED)


@dataclass(frozen=True)
class Finding:
    """A claim check's answer: the verdict, what it computed, and why."""

    verdict: str
    computed: Any
    explanation: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise NnspecError(f"a claim check must return one of {VERDICTS}. Received: {self.verdict!r}")


@dataclass(frozen=True)
class ClaimCheck:
    name: str
    function: Callable[..., Finding]
    doc: str


_CHECKS: dict[str, ClaimCheck] = {}


def claim_check(name: str) -> Callable[[Callable[..., Finding]], Callable[..., Finding]]:
    """Register ``function(claimed, **params) -> Finding`` as the claim check called ``name``."""

    def register(function: Callable[..., Finding]) -> Callable[..., Finding]:
        if name in _CHECKS and _CHECKS[name].function is not function:
            raise NnspecError(f"a claim check named {name!r} is already registered by {_CHECKS[name].function!r}")
        _CHECKS[name] = ClaimCheck(name, function, (function.__doc__ or "").strip())
        return function

    return register


def _load_builtin() -> None:
    import nnspec.claim_checks  # noqa: F401  (registers on import)


def check_names() -> set[str]:
    _load_builtin()
    return set(_CHECKS)


def get(name: str) -> ClaimCheck:
    _load_builtin()
    try:
        return _CHECKS[name]
    except KeyError:
        raise NnspecError(f"no claim check named {name!r}; registered: {sorted(_CHECKS)}") from None


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
    if "e" in text.lower() and isinstance(claimed, float):
        text = f"{claimed:f}".rstrip("0").rstrip(".")
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
    """The check as a one-line call, e.g. ``softmax_values(claimed=[0.95, ...], logits=[3, 0, 0])``."""
    arguments = [f"claimed={json.dumps(claim.claimed)}"]
    arguments += [f"{key}={json.dumps(value)}" for key, value in claim.params.items()]
    return f"{claim.check}({', '.join(arguments)})"


def evaluate(claim: Any) -> dict[str, Any]:
    """Run one claim's check: ``{id, source, claim, claimed, computed, verdict, explanation, code}``."""
    check = get(claim.check)
    try:
        inspect.signature(check.function).bind(claim.claimed, **claim.params)
    except TypeError as error:
        raise SpecError(f"the claim check {claim.check!r} does not take these parameters ({error}). "
                        f"Received: {claim.params!r}",
                        path=claim.path, property_id=claim.id, field="check.params", line=claim.line) from None
    finding = check.function(claim.claimed, **claim.params)
    explanation = finding.explanation + (f" {claim.notes.strip()}" if claim.notes else "")
    source_lines, first_line = inspect.getsourcelines(check.function)
    module = inspect.getmodule(check.function)
    where = f"# {module.__name__ if module else '?'}, line {first_line}"
    return {
        "id": claim.id,
        "source": [{"document": s.document, "question": s.question} for s in claim.source],
        "claim": claim.claim,
        "claimed": claim.claimed,
        "computed": plain(finding.computed),
        "verdict": finding.verdict,
        "explanation": explanation,
        "code": f"{call_text(claim)}\n\n{where}\n{''.join(source_lines)}",
        "check": {"name": claim.check, "params": claim.params},
    }


def check_all(catalogue: Any) -> list[dict[str, Any]]:
    """Every claim of a catalogue, checked, in id order (see :func:`evaluate` for the keys)."""
    validate(catalogue.claims)
    return [evaluate(claim) for claim in sorted(catalogue.claims, key=lambda c: c.id)]


def _short(value: Any, width: int = 90) -> str:
    text = json.dumps(plain(value), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def main(args: argparse.Namespace) -> int:
    """``nnspec claims``: print each claim's verdict, computed beside claimed, source and check."""
    from nnspec.spec_loader import load_catalogue

    results = check_all(load_catalogue(args.spec))
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
