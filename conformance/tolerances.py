"""Tolerances that follow precision.

float64 is judged tightly and float32 loosely: both by default at 256 ulps of their own
epsilon, so the float32 tolerance is the float64 one times eps(float32) / eps(float64);
float16 and bfloat16 are judged against the error that a plain dense implementation in the same
precision makes against a float64 reference (the "baseline"), times a stated factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Machine epsilon per dtype name (bfloat16 keeps 8 bits of mantissa).
EPSILON = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}
LOW_PRECISION = ("float16", "bfloat16")
#: Default tolerance, in units of each dtype's epsilon: errors grow with reductions over the drawn
#: sizes. Half precisions get fewer ulps, since each of their ulps is already coarse.
DEFAULT_ULPS = {"float64": 256.0, "float32": 256.0, "float16": 32.0, "bfloat16": 32.0}
DEFAULT_LOW_PRECISION_FACTOR = 4.0


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    exact: bool = False

    def describe(self) -> str:
        return "exact" if self.exact else f"atol={self.atol:.3g}, rtol={self.rtol:.3g}"


def for_dtype(spec_tolerance: dict[str, Any] | None, dtype: str) -> Tolerance:
    """The tolerance a property allows in ``dtype``: the spec's own value, else ``DEFAULT_ULPS`` ulps.

    A spec's tolerance for one dtype is not carried over to another: a float64 tolerance often
    covers error that is not rounding at all (a finite-difference gradient, say), and scaling it
    by the ratio of epsilons would make the float32 check meaningless.
    """
    spec_tolerance = spec_tolerance or {}
    if spec_tolerance.get("exact"):
        return Tolerance(0.0, 0.0, exact=True)
    if dtype in spec_tolerance:
        pair = spec_tolerance[dtype]
        return Tolerance(float(pair.get("atol", 0.0)), float(pair.get("rtol", 0.0)))
    default = DEFAULT_ULPS[dtype] * EPSILON[dtype]
    return Tolerance(default, default)


@dataclass(frozen=True)
class Comparison:
    """The worst element of a comparison: its error, the tolerance there, and the ratio of the two."""

    error: float
    tolerance: float
    index: tuple[int, ...] | None

    @property
    def ratio(self) -> float:
        if self.tolerance == 0.0:
            return 0.0 if self.error == 0.0 else float("inf")
        return self.error / self.tolerance


def compare(
    actual: np.ndarray,
    expected: np.ndarray,
    tolerance: Tolerance,
    baseline: np.ndarray | None = None,
    low_precision_factor: float = DEFAULT_LOW_PRECISION_FACTOR,
) -> Comparison:
    """Compare ``actual`` with a float64 ``expected``; NaN or inf where ``expected`` is finite is infinitely wrong.

    When ``baseline`` (a same-precision dense result) is given, the allowed error at each element is
    ``low_precision_factor`` times the baseline's own error there, plus the dtype tolerance.
    """
    actual64 = np.asarray(actual, dtype=np.float64)
    expected64 = np.asarray(expected, dtype=np.float64)
    if actual64.shape != expected64.shape:
        raise ValueError(f"shape mismatch: expected {expected64.shape}. Received: {actual64.shape}")
    if actual64.size == 0:
        return Comparison(0.0, tolerance.atol, None)
    error = np.abs(actual64 - expected64)
    both_nan = np.isnan(actual64) & np.isnan(expected64)
    same_inf = np.isinf(expected64) & (actual64 == expected64)
    error = np.where(both_nan | same_inf, 0.0, error)
    error = np.where(np.isnan(error), np.inf, error)
    allowed = tolerance.atol + tolerance.rtol * np.abs(np.where(np.isfinite(expected64), expected64, 0.0))
    if baseline is not None:
        baseline_error = np.abs(np.asarray(baseline, dtype=np.float64) - expected64)
        allowed = allowed + low_precision_factor * np.nan_to_num(baseline_error, nan=0.0, posinf=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(error == 0.0, 0.0, np.where(allowed > 0, error / allowed, np.inf))
    worst = np.unravel_index(int(np.argmax(ratios)), ratios.shape)
    return Comparison(float(error[worst]), float(allowed[worst]), tuple(int(i) for i in worst))


def round_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), returned as float32."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = 0x7FFF + ((bits >> 16) & 1)
    return (((bits + rounding) >> 16) << 16).astype(np.uint32).view(np.float32)


def cast(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` represented in ``dtype``; bfloat16 values are carried as float32."""
    if dtype == "bfloat16":
        return round_to_bfloat16(x.astype(np.float32))
    return np.asarray(x).astype(dtype)
