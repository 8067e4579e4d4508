"""Mutants that only a statistical property with enough power can see."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nnspec.backends.numpy import NumpyBackend

FRAMEWORK = None
Array = np.ndarray


class MlmReplacementNeverLastId(NumpyBackend):
    """Random replacements drawn with ``integers(0, V - 1)``: the last vocabulary id is never drawn."""

    name: ClassVar[str] = "mutant-mlm-never-last-id"

    def mlm_corrupt(self, tokens: Array, vocab_size: int, mask_id: int, seed: int) -> tuple[Array, Array]:
        rng = np.random.default_rng(seed)
        selected = rng.random(tokens.shape) < 0.15
        action = rng.random(tokens.shape)
        replacements = rng.integers(0, vocab_size - 1, tokens.shape)
        corrupted = np.where(selected & (action < 0.8), mask_id, tokens)
        corrupted = np.where(selected & (action >= 0.8) & (action < 0.9), replacements, corrupted)
        return corrupted.astype(tokens.dtype), selected


class MlmExactCountPerRow(NumpyBackend):
    """Selects exactly round(0.15 L) random positions in every row: the overall rate is right, the
    per-row counts have no binomial spread."""

    name: ClassVar[str] = "mutant-mlm-exact-count-per-row"

    def mlm_corrupt(self, tokens: Array, vocab_size: int, mask_id: int, seed: int) -> tuple[Array, Array]:
        rng = np.random.default_rng(seed)
        rows, length = tokens.shape
        selected = np.zeros(tokens.shape, dtype=bool)
        for row in range(rows):
            selected[row, rng.permutation(length)[: round(0.15 * length)]] = True
        action = rng.random(tokens.shape)
        replacements = rng.integers(0, vocab_size, tokens.shape)
        corrupted = np.where(selected & (action < 0.8), mask_id, tokens)
        corrupted = np.where(selected & (action >= 0.8) & (action < 0.9), replacements, corrupted)
        return corrupted.astype(tokens.dtype), selected


class ScaleFivePercentHigh(NumpyBackend):
    """The default scale is 1.05 / sqrt(D): a 5% scale error."""

    name: ClassVar[str] = "mutant-scale-5-percent-high"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        return super().attention_weights(q, k, mask, is_causal, 1.05 / np.sqrt(q.shape[-1]) if scale is None else scale)


REJECTED_BY: dict[type[NumpyBackend], tuple[str, ...]] = {
    MlmReplacementNeverLastId: ("pretraining.mlm.replacement_uniform",),
    MlmExactCountPerRow: ("pretraining.mlm.selection_per_row",),
    ScaleFivePercentHigh: ("scaling.variance.scaled_is_unit",),
}


class TanhInputGateLSTM(NumpyBackend):
    """The input gate is a tanh instead of a sigmoid: |i g| <= 1 still holds."""

    name: ClassVar[str] = "mutant-lstm-tanh-input-gate"

    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        gates = x @ params["w_ih"].T + h @ params["w_hh"].T + params["b"]
        i, f, g, o = np.split(gates, 4, axis=-1)
        c_next = 1.0 / (1.0 + np.exp(-f)) * c + np.tanh(i) * np.tanh(g)
        return 1.0 / (1.0 + np.exp(-o)) * np.tanh(c_next), c_next


REJECTED_BY[TanhInputGateLSTM] = ("lstm.gates.bounded",)
