"""Checkers for scaled dot-product attention: the formula, permutation symmetry, causal masking."""

from __future__ import annotations

import numpy as np

from nnspec import oracles
from nnspec.case import Case
from nnspec.checkers._draw import permutation, qkv
from nnspec.oracles import magnitude as _magnitude
from nnspec.registry import Param, checker
from nnspec.tolerances import LOW_PRECISION


def _half_precision_baseline(case: Case, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                             allowed: np.ndarray | None) -> np.ndarray | None:
    """In float16/bfloat16, the result of a plain dense attention in that precision (the yardstick)."""
    if case.dtype() not in LOW_PRECISION:
        return None
    return oracles.attention_in_precision(q, k, v, case.dtype(), allowed)


@checker("attention_matches_formula", requires=("attention",))
def attention_matches_formula(case: Case) -> None:
    """``attention(q, k, v, mask)`` equals ``softmax(q k^T / sqrt(d_k)) v`` computed in float64."""
    q, k, v = qkv(case)
    _, mask = case.mask(q.shape[0], q.shape[2], k.shape[2])
    actual = case.call("attention", q, k, v, mask=mask)
    baseline = _half_precision_baseline(case, q, k, v, mask)
    case.close("attention output", actual, oracles.attention(q, k, v, mask), baseline=baseline,
               magnitude=_magnitude(v))


@checker("self_attention_permutation_equivariance", requires=("attention",))
def self_attention_permutation_equivariance(case: Case) -> None:
    """Permuting the sequence of q, k and v together permutes the output the same way."""
    q, k, v = qkv(case, self_attention=True)
    order = permutation(case, q.shape[2])
    out = case.call("attention", q, k, v)
    permuted = case.call("attention", q[:, :, order], k[:, :, order], v[:, :, order])
    case.close("attention(Pq, Pk, Pv) against P attention(q, k, v)", permuted, out[:, :, order].astype(np.float64),
               magnitude=_magnitude(v))


@checker("key_value_permutation_invariance", requires=("attention",))
def key_value_permutation_invariance(case: Case) -> None:
    """Permuting keys and values together leaves every query's output unchanged."""
    q, k, v = qkv(case)
    order = permutation(case, k.shape[2])
    out = case.call("attention", q, k, v)
    shuffled = case.call("attention", q, k[:, :, order], v[:, :, order])
    case.close("attention(q, Pk, Pv) against attention(q, k, v)", shuffled, out.astype(np.float64),
               magnitude=_magnitude(v))


@checker("causal_mask_breaks_equivariance", requires=("attention",))
def causal_mask_breaks_equivariance(case: Case) -> None:
    """With ``is_causal``, reversing the sequence does not commute with attention (L >= 2).

    After reversal the first query sees only the old last token, so its output is exactly that
    token's value, while the reversed causal output there mixes every value: the two differ by
    far more than rounding for inputs in general position.
    """
    q, k, v = qkv(case, self_attention=True)
    reverse = np.arange(q.shape[2])[::-1]
    out = case.call("attention", q, k, v, is_causal=True)
    flipped = case.call("attention", q[:, :, reverse], k[:, :, reverse], v[:, :, reverse], is_causal=True)
    gap = float(np.max(np.abs(flipped.astype(np.float64) - out[:, :, reverse])))
    # What equivariance would leave: rounding of a few ulps of the values' magnitude.
    floor = 1e3 * case.epsilon() * float(np.max(np.abs(v)))
    case.require(
        gap > floor,
        f"the causal output commutes with reversing the sequence (largest difference {gap:.3g} <= {floor:.3g}): "
        "the causal mask is not applied",
        error=floor, tolerance=max(gap, 1e-300),
    )


@checker("causal_future_independence", requires=("attention",))
def causal_future_independence(case: Case) -> None:
    """Changing q, k or v at positions after ``i`` leaves the causal output at ``i`` and before unchanged."""
    q, k, v = qkv(case, self_attention=True)
    length = q.shape[2]
    position = case.size("position", (0, max(length - 2, 0)))
    position = min(position, length - 1)
    out = case.call("attention", q, k, v, is_causal=True)
    later = slice(position + 1, None)
    regime = case.regime("perturbation")
    q2, k2, v2 = q.copy(), k.copy(), v.copy()
    for name, array in (("q_future", q2), ("k_future", k2), ("v_future", v2)):
        array[:, :, later] = case.array(name, array[:, :, later].shape, regime, scale=10.0)
    changed = case.call("attention", q2, k2, v2, is_causal=True)
    case.close(f"causal output at positions <= {position} after changing later positions",
               changed[:, :, : position + 1], out[:, :, : position + 1].astype(np.float64),
               magnitude=_magnitude(v))


@checker("causal_weights_upper_triangle_zero", requires=("attention_weights",))
def causal_weights_upper_triangle_zero(case: Case) -> None:
    """Causal weights are exactly zero above the diagonal, and the first query puts weight 1 on itself."""
    q, k, _ = qkv(case, self_attention=True)
    weights = case.call("attention_weights", q, k, is_causal=True).astype(np.float64)
    above = np.triu(np.ones(weights.shape[-2:], dtype=bool), 1)
    leaked = float(np.max(np.abs(weights[..., above]), initial=0.0))
    case.require(leaked == 0.0, f"weight {leaked:.3g} on a future key (must be exactly 0)",
                 error=leaked, tolerance=0.0)
    case.close("weight of the first query on itself", weights[..., 0, 0], np.ones(weights.shape[:-2]))


@checker("causal_first_position_attends_itself", requires=("attention",))
def causal_first_position_attends_itself(case: Case) -> None:
    """Under a causal mask the first position's output is exactly its own value vector."""
    q, k, v = qkv(case, self_attention=True)
    out = case.call("attention", q, k, v, is_causal=True)
    case.close("causal output at position 0", out[:, :, 0], v[:, :, 0].astype(np.float64))


@checker("tiled_equals_dense", requires=("tiled_attention",), params={"causal": Param(bool, default=False), "self_attention": Param(bool, default=False)})
def tiled_equals_dense(case: Case) -> None:
    """Block-by-block attention with an online softmax equals dense attention for any block sizes."""
    q, k, v = qkv(case, self_attention=bool(case.params.get("self_attention", False)))
    q_len, k_len = q.shape[2], k.shape[2]
    block_q = case.size("block_q", (1, q_len + 2))
    block_k = case.size("block_k", (1, k_len + 2))
    # A property about causality draws a causal mask in every example, not by a coin flip.
    is_causal = bool(case.params.get("causal", False))
    actual = case.call("tiled_attention", q, k, v, block_q, block_k, is_causal=is_causal)
    allowed = oracles.causal(q_len, k_len) if is_causal else None
    baseline = _half_precision_baseline(case, q, k, v, allowed)
    case.close(f"tiled attention (blocks {block_q}x{block_k}, causal={is_causal}) against dense",
               actual, oracles.attention(q, k, v, allowed), baseline=baseline, magnitude=_magnitude(v))
