"""Attention's float64 references: softmax, scaled dot-product attention, multi-head attention, the causal mask."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def attention_weights(q: np.ndarray, k: np.ndarray, allowed: np.ndarray | None = None,
                      scale: float | None = None) -> np.ndarray:
    """``softmax(scale * Q K^T)`` over admissible keys, float64; rows with no admissible key are 0."""
    q, k = np.asarray(q, np.float64), np.asarray(k, np.float64)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = np.einsum("...ld,...sd->...ls", q, k) * scale
    if allowed is None:
        allowed = np.ones(scores.shape, dtype=bool)
    allowed = np.broadcast_to(allowed, scores.shape)
    peak = np.max(np.where(allowed, scores, -np.inf), axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    numerators = np.where(allowed, np.exp(scores - peak), 0.0)
    totals = numerators.sum(axis=-1, keepdims=True)
    return numerators / np.where(totals > 0, totals, 1.0)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, allowed: np.ndarray | None = None,
              scale: float | None = None) -> np.ndarray:
    weights = attention_weights(q, k, allowed, scale)
    return np.einsum("...ls,...sd->...ld", weights, np.asarray(v, np.float64))


def multi_head_attention(x_q: np.ndarray, x_kv: np.ndarray, params: dict[str, np.ndarray], heads: int,
                      allowed: np.ndarray | None = None) -> np.ndarray:
    """The documents' MultiHead(Q, K, V) = Concat(head_1..head_h) W^O in float64, one head at a time."""
    p = {name: value.astype(np.float64) for name, value in params.items()}
    xq, xkv = x_q.astype(np.float64), x_kv.astype(np.float64)
    width = p["w_q"].shape[0]
    head_dim = width // heads
    outputs = []
    for head in range(heads):
        rows = slice(head * head_dim, (head + 1) * head_dim)
        q = xq @ p["w_q"][rows].T + p["b_q"][rows]
        k = xkv @ p["w_k"][rows].T + p["b_k"][rows]
        v = xkv @ p["w_v"][rows].T + p["b_v"][rows]
        head_allowed = None if allowed is None else np.broadcast_to(
            allowed, (x_q.shape[0], heads, x_q.shape[1], x_kv.shape[1]))[:, head]
        outputs.append(attention(q, k, v, head_allowed))
    return np.concatenate(outputs, axis=-1) @ p["w_o"].T + p["b_o"]


def causal(q_len: int, k_len: int) -> np.ndarray:
    """Top-left aligned causal mask: key ``j`` admissible for query ``i`` when ``j <= i``."""
    return np.arange(k_len)[None, :] <= np.arange(q_len)[:, None]


def softmax(x: npt.ArrayLike, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)
