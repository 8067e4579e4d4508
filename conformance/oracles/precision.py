"""Plain dense attention computed in a low precision: the yardstick for float16/bfloat16 results and gradients."""

from __future__ import annotations

import numpy as np

from nnspec.tolerances import cast


def attention_in_precision(q: np.ndarray, k: np.ndarray, v: np.ndarray, dtype: str,
                           allowed: np.ndarray | None = None, scale: float | None = None) -> np.ndarray:
    """A plain dense attention in ``dtype``: every intermediate (logits, exponentials, row sums,
    weights, output) rounded to ``dtype``, accumulating in float32 as half-precision kernels do.

    The error this makes against :func:`attention` is the yardstick for float16/bfloat16 results.
    """
    def rounded(x: np.ndarray) -> np.ndarray:
        return cast(np.asarray(x, np.float32), dtype).astype(np.float32)

    q32, k32, v32 = (rounded(a) for a in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = rounded(np.einsum("...ld,...sd->...ls", q32, k32) * np.float32(scale))
    if allowed is None:
        allowed = np.ones(logits.shape, dtype=bool)
    allowed = np.broadcast_to(allowed, logits.shape)
    peak = np.max(np.where(allowed, logits, -np.inf), axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0).astype(np.float32)
    exponentials = rounded(np.where(allowed, np.exp(logits - peak), 0.0))
    totals = exponentials.sum(axis=-1, keepdims=True)
    weights = rounded(exponentials / np.where(totals > 0, totals, 1.0))
    return rounded(np.einsum("...ls,...sd->...ld", weights, v32)).astype(np.float64)


def attention_backward_in_precision(q: np.ndarray, k: np.ndarray, v: np.ndarray, cotangent: np.ndarray, dtype: str,
                                    allowed: np.ndarray | None = None,
                                    scale: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plain dense attention backward in ``dtype``, every intermediate rounded to it (float32
    accumulation): ``(dq, dk, dv)`` for the cotangent ``dO``. The yardstick for half-precision
    gradients, as :func:`attention_in_precision` is for outputs.

    ``P = softmax(S)``, ``S = scale Q K^T``: ``dV = P^T dO``, ``dP = dO V^T``,
    ``dS = P * (dP - rowsum(dP * P))``, ``dQ = scale dS K``, ``dK = scale dS^T Q``.
    """
    def rounded(x: np.ndarray) -> np.ndarray:
        return cast(np.asarray(x, np.float32), dtype).astype(np.float32)

    q32, k32, v32, d_out = (rounded(a) for a in (q, k, v, cotangent))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    weights = _weights_in_precision(q32, k32, dtype, allowed, scale)
    d_v = rounded(np.einsum("...ls,...ld->...sd", weights, d_out))
    d_weights = rounded(np.einsum("...ld,...sd->...ls", d_out, v32))
    row = rounded(np.sum(d_weights * weights, axis=-1, keepdims=True))
    d_scores = rounded(weights * (d_weights - row))
    d_q = rounded(np.einsum("...ls,...sd->...ld", d_scores, k32) * np.float32(scale))
    d_k = rounded(np.einsum("...ls,...ld->...sd", d_scores, q32) * np.float32(scale))
    return d_q.astype(np.float64), d_k.astype(np.float64), d_v.astype(np.float64)


def _weights_in_precision(q32: np.ndarray, k32: np.ndarray, dtype: str, allowed: np.ndarray | None,
                          scale: float) -> np.ndarray:
    def rounded(x: np.ndarray) -> np.ndarray:
        return cast(np.asarray(x, np.float32), dtype).astype(np.float32)

    logits = rounded(np.einsum("...ld,...sd->...ls", q32, k32) * np.float32(scale))
    allowed = np.broadcast_to(np.ones(logits.shape, dtype=bool) if allowed is None else allowed, logits.shape)
    peak = np.max(np.where(allowed, logits, -np.inf), axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0).astype(np.float32)
    exponentials = rounded(np.where(allowed, np.exp(logits - peak), 0.0))
    totals = exponentials.sum(axis=-1, keepdims=True)
    return rounded(exponentials / np.where(totals > 0, totals, 1.0))
