"""Formulas the NumPy and JAX backends share, written once against an array namespace.

Each function takes ``xp`` first: ``numpy`` for the reference backend, ``jax.numpy`` for the JAX
one (which calls them inside its jitted methods, so they trace like its own code). Only the
primitives whose mathematics is the same step for step in both live here; where JAX has a kernel
of its own (``jax.nn.dot_product_attention``, ``jax.nn.softmax``, ``jax.nn.standardize``,
``lax.scan``, ``lax.conv_general_dilated``) the JAX backend keeps it. The recurrent cells also
take the ``sigmoid`` each backend uses (the reference's ``tanh`` form, ``jax.nn.sigmoid``), so the
numerics of either backend are what they were when each had its own copy.

Nothing here imports an array framework: the namespace arrives as an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Array = Any
Namespace = Any


# -- attention -----------------------------------------------------------------------------------


def multi_head_attention(
    attention: Callable[..., Array],
    x_q: Array,
    x_kv: Array,
    params: dict[str, Array],
    num_heads: int,
    mask: Array | None,
    is_causal: bool,
) -> Array:
    """Project, split into heads, attend with ``attention`` (the backend's own), merge, project out."""

    def project(x: Array, name: str) -> Array:
        return x @ params[f"w_{name}"].T + params[f"b_{name}"]

    def split(x: Array) -> Array:  # (B, T, M) -> (B, H, T, M/H)
        batch, length, width = x.shape
        return x.reshape(batch, length, num_heads, width // num_heads).transpose(0, 2, 1, 3)

    heads = attention(
        split(project(x_q, "q")),
        split(project(x_kv, "k")),
        split(project(x_kv, "v")),
        mask=mask,
        is_causal=is_causal,
    )
    batch, _, length, _ = heads.shape
    return project(heads.transpose(0, 2, 1, 3).reshape(batch, length, -1), "o")


# -- positional ----------------------------------------------------------------------------------


def sinusoidal_encoding(xp: Namespace, length: int, d_model: int, dtype: str) -> Array:
    """The table in float64, rounded once to ``dtype``."""
    positions = xp.arange(length, dtype=xp.float64)[:, None]
    pair_index = xp.arange(0, d_model, 2, dtype=xp.float64)[None, :]
    angles = positions / xp.power(10000.0, pair_index / d_model)
    # Interleave sin (even columns) and cos (odd columns); an odd width ends on a sin column.
    interleaved = xp.stack((xp.sin(angles), xp.cos(angles)), axis=-1).reshape(length, 2 * angles.shape[-1])
    return interleaved[:, :d_model].astype(dtype)


def rope(xp: Namespace, x: Array, positions: Array, base: float) -> Array:
    """Adjacent pairs ``(x[2i], x[2i+1])`` rotated; angles in float64, rounded to ``x``'s dtype."""
    dim = x.shape[-1]
    frequencies = base ** (-xp.arange(0, dim, 2, dtype=xp.float64) / dim)
    angles = xp.asarray(positions, dtype=xp.float64)[:, None] * frequencies[None, :]
    cos, sin = xp.cos(angles).astype(x.dtype), xp.sin(angles).astype(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    return xp.stack((even * cos - odd * sin, even * sin + odd * cos), axis=-1).reshape(x.shape)


def alibi_bias(xp: Namespace, num_heads: int, q_len: int, k_len: int, dtype: str) -> Array:
    """``-slope_h * max(i - j, 0)`` with the power-of-two geometric slopes, in float64 then ``dtype``."""
    slopes = 2.0 ** (-8.0 * xp.arange(1, num_heads + 1, dtype=xp.float64) / num_heads)
    distance = xp.maximum(xp.arange(q_len)[:, None] - xp.arange(k_len)[None, :], 0)
    return (-slopes[:, None, None] * distance[None, :, :]).astype(dtype)


# -- recurrent -----------------------------------------------------------------------------------


def rnn_cell(xp: Namespace, x: Array, h: Array, params: dict[str, Array]) -> Array:
    return xp.tanh(x @ params["w_ih"].T + h @ params["w_hh"].T + params["b"])


def lstm_cell(
    xp: Namespace, sigmoid: Callable[[Array], Array], x: Array, h: Array, c: Array, params: dict[str, Array]
) -> tuple[Array, Array]:
    gates = x @ params["w_ih"].T + h @ params["w_hh"].T + params["b"]
    input_gate, forget_gate, candidate, output_gate = xp.split(gates, 4, axis=-1)
    c_next = sigmoid(forget_gate) * c + sigmoid(input_gate) * xp.tanh(candidate)
    h_next = sigmoid(output_gate) * xp.tanh(c_next)
    return h_next, c_next


def gru_cell(
    xp: Namespace, sigmoid: Callable[[Array], Array], x: Array, h: Array, params: dict[str, Array]
) -> Array:
    input_r, input_z, input_n = xp.split(x @ params["w_ih"].T + params["b_ih"], 3, axis=-1)
    hidden_r, hidden_z, hidden_n = xp.split(h @ params["w_hh"].T + params["b_hh"], 3, axis=-1)
    reset = sigmoid(input_r + hidden_r)
    update = sigmoid(input_z + hidden_z)
    candidate = xp.tanh(input_n + reset * hidden_n)
    return (1.0 - update) * candidate + update * h


def peephole_lstm_cell(
    xp: Namespace, sigmoid: Callable[[Array], Array], x: Array, h: Array, c: Array, params: dict[str, Array]
) -> tuple[Array, Array]:
    gates = x @ params["w_ih"].T + h @ params["w_hh"].T + params["b"]
    input_gate, forget_gate, candidate, output_gate = xp.split(gates, 4, axis=-1)
    c_next = sigmoid(forget_gate + params["p_f"] * c) * c + sigmoid(input_gate + params["p_i"] * c) * xp.tanh(
        candidate
    )
    h_next = sigmoid(output_gate + params["p_o"] * c_next) * xp.tanh(c_next)
    return h_next, c_next


# -- decoding and the rest -----------------------------------------------------------------------


def beam_search(xp: Namespace, initial: Array, transitions: Array, beam_width: int) -> tuple[Array, Array]:
    vocab = initial.shape[0]
    # Stable sorts: ties go to the earlier beam entry, then to the lower token index.
    first = xp.argsort(-initial, stable=True)[:beam_width]
    sequences, scores = first[:, None], initial[first]
    for step in range(transitions.shape[0]):  # unrolled under jit: the beam's size changes at first
        candidates = (scores[:, None] + transitions[step][sequences[:, -1]]).reshape(-1)
        best = xp.argsort(-candidates, stable=True)[:beam_width]
        parents, tokens = xp.divmod(best, vocab)
        sequences = xp.concatenate([sequences[parents], tokens[:, None]], axis=1)
        scores = candidates[best]
    return sequences, scores


def additive_attention_scores(xp: Namespace, query: Array, keys: Array, params: dict[str, Array]) -> Array:
    hidden = xp.tanh((query @ params["w_query"].T)[:, None, :] + keys @ params["w_key"].T)
    return hidden @ params["v"]


def luong_scores(xp: Namespace, query: Array, keys: Array, weight: Array | None) -> Array:
    if weight is not None:
        query = query @ weight
    return xp.einsum("bd,bsd->bs", query, keys)
