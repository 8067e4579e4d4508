"""Float64 oracles written from the documents' formulas.

These are deliberately independent of ``backends/numpy.py``: they follow the documents' own
notation (one weight matrix per gate acting on ``[h_{t-1}, x_t]``, ``softmax(QK^T / sqrt(d_k)) V``
with explicit sums), so the reference backend is itself checked against something.
"""

from __future__ import annotations

import numpy as np

from nnspec.tolerances import cast


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


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


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def lstm_gates(x: np.ndarray, h: np.ndarray, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The documents' gates: ``f_t = sigma(W_f [h_{t-1}, x_t] + b_f)`` and likewise i, C~, o.

    The protocol's ``w_ih (4N, I)``, ``w_hh (4N, N)`` and ``b (4N,)`` hold W_i, W_f, W_c, W_o as
    consecutive row blocks; here each gate's ``W = [W_hh block | W_ih block]`` acts on ``[h, x]``.
    """
    gates = lstm_preactivations(x, h, params)
    return {"i": sigmoid(gates["i"]), "f": sigmoid(gates["f"]), "g": np.tanh(gates["g"]), "o": sigmoid(gates["o"])}


def lstm_preactivations(x: np.ndarray, h: np.ndarray, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``W_gate [h_{t-1}, x_t] + b_gate`` for the gates i, f, g (the candidate C~) and o, in float64."""
    x, h = np.asarray(x, np.float64), np.asarray(h, np.float64)
    hidden = h.shape[-1]
    joined = np.concatenate([h, x], axis=-1)
    gates = {}
    for index, name in enumerate(("i", "f", "g", "o")):
        rows = slice(index * hidden, (index + 1) * hidden)
        weight = np.concatenate([params["w_hh"][rows], params["w_ih"][rows]], axis=1).astype(np.float64)
        gates[name] = joined @ weight.T + params["b"][rows].astype(np.float64)
    return gates


def lstm_cell(x: np.ndarray, h: np.ndarray, c: np.ndarray,
              params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    gates = lstm_gates(x, h, params)
    c_next = gates["f"] * np.asarray(c, np.float64) + gates["i"] * gates["g"]
    return gates["o"] * np.tanh(c_next), c_next


def rnn_cell(x: np.ndarray, h: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """``h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)``."""
    return np.tanh(np.asarray(h, np.float64) @ params["w_hh"].T.astype(np.float64)
                   + np.asarray(x, np.float64) @ params["w_ih"].T.astype(np.float64)
                   + params["b"].astype(np.float64))


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
