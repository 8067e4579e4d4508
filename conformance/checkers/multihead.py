"""Checkers for multi-head attention: the concatenated-heads formula and the width of each head.

``multi_head_attention(x_q, x_kv, params, h)`` must equal ``Concat(head_1, ..., head_h) W_O^T + b_O``
with ``head_i = Attention(x_q W_Q,i, x_kv W_K,i, x_kv W_V,i)``, each head a contiguous slice of
``d_k = d_model / h`` columns of the projections, scaled by ``1 / sqrt(d_k)``.
"""

from __future__ import annotations

import numpy as np

from nnspec import oracles
from nnspec.case import Case
from nnspec.registry import checker


def _draw(case: Case) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], int, bool]:
    batch = case.size("batch", (1, 2))
    heads = case.size("heads", (1, 4))
    width = heads * case.size("dim", (1, 4))
    q_len = case.size("q_len", (1, 8))
    cross = case.flag("cross_attention")
    k_len = case.size("k_len", (1, 8)) if cross else q_len
    regime = case.regime()
    x_q = case.array("x_q", (batch, q_len, width), regime)
    x_kv = case.array("x_kv", (batch, k_len, width), regime) if cross else x_q
    params = {f"w_{n}": case.array(f"w_{n}", (width, width), "normal", scale=1.0 / np.sqrt(width)) for n in "qkvo"}
    params.update({f"b_{n}": case.array(f"b_{n}", (width,), "normal", scale=0.1) for n in "qkvo"})
    return x_q, x_kv, params, heads, cross


def _scale_of(x: np.ndarray, params: dict[str, np.ndarray]) -> float:
    """Magnitude of the values heads mix: |x| |W_V| |W_O|, for an absolute tolerance."""
    width = x.shape[-1]
    size = float(np.max(np.abs(x.astype(np.float64)), initial=0.0)) * width
    return max(1.0, size * float(np.max(np.abs(params["w_v"]))) * float(np.max(np.abs(params["w_o"]))) * width)


@checker("multi_head_matches_concatenated_heads", requires=("multi_head_attention",))
def multi_head_matches_concatenated_heads(case: Case) -> None:
    """MultiHead equals Concat(head_1..head_h) W_O with each head scaled dot-product attention, in float64."""
    x_q, x_kv, params, heads, cross = _draw(case)
    kind = case.choice("mask", ["none", "padding", "causal"] if not cross else ["none", "padding"])
    mask, is_causal, allowed = None, False, None
    if kind == "padding":
        lengths = case.rng.integers(1, x_kv.shape[1] + 1, x_q.shape[0])
        mask = case.keep("mask", (np.arange(x_kv.shape[1])[None, :] < lengths[:, None])[:, None, None, :])
        allowed = mask
    elif kind == "causal":
        is_causal, allowed = True, oracles.causal(x_q.shape[1], x_kv.shape[1])
    out = case.call("multi_head_attention", x_q, x_kv, params, heads, mask=mask, is_causal=is_causal)
    case.close(f"multi-head attention ({heads} heads, mask {kind}, cross={cross}) against Concat(heads) W_O",
               out, oracles.multi_head_attention(x_q, x_kv, params, heads, allowed), magnitude=_scale_of(x_q, params))


@checker("multi_head_head_width", requires=("multi_head_attention",))
def multi_head_head_width(case: Case) -> None:
    """Head j reads exactly columns [j d_k, (j+1) d_k) of the projections, d_k = d_model / h, scaled by 1/sqrt(d_k).

    With W_O zero outside head j's columns, changing the projection rows of every other head must
    leave the output unchanged, and the output must equal single-head attention of width d_k.
    """
    x_q, x_kv, params, heads, _ = _draw(case)
    width = x_q.shape[-1]
    head_dim = width // heads
    alive = case.size("head", (0, heads - 1))
    rows = np.arange(width) // head_dim == alive
    params["w_o"] = params["w_o"] * rows[None, :].astype(params["w_o"].dtype)
    out = case.call("multi_head_attention", x_q, x_kv, params, heads)
    p = {name: value.astype(np.float64) for name, value in params.items()}
    q = x_q.astype(np.float64) @ p["w_q"][rows].T + p["b_q"][rows]
    k = x_kv.astype(np.float64) @ p["w_k"][rows].T + p["b_k"][rows]
    v = x_kv.astype(np.float64) @ p["w_v"][rows].T + p["b_v"][rows]
    single = oracles.attention(q, k, v, scale=1.0 / np.sqrt(head_dim)) @ p["w_o"][:, rows].T + p["b_o"]
    case.close(f"head {alive} of {heads} alone against attention of width d_k = {width}/{heads} = {head_dim}",
               out, single, magnitude=_scale_of(x_q, params))
    if heads == 1:
        return
    others = dict(params)
    for name in "qkv":
        noise = case.array(f"w_{name}_other_heads", (width, width), "normal", scale=1.0 / np.sqrt(width))
        others[f"w_{name}"] = np.where(rows[:, None], params[f"w_{name}"], noise).astype(params[f"w_{name}"].dtype)
    changed = case.call("multi_head_attention", x_q, x_kv, others, heads)
    case.close(f"output after changing the projections of every head but {alive}", changed,
               out.astype(np.float64), magnitude=_scale_of(x_q, params))
