"""Checkers for softmax and attention weights: rows sum to one, non-negative, masked keys get zero."""

from __future__ import annotations

import numpy as np

from nnspec import oracles
from nnspec.case import Case
from nnspec.checkers._draw import qkv
from nnspec.registry import checker


def _logits(case: Case) -> np.ndarray:
    shape = (case.size("batch", (1, 3)), case.size("length", (1, 16)))
    return case.array("x", shape, case.regime())


@checker("softmax_matches_formula", requires=("softmax",))
def softmax_matches_formula(case: Case) -> None:
    """``softmax(x)_i = exp(x_i) / sum_j exp(x_j)`` along the last axis, against float64."""
    x = _logits(case)
    case.close("softmax", case.call("softmax", x, axis=-1), oracles.softmax(x),
               baseline=case.reference.softmax(x))


@checker("softmax_rows_sum_to_one", requires=("softmax",))
def softmax_rows_sum_to_one(case: Case) -> None:
    """Softmax along an axis is non-negative and sums to one along that axis."""
    x = _logits(case)
    axis = case.choice("axis", [-1, 0])
    out = case.call("softmax", x, axis=axis).astype(np.float64)
    lowest = float(np.min(out))
    case.require(lowest >= 0.0, f"negative softmax output {lowest:.3g}", error=max(-lowest, 0.0), tolerance=1.0)
    sums = out.sum(axis=axis)
    case.close(f"softmax sums along axis {axis}", sums, np.ones_like(sums))


@checker("softmax_shift_invariance", requires=("softmax",))
def softmax_shift_invariance(case: Case) -> None:
    """``softmax(x + c) = softmax(x)`` for a per-row constant ``c``, also for large ``c`` (no overflow).

    The shifted input is what the backend receives after rounding to its dtype, so the float64
    expectation is the softmax of exactly that input.
    """
    x = _logits(case)
    magnitude = case.choice("shift", [0.0, 1.0, 50.0, 1e3, 1e4, 1e5])
    sign = case.choice("sign", [1.0, -1.0])
    shifts = case.array("c", (x.shape[0], 1), "uniform", dtype="float64") * 0.5 + sign * magnitude
    shifted = (x.astype(np.float64) + shifts).astype(x.dtype)
    case.keep("x_shifted", shifted)
    out = case.call("softmax", shifted, axis=-1)
    finite = bool(np.all(np.isfinite(out)))
    case.require(finite, f"softmax of logits shifted by {sign * magnitude:g} is not finite (overflow)")
    case.close(f"softmax of logits shifted by about {sign * magnitude:g}", out, oracles.softmax(shifted))


@checker("attention_weight_rows_sum_to_one", requires=("attention_weights",))
def attention_weight_rows_sum_to_one(case: Case) -> None:
    """Attention weights are non-negative and each query's row sums to one, with or without masks."""
    q, k, _ = qkv(case)
    kind, mask = case.mask(q.shape[0], q.shape[2], k.shape[2])
    weights = case.call("attention_weights", q, k, mask=mask).astype(np.float64)
    lowest = float(np.min(weights))
    case.require(lowest >= 0.0, f"negative attention weight {lowest:.3g} (mask {kind})")
    sums = weights.sum(axis=-1)
    case.close(f"row sums of attention weights (mask {kind})", sums, np.ones_like(sums))


@checker("masked_keys_get_zero_weight", requires=("attention_weights",))
def masked_keys_get_zero_weight(case: Case) -> None:
    """A key the mask forbids gets weight exactly zero."""
    q, k, _ = qkv(case)
    kind, mask = case.mask(q.shape[0], q.shape[2], k.shape[2])
    if mask is None:
        return
    weights = case.call("attention_weights", q, k, mask=mask).astype(np.float64)
    forbidden = ~np.broadcast_to(mask, weights.shape)
    leaked = float(np.max(np.abs(weights[forbidden]), initial=0.0))
    case.require(leaked == 0.0, f"weight {leaked:.3g} on a masked key (mask {kind}; must be exactly 0)",
                 error=leaked, tolerance=0.0)
