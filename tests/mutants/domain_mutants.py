"""Mutants for the input domains the catalogue used not to draw (spec/domains.yaml).

Each is a subclass of the numpy reference whose forward pass is right on the inputs the older
properties drew and wrong on one rare-but-real condition: a mask with is_causal, Dv != D, an
explicit scale of 0, a finite bias, masked NaNs, a fully masked row (boolean, additive with -inf or
a finite fill, multi-head), a batched multi-head mask.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nnspec.backends.numpy import NumpyBackend

FRAMEWORK = None
Array = np.ndarray


class CausalDroppedWhenMaskGiven(NumpyBackend):
    """``is_causal`` is ignored whenever an explicit mask is also given (mask takes precedence)."""

    name: ClassVar[str] = "mutant-causal-dropped-with-mask"

    def attention_weights(
        self, q: Array, k: Array, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        return super().attention_weights(q, k, mask, is_causal and mask is None, scale)


class ScaleBySqrtValueWidth(NumpyBackend):
    """The default scale is ``1/sqrt(Dv)`` (the value width) instead of ``1/sqrt(D)``."""

    name: ClassVar[str] = "mutant-scale-by-sqrt-dv"

    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Any = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        scale = 1.0 / np.sqrt(v.shape[-1]) if scale is None else scale
        return super().attention(q, k, v, mask, is_causal, scale)


class ScaleZeroMeansDefault(NumpyBackend):
    """``scale or 1/sqrt(D)``: an explicit scale of 0.0 is falsy and silently becomes the default."""

    name: ClassVar[str] = "mutant-scale-zero-is-default"

    def attention_weights(
        self, q: Array, k: Array, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        return super().attention_weights(q, k, mask, is_causal, scale or None)


class BiasScaledWithLogits(NumpyBackend):
    """The bias is added before the scaling: ``scale (q k^T + bias)``; invisible for 0/-inf biases."""

    name: ClassVar[str] = "mutant-bias-scaled-with-logits"

    def attention_with_bias(
        self, q: Array, k: Array, v: Array, bias: Array, scale: float | None = None
    ) -> Array:
        used = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
        logits = (q @ np.swapaxes(k, -1, -2) + bias) * used
        return self.softmax(logits, axis=-1) @ v


class ReturnsFloat32(NumpyBackend):
    """Computes and returns float32 whatever the input dtype (float64 inputs come back float32)."""

    name: ClassVar[str] = "mutant-returns-float32"

    def softmax(self, x: Array, axis: int = -1) -> Array:
        return super().softmax(np.asarray(x, np.float32), axis)

    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Any = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        return super().attention(*(np.asarray(a, np.float32) for a in (q, k, v)), mask, is_causal, scale)

    def attention_with_bias(
        self, q: Array, k: Array, v: Array, bias: Array, scale: float | None = None
    ) -> Array:
        return super().attention_with_bias(*(np.asarray(a, np.float32) for a in (q, k, v, bias)), scale)

    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        return super().layer_norm(*(np.asarray(a, np.float32) for a in (x, weight, bias)), eps)


class MaskedNaNLeaks(NumpyBackend):
    """``weights @ v`` over every key: a NaN or inf in a masked value gives 0 * NaN = NaN."""

    name: ClassVar[str] = "mutant-masked-nan-leaks"

    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Any = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        return self.attention_weights(q, k, mask, is_causal, scale) @ v


class EmptyRowDisablesMask(NumpyBackend):
    """A mask with any fully masked row is dropped altogether (a "fall back to no mask" shortcut),
    and an additive mask with a row of -inf is replaced by zeros."""

    name: ClassVar[str] = "mutant-empty-row-disables-mask"

    def attention_weights(
        self, q: Array, k: Array, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        if mask is not None and not np.all(np.asarray(mask).any(axis=-1)):
            mask = None
        return super().attention_weights(q, k, mask, is_causal, scale)

    def attention_with_bias(
        self, q: Array, k: Array, v: Array, bias: Array, scale: float | None = None
    ) -> Array:
        if np.any(np.all(np.isneginf(bias), axis=-1)):
            bias = np.zeros_like(bias)
        return super().attention_with_bias(q, k, v, bias, scale)


class LargeNegativeBiasIsMasked(NumpyBackend):
    """attention_with_bias treats any bias below -20 as a mask (``-inf``): a row whose every key
    carries a finite fill becomes 0/0 = NaN, and an ordinary bias of -50 is dropped."""

    name: ClassVar[str] = "mutant-large-negative-bias-is-masked"

    def attention_with_bias(
        self, q: Array, k: Array, v: Array, bias: Array, scale: float | None = None
    ) -> Array:
        with np.errstate(invalid="ignore"):
            return super().attention_with_bias(q, k, v, np.where(bias < -20, -np.inf, bias), scale)


class MultiHeadMaskOfFirstExample(NumpyBackend):
    """Multi-head attention applies batch element 0's mask to every element of the batch."""

    name: ClassVar[str] = "mutant-mha-first-example-mask"

    def multi_head_attention(
        self,
        x_q: Array,
        x_kv: Array,
        params: dict[str, Array],
        num_heads: int,
        mask: Any = None,
        is_causal: bool = False,
    ) -> Array:
        if mask is not None:
            mask = np.asarray(mask)[:1]
        return super().multi_head_attention(x_q, x_kv, params, num_heads, mask, is_causal)


REJECTED_BY: dict[type[NumpyBackend], tuple[str, ...]] = {
    CausalDroppedWhenMaskGiven: (
        "attention.domain.mask_with_causal",
        "masking.fully_masked.isolated_multi_head",
    ),
    ScaleBySqrtValueWidth: ("attention.domain.value_width_differs", "attention.sdpa.matches_formula"),
    ScaleZeroMeansDefault: ("attention.domain.scale_zero", "gradients.attention.zero_scale"),
    BiasScaledWithLogits: ("attention.domain.finite_bias",),
    ReturnsFloat32: ("attention.dtype.*",),
    MaskedNaNLeaks: ("masking.domain.nonfinite_masked_keys_ignored*",),
    EmptyRowDisablesMask: ("masking.fully_masked.isolated_*",),
    LargeNegativeBiasIsMasked: ("masking.fully_masked.finite_fill",),
    MultiHeadMaskOfFirstExample: ("multihead.domain.masked_batched",),
}
