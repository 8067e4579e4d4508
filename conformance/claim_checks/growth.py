"""The claim check that measures how a computation's cost grows with a size (fits the exponent)."""

from __future__ import annotations

from typing import Any

from nnspec.claim_checks._counting import _FIXED, _SWEEP_OVERRIDES, _SWEEPS, _growth_cost, fit_exponent
from nnspec.claims import Condition, Measurement, claim_check


@claim_check("measured_exponent")
def measured_exponent(computation: str, variables: list[str], fixed: dict[str, int] | None = None,
                      held_constant: list[str] | None = None) -> Measurement:
    """The growth exponent of a real computation's counted operations or traced memory in each size.

    Each variable is swept (the others held at ``fixed``); the exponent is fitted with
    :func:`fit_exponent`, and the claim is judged within the fit's uncertainty. ``held_constant``
    names sizes a claim may be read as treating as constants (a condition the text leaves out).
    """
    sizes = {**_FIXED, **(fixed or {})}
    values: dict[str, Any] = {}
    tolerance: dict[str, float] = {}
    sweeps: dict[str, Any] = {}
    for variable in variables:
        grid = _SWEEP_OVERRIDES.get(computation, {}).get(variable, _SWEEPS[variable])
        costs = [_growth_cost(computation, **{**sizes, variable: g}) for g in grid]
        values[variable], tolerance[variable] = fit_exponent(grid, costs)
        sweeps[variable] = {"sizes": grid, "costs": costs}
    what = "traced peak bytes" if computation.endswith("memory") else "counted operations"
    shown = ", ".join(f"{v}^{values[v]:g} (+-{tolerance[v]:.2g})" for v in variables)
    under: tuple[Condition, ...] = ()
    if held_constant:
        under = (Condition(f"with {', '.join(held_constant)} held constant", dict.fromkeys(held_constant, 0.0)),)
    return Measurement({**values, "sweeps": sweeps}, f"{computation}: {what} over a size sweep grow as {shown}.",
                       tolerance=tolerance, under=under)
