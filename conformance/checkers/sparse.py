"""Checkers for sparse attention patterns, each expressed as a boolean mask passed to ``attention``.

Patterns (self-attention, one per head, built here): a sliding window (|i - j| <= w), a dilated
window (|i - j| <= w d and d divides i - j), global tokens plus a window (global positions see
and are seen by everyone), and block-sparse (blocks of b positions: the diagonal block, the first
block as global, and random block pairs). Whatever lies outside a query's pattern must not
influence that query's output.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nnspec import oracles
from nnspec.case import Case
from nnspec.checkers._draw import qkv
from nnspec.oracles import magnitude as _magnitude
from nnspec.registry import Param, checker


def _per_head(case: Case, name: str, low: int, high: int) -> int:
    """A per-head parameter from the bulk generator, within the domain's ``inputs[name]`` range.

    Drawn from the seeded generator rather than by Hypothesis, which tends to repeat one value
    across the heads of an example; heads with different patterns are what the check needs.
    """
    bounds = case.prop.inputs.get(name, [low, high])
    low, high = max(int(bounds[0]), low), max(min(int(bounds[1]), high), max(int(bounds[0]), low))
    return int(case.rng.integers(low, high + 1))


def sliding_window(case: Case, length: int) -> np.ndarray:
    width = _per_head(case, "window", 0, length)
    offsets = np.arange(length)[:, None] - np.arange(length)[None, :]
    return np.abs(offsets) <= width


def dilated_window(case: Case, length: int) -> np.ndarray:
    width = _per_head(case, "window", 0, length)
    dilation = int(case.rng.integers(2, 4))
    offsets = np.arange(length)[:, None] - np.arange(length)[None, :]
    return (np.abs(offsets) <= width * dilation) & (offsets % dilation == 0)


def global_and_window(case: Case, length: int) -> np.ndarray:
    mask = sliding_window(case, length)
    chosen = case.rng.random(length) < 1.0 / max(length, 1) + 0.1
    mask[chosen, :] = True
    mask[:, chosen] = True
    return mask


def block_sparse(case: Case, length: int) -> np.ndarray:
    block = _per_head(case, "block_k", 1, max(length, 1))
    blocks = np.arange(length) // block
    count = int(blocks[-1]) + 1
    pairs = np.eye(count, dtype=bool) | (case.rng.random((count, count)) < 0.3)
    pairs[0, :] = pairs[:, 0] = True  # the first block is global
    return pairs[blocks[:, None], blocks[None, :]]


PATTERNS: dict[str, Callable[[Case, int], np.ndarray]] = {
    "sliding_window": sliding_window,
    "dilated_window": dilated_window,
    "global_and_window": global_and_window,
    "block_sparse": block_sparse,
}


@checker("sparse_pattern_independence", requires=("attention",), params={"pattern": Param(str, choices=tuple(PATTERNS))})
def sparse_pattern_independence(case: Case) -> None:
    """Attention under a sparse pattern matches the oracle, and a query ignores everything outside its pattern.

    ``params.pattern`` names the pattern; each head draws its own. The keys and values outside one
    query's pattern are replaced by large new ones, and that query's output must not move.
    """
    pattern = str(case.params["pattern"])
    q, k, v = qkv(case, self_attention=True)
    heads, length = q.shape[1], q.shape[2]
    mask = case.keep("mask", np.stack([PATTERNS[pattern](case, length) for _ in range(heads)])[None])
    out = case.call("attention", q, k, v, mask=mask)
    case.close(f"attention under a {pattern} mask against the oracle", out, oracles.attention(q, k, v, mask),
               magnitude=_magnitude(v))
    query = min(case.size("query", (0, max(length - 1, 0))), length - 1)
    outside = ~mask[0, :, query, :]  # (H, S): keys this query may not see, per head
    k2, v2 = k.copy(), v.copy()
    regime = case.regime("perturbation")
    new_k = case.array("k_outside", k.shape, regime, scale=10.0)
    new_v = case.array("v_outside", v.shape, regime, scale=10.0)
    k2[:, outside] = new_k[:, outside]
    v2[:, outside] = new_v[:, outside]
    changed = case.call("attention", q, k2, v2, mask=mask)
    case.close(f"output of query {query} after replacing the keys and values outside its {pattern} pattern",
               changed[:, :, query], out[:, :, query].astype(np.float64), magnitude=_magnitude(v))


@checker("full_window_equals_dense", requires=("attention",))
def full_window_equals_dense(case: Case) -> None:
    """A sliding window at least as wide as the sequence (|i - j| <= w, w >= L - 1) is dense attention."""
    q, k, v = qkv(case, self_attention=True)
    length = q.shape[2]
    width = length - 1 + case.size("window", (0, 4), minimum=0)
    offsets = np.arange(length)[:, None] - np.arange(length)[None, :]
    mask = case.keep("mask", np.abs(offsets) <= width)
    windowed = case.call("attention", q, k, v, mask=mask)
    dense = case.call("attention", q, k, v)
    case.close(f"attention with a full window (w = {width}, L = {length}) against no mask", windowed,
               dense.astype(np.float64), magnitude=_magnitude(v))
