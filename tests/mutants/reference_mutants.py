"""Mutants of the NumPy reference backend: one planted bug each, everything else correct."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nnspec.backends.numpy import NumpyBackend, _sigmoid

FRAMEWORK = None  # the reference backend needs no framework

Array = np.ndarray


class NoSqrtDkScaling(NumpyBackend):
    """Logits are not divided by sqrt(d_k) when no scale is given."""

    name: ClassVar[str] = "mutant-no-sqrt-dk"

    def attention_weights(
        self, q: Array, k: Array, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        return super().attention_weights(q, k, mask, is_causal, 1.0 if scale is None else scale)


class ScaleByDkNotSqrt(NumpyBackend):
    """Logits are divided by d_k instead of sqrt(d_k)."""

    name: ClassVar[str] = "mutant-scale-by-dk"

    def attention_weights(
        self, q: Array, k: Array, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        return super().attention_weights(q, k, mask, is_causal, 1.0 / q.shape[-1] if scale is None else scale)


class ExplicitScaleIgnored(NumpyBackend):
    """A scale passed by the caller is ignored; 1/sqrt(d_k) is always used."""

    name: ClassVar[str] = "mutant-explicit-scale-ignored"

    def attention_weights(
        self, q: Array, k: Array, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        return super().attention_weights(q, k, mask, is_causal, None)


class CausalMaskOffByOne(NumpyBackend):
    """The causal mask admits key i + 1 for query i (``tril`` with ``k=1``)."""

    name: ClassVar[str] = "mutant-causal-off-by-one"

    def attention_weights(
        self, q: Array, k: Array, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        if is_causal:
            leaky = np.tril(np.ones((q.shape[-2], k.shape[-2]), dtype=bool), k=1)
            mask = leaky if mask is None else np.asarray(mask, dtype=bool) & leaky
        return super().attention_weights(q, k, mask, False, scale)


class CausalMaskIgnored(NumpyBackend):
    """``is_causal`` is accepted and silently ignored."""

    name: ClassVar[str] = "mutant-causal-ignored"

    def attention_weights(
        self, q: Array, k: Array, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        return super().attention_weights(q, k, mask, False, scale)


class MaskPolarityInverted(NumpyBackend):
    """A boolean mask is read as "True means masked out" (the opposite convention)."""

    name: ClassVar[str] = "mutant-mask-polarity-inverted"

    def attention_weights(
        self, q: Array, k: Array, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        if mask is not None:
            mask = ~np.asarray(mask, dtype=bool)
            # keep every row attendable so the bug shows as wrong weights, not as empty rows
            mask[..., 0] |= ~mask.any(axis=-1)
        return super().attention_weights(q, k, mask, is_causal, scale)


def weights_with_finite_fill(
    backend: NumpyBackend, q: Array, k: Array, mask: Any, is_causal: bool, scale: float | None, fill: float
) -> Array:
    """Attention weights whose masked logits are set to the finite ``fill`` rather than removed:
    the shared body of the mutants that plant that bug with different fills."""
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = (q @ np.swapaxes(k, -1, -2)) * scale
    allowed = np.ones(logits.shape, dtype=bool)
    if mask is not None:
        allowed = allowed & np.broadcast_to(np.asarray(mask, dtype=bool), logits.shape)
    if is_causal:
        allowed = allowed & np.tril(np.ones(logits.shape[-2:], dtype=bool))
    return backend.softmax(np.where(allowed, logits, fill), axis=-1)


class MaskFillNotInfinite(NumpyBackend):
    """Masked logits are set to -30 instead of -inf, so masked keys keep a tiny weight."""

    name: ClassVar[str] = "mutant-mask-fill-minus-30"

    def attention_weights(
        self, q: Array, k: Array, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        return weights_with_finite_fill(self, q, k, mask, is_causal, scale, -30.0)


class SoftmaxWrongAxis(NumpyBackend):
    """Softmax normalises over the second-to-last axis whatever axis is asked for."""

    name: ClassVar[str] = "mutant-softmax-wrong-axis"

    def softmax(self, x: Array, axis: int = -1) -> Array:
        return super().softmax(x, axis=-2 if x.ndim >= 2 else axis)


class SoftmaxWithoutMaxSubtraction(NumpyBackend):
    """Softmax exponentiates the raw logits, which overflows for large ones."""

    name: ClassVar[str] = "mutant-softmax-no-max-subtraction"

    def softmax(self, x: Array, axis: int = -1) -> Array:
        exponentials = np.exp(x)
        return exponentials / np.sum(exponentials, axis=axis, keepdims=True)


class TiledWithoutRescaling(NumpyBackend):
    """Online softmax that never rescales the running sum and accumulator when the maximum grows."""

    name: ClassVar[str] = "mutant-tiled-no-rescale"

    def tiled_attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        block_q: int,
        block_k: int,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
        logits_all = (q @ np.swapaxes(k, -1, -2)) * scale
        if is_causal:
            logits_all = np.where(np.tril(np.ones(logits_all.shape[-2:], dtype=bool)), logits_all, -np.inf)
        total = np.zeros(q.shape[:-1] + (1,))
        accumulator = np.zeros(q.shape[:-1] + (v.shape[-1],))
        for start in range(0, k.shape[-2], block_k):
            logits = logits_all[..., start : start + block_k]
            block_max = np.max(logits, axis=-1, keepdims=True)
            probabilities = np.exp(logits - np.where(np.isfinite(block_max), block_max, 0.0))
            total = total + probabilities.sum(axis=-1, keepdims=True)  # no correction factor
            accumulator = accumulator + probabilities @ v[..., start : start + block_k, :]
        return (accumulator / total).astype(q.dtype)


class TiledDropsPartialBlock(NumpyBackend):
    """Tiled attention skips the last key block when block_k does not divide the key length."""

    name: ClassVar[str] = "mutant-tiled-drops-partial-block"

    def tiled_attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        block_q: int,
        block_k: int,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        whole = (k.shape[-2] // block_k) * block_k or k.shape[-2]
        return super().tiled_attention(
            q,
            k[..., :whole, :],
            v[..., :whole, :],
            block_q,
            block_k,
            is_causal,
            scale if scale is not None else 1.0 / np.sqrt(q.shape[-1]),
        )


class AttentionDropsLastKey(NumpyBackend):
    """The key loop stops one short: the last key and value never contribute (when S > 1)."""

    name: ClassVar[str] = "mutant-attention-drops-last-key"

    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Any = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        if k.shape[-2] > 1:
            k, v = k[..., :-1, :], v[..., :-1, :]
            if mask is not None:
                mask = np.asarray(mask)[..., :-1]
        return super().attention(q, k, v, mask, is_causal, scale)


class LstmInputForgetSwapped(NumpyBackend):
    """The input and forget gate blocks are read in the order f, i, g, o instead of i, f, g, o."""

    name: ClassVar[str] = "mutant-lstm-gates-swapped"

    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        gates = x @ params["w_ih"].T + h @ params["w_hh"].T + params["b"]
        forget_gate, input_gate, candidate, output_gate = np.split(gates, 4, axis=-1)
        c_next = _sigmoid(forget_gate) * c + _sigmoid(input_gate) * np.tanh(candidate)
        return _sigmoid(output_gate) * np.tanh(c_next), c_next


class LstmCellStateSquashed(NumpyBackend):
    """The new cell state goes through tanh, so the additive gradient highway is lost."""

    name: ClassVar[str] = "mutant-lstm-cell-state-squashed"

    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        gates = x @ params["w_ih"].T + h @ params["w_hh"].T + params["b"]
        input_gate, forget_gate, candidate, output_gate = np.split(gates, 4, axis=-1)
        c_next = np.tanh(_sigmoid(forget_gate) * c + _sigmoid(input_gate) * np.tanh(candidate))
        return _sigmoid(output_gate) * np.tanh(c_next), c_next


class RnnResidualLeak(NumpyBackend):
    """The RNN cell adds the previous state to its output (h' = h + tanh(...))."""

    name: ClassVar[str] = "mutant-rnn-residual-leak"

    def rnn_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        return h + super().rnn_cell(x, h, params)


REJECTED_BY: dict[type[NumpyBackend], tuple[str, ...]] = {
    NoSqrtDkScaling: (
        "scaling.variance.scaled_is_unit",
        "scaling.default_scale.is_inverse_sqrt_dk",
        "attention.sdpa.matches_formula",
    ),
    ScaleByDkNotSqrt: ("scaling.variance.scaled_is_unit", "scaling.default_scale.is_inverse_sqrt_dk"),
    ExplicitScaleIgnored: ("scaling.explicit_scale.honoured", "scaling.variance.unscaled_grows_with_dk"),
    CausalMaskOffByOne: (
        "masking.causal.future_independence",
        "masking.causal.upper_triangle_zero",
        "masking.causal.first_position_self_only",
    ),
    CausalMaskIgnored: (
        "attention.causal.breaks_equivariance",
        "masking.causal.future_independence",
        "masking.causal.alignment_is_one_of_two",
    ),
    MaskPolarityInverted: ("masking.keys.masked_weight_zero", "attention.sdpa.matches_formula"),
    MaskFillNotInfinite: ("masking.keys.masked_weight_zero", "masking.causal.upper_triangle_zero"),
    SoftmaxWrongAxis: (
        "softmax.rows.sum_to_one",
        "softmax.attention_weights.rows_sum_to_one",
        "softmax.formula.matches",
    ),
    SoftmaxWithoutMaxSubtraction: ("softmax.shift.invariance", "masking.fully_masked.finite_fill"),
    TiledWithoutRescaling: ("flash.tiled.equals_dense", "flash.tiled.causal_equals_dense"),
    TiledDropsPartialBlock: ("flash.tiled.equals_dense",),
    AttentionDropsLastKey: (
        "attention.self.permutation_equivariance",
        "attention.cross.key_value_permutation_invariance",
        "attention.sdpa.matches_formula",
    ),
    LstmInputForgetSwapped: (
        "lstm.cell.matches_equations",
        "lstm.gradient.cell_state_jacobian_is_forget_gate",
        "lstm.gradient.long_horizon_retention",
    ),
    LstmCellStateSquashed: (
        "lstm.cell.matches_equations",
        "lstm.gradient.cell_state_jacobian_is_forget_gate",
    ),
    RnnResidualLeak: ("rnn.cell.matches_formula", "rnn.gradient.vanishes"),
}
