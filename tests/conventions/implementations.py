"""Correct implementations that follow other widespread conventions than the protocol's.

Each is a subclass of the numpy reference that changes one convention and nothing else. They
are correct code: the catalogue must not raise a false alarm on them for any property whose
statement their convention does not contradict (tests/conventions/test_conventions.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nnspec.backends.numpy import NumpyBackend
from nnspec.checkers.positional import interleaved_slopes

Array = np.ndarray


class RotateHalfRope(NumpyBackend):
    """RoPE pairing coordinate i with i + D/2 ("rotate_half", as in GPT-NeoX and Llama code)."""

    name: ClassVar[str] = "convention-rotate-half-rope"

    def rope(self, x: Array, positions: Array, base: float = 10000.0) -> Array:
        dim = x.shape[-1]
        half = dim // 2
        frequencies = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
        angles = np.asarray(positions, dtype=np.float64)[:, None] * frequencies[None, :]
        cos = np.concatenate([np.cos(angles)] * 2, axis=-1).astype(x.dtype)
        sin = np.concatenate([np.sin(angles)] * 2, axis=-1).astype(x.dtype)
        rotated_half = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rotated_half * sin


class BottomRightCausal(NumpyBackend):
    """``is_causal`` with L != S aligned bottom-right (key j visible to query i iff j <= i + S - L),
    as FlashAttention 2 (from 2.1) does; the queries are taken to be the last L positions."""

    name: ClassVar[str] = "convention-bottom-right-causal"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        if is_causal:
            q_len, k_len = q.shape[-2], k.shape[-2]
            causal = np.arange(k_len)[None, :] <= np.arange(q_len)[:, None] + (k_len - q_len)
            mask = causal if mask is None else np.asarray(mask, dtype=bool) & causal
        return super().attention_weights(q, k, mask, False, scale)


class AuthorsAlibiSlopes(NumpyBackend):
    """ALiBi slopes of the paper's code for head counts that are not a power of two (Bloom,
    x-transformers): the largest power of two's geometric slopes, then every other slope of twice it."""

    name: ClassVar[str] = "convention-alibi-authors-slopes"

    def alibi_bias(self, num_heads: int, q_len: int, k_len: int, dtype: str = "float64") -> Array:
        slopes = interleaved_slopes(num_heads)
        distance = np.maximum(np.arange(q_len)[:, None] - np.arange(k_len)[None, :], 0)
        return (-slopes[:, None, None] * distance[None]).astype(dtype)


class PaddedOutputsAsComputed(NumpyBackend):
    """An LSTM layer that keeps running the cell over padding for the outputs (flax's convention)
    but carries the state from each sequence's true length; padded outputs are not zeroed."""

    name: ClassVar[str] = "convention-padded-outputs-as-computed"

    def lstm_sequence(self, xs: Array, h0: Array, c0: Array, params: dict[str, Array], lengths: Array | None = None,
                      reverse: bool = False) -> tuple[Array, Array, Array]:
        outputs, h_n, c_n = super().lstm_sequence(xs, h0, c0, params, lengths, reverse)
        if lengths is None:
            return outputs, h_n, c_n
        # Past its true length each sequence goes on from its final state over the padding.
        filled = outputs.copy()
        h, c = h_n, c_n
        for step in range(xs.shape[1]):
            h_next, c_next = self.lstm_cell(xs[:, step], h, c, params)
            past = step >= np.asarray(lengths)
            filled[past, step] = h_next[past]
            h = np.where(past[:, None], h_next, h)
            c = np.where(past[:, None], c_next, c)
        return filled, h_n, c_n


def _blocks(weight: Array, order: list[int]) -> Array:
    return np.concatenate([np.split(weight, len(order), axis=0)[index] for index in order], axis=0)


class OtherGateOrders(NumpyBackend):
    """Cells that store their gates in other orders (LSTM i, o, f, g as in ONNX; GRU z, r, n as in
    Keras) and adapt the protocol's parameters to them at the boundary."""

    name: ClassVar[str] = "convention-other-gate-orders"
    LSTM_ORDER: ClassVar[list[int]] = [0, 3, 1, 2]  # protocol i, f, g, o -> i, o, f, g
    GRU_ORDER: ClassVar[list[int]] = [1, 0, 2]  # protocol r, z, n -> z, r, n

    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        stored = {name: _blocks(params[name], self.LSTM_ORDER) for name in ("w_ih", "w_hh", "b")}
        gates = x @ stored["w_ih"].T + h @ stored["w_hh"].T + stored["b"]
        i, o, f, g = np.split(gates, 4, axis=-1)

        def sigmoid(z: Array) -> Array:
            return 1.0 / (1.0 + np.exp(-z))

        c_next = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c_next), c_next

    def gru_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        stored = {name: _blocks(params[name], self.GRU_ORDER) for name in ("w_ih", "w_hh", "b_ih", "b_hh")}
        input_z, input_r, input_n = np.split(x @ stored["w_ih"].T + stored["b_ih"], 3, axis=-1)
        hidden_z, hidden_r, hidden_n = np.split(h @ stored["w_hh"].T + stored["b_hh"], 3, axis=-1)
        update = 1.0 / (1.0 + np.exp(-(input_z + hidden_z)))
        reset = 1.0 / (1.0 + np.exp(-(input_r + hidden_r)))
        candidate = np.tanh(input_n + reset * hidden_n)
        return (1.0 - update) * candidate + update * h
