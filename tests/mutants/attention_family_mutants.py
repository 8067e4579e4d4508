"""Mutants for the attention family (masks, decoding, sparse, linear and multi-head attention).

Each subclasses the NumPy reference and plants one bug; ``REJECTED_BY`` lists the properties
that must reject it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from nnspec.backends.numpy import NumpyBackend
from tests.mutants.reference_mutants import weights_with_finite_fill

FRAMEWORK = None  # the reference backend needs no framework

Array = np.ndarray


def _split_interleaved(x: Array, heads: int) -> Array:
    """(B, T, M) -> (B, H, T, M/H) taking every H-th column, instead of contiguous slices."""
    batch, length, width = x.shape
    return x.reshape(batch, length, width // heads, heads).transpose(0, 3, 1, 2)


class AttentionWeightsUnnormalised(NumpyBackend):
    """Attention forgets to divide by the softmax denominator: exp(logits - max) @ v."""

    name: ClassVar[str] = "mutant-attention-unnormalised"

    def attention(self, q: Array, k: Array, v: Array, mask: Any = None, is_causal: bool = False,
                  scale: float | None = None) -> Array:
        weights = super().attention_weights(q, k, mask, is_causal, scale)
        peak = np.max(weights, axis=-1, keepdims=True)
        return (weights / np.where(peak > 0, peak, 1.0)) @ v  # the largest weight becomes 1


class QueriesTruncatedToKeyLength(NumpyBackend):
    """Attention assumes self-attention and keeps only the first S queries."""

    name: ClassVar[str] = "mutant-queries-truncated"

    def attention(self, q: Array, k: Array, v: Array, mask: Any = None, is_causal: bool = False,
                  scale: float | None = None) -> Array:
        q = q[..., : k.shape[-2], :]
        if mask is not None and np.ndim(mask) >= 2 and np.shape(mask)[-2] > 1:
            mask = np.asarray(mask)[..., : k.shape[-2], :]
        return super().attention(q, k, v, mask, is_causal, scale)


class KeysRolledByOne(NumpyBackend):
    """The logits pair query i with key i + 1 (an indexing slip along the key sequence)."""

    name: ClassVar[str] = "mutant-keys-rolled"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        return super().attention_weights(q, np.roll(k, -1, axis=-2), mask, is_causal, scale)


class SoftmaxOverWholeScoreMatrix(NumpyBackend):
    """Attention weights are normalised over the whole (L, S) score matrix, not per query row."""

    name: ClassVar[str] = "mutant-softmax-whole-matrix"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
        logits = (q @ np.swapaxes(k, -1, -2)) * scale
        flat = logits.reshape(*logits.shape[:-2], -1)
        return self.softmax(flat, axis=-1).reshape(logits.shape)


class SoftmaxProbabilityFloor(NumpyBackend):
    """Softmax clamps every probability to at least 1e-4 and renormalises (a 'never zero' safety floor)."""

    name: ClassVar[str] = "mutant-softmax-floor"

    def softmax(self, x: Array, axis: int = -1) -> Array:
        floored = np.maximum(super().softmax(x, axis=axis), 1e-4)
        return floored / np.sum(floored, axis=axis, keepdims=True)


class StraightThroughGradient(NumpyBackend):
    """vjp passes the cotangent straight through (a straight-through estimator) instead of differentiating."""

    name: ClassVar[str] = "mutant-straight-through-gradient"

    def vjp(self, fn: Callable[..., Any], *primals: Array) -> tuple[Any, Callable[[Any], Sequence[Array]]]:
        out, _ = super().vjp(fn, *primals)

        def straight_through(cotangent: Any) -> list[Array]:
            flat = np.asarray(cotangent, dtype=np.float64).reshape(-1)
            return [flat[: p.size].reshape(np.shape(p)) if flat.size >= np.size(p) else np.zeros(np.shape(p))
                    for p in primals]

        return out, straight_through


class KeyPaddingMaskAppliedToQueries(NumpyBackend):
    """A key padding mask of shape (B, 1, 1, S) is applied along the query axis instead."""

    name: ClassVar[str] = "mutant-key-mask-on-queries"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        if mask is not None and np.ndim(mask) == 4 and np.shape(mask)[-2] == 1 and q.shape[-2] == k.shape[-2]:
            mask = np.swapaxes(np.asarray(mask), -1, -2)
        return super().attention_weights(q, k, mask, is_causal, scale)


class AdditiveMaskIgnored(NumpyBackend):
    """The additive float mask is accepted and silently dropped."""

    name: ClassVar[str] = "mutant-additive-mask-ignored"

    def attention_with_bias(self, q: Array, k: Array, v: Array, bias: Array, scale: float | None = None) -> Array:
        return super().attention(q, k, v, scale=scale)


class MaskHeadAxisIgnored(NumpyBackend):
    """A per-head mask is read from head 0 only, so every head gets the first head's pattern."""

    name: ClassVar[str] = "mutant-mask-head-axis-ignored"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        if mask is not None and np.ndim(mask) == 4:
            mask = np.asarray(mask)[:, :1]
        return super().attention_weights(q, k, mask, is_causal, scale)


class MaskTransposed(NumpyBackend):
    """A square boolean mask is read as (S, L): query and key axes swapped."""

    name: ClassVar[str] = "mutant-mask-transposed"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        if mask is not None and np.ndim(mask) >= 2 and np.shape(mask)[-1] == np.shape(mask)[-2]:
            mask = np.swapaxes(np.asarray(mask), -1, -2)
            mask = mask | ~mask.any(axis=-1, keepdims=True)  # keep rows attendable: wrong weights, not empty rows
        return super().attention_weights(q, k, mask, is_causal, scale)


class MaskedLogitsFilledWithMinusTen(NumpyBackend):
    """Masked logits are set to -10 (a 'large negative' that is not), so masked keys leak weight."""

    name: ClassVar[str] = "mutant-mask-fill-minus-10"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        return weights_with_finite_fill(self, q, k, mask, is_causal, scale, -10.0)


class MaskedPathUnscaled(NumpyBackend):
    """When a mask is given, a separate code path forgets the 1/sqrt(d_k) scale."""

    name: ClassVar[str] = "mutant-masked-path-unscaled"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        if mask is not None and scale is None:
            scale = 1.0
        return super().attention_weights(q, k, mask, is_causal, scale)


class FullyMaskedRowsUniform(NumpyBackend):
    """Masked logits are filled with a huge finite negative, so a fully masked row averages every value."""

    name: ClassVar[str] = "mutant-fully-masked-uniform"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        return weights_with_finite_fill(self, q, k, mask, is_causal, scale, float(np.finfo(q.dtype).min))


class CausalBottomRightAligned(NumpyBackend):
    """is_causal is aligned bottom-right (query i sees keys j <= i + S - L) instead of top-left."""

    name: ClassVar[str] = "mutant-causal-bottom-right"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        if is_causal:
            q_len, k_len = q.shape[-2], k.shape[-2]
            aligned = np.tril(np.ones((q_len, k_len), dtype=bool), k=k_len - q_len)
            mask = aligned if mask is None else np.asarray(mask, dtype=bool) & aligned
        return super().attention_weights(q, k, mask, False, scale)


class CausalMaskExcludesSelf(NumpyBackend):
    """The causal mask is strictly lower triangular: a query cannot see its own key."""

    name: ClassVar[str] = "mutant-causal-excludes-self"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        if is_causal:
            strict = np.tril(np.ones((q.shape[-2], k.shape[-2]), dtype=bool), k=-1)
            mask = strict if mask is None else np.asarray(mask, dtype=bool) & strict
        return super().attention_weights(q, k, mask, False, scale)


class MultiHeadIgnoresCausal(NumpyBackend):
    """multi_head_attention forwards its mask but drops is_causal."""

    name: ClassVar[str] = "mutant-mha-drops-causal"

    def multi_head_attention(self, x_q: Array, x_kv: Array, params: dict[str, Array], num_heads: int,
                             mask: Any = None, is_causal: bool = False) -> Array:
        return super().multi_head_attention(x_q, x_kv, params, num_heads, mask=mask, is_causal=False)


class MultiHeadHeadsInterleaved(NumpyBackend):
    """Heads take every h-th column of the projections instead of contiguous slices of d_model / h."""

    name: ClassVar[str] = "mutant-mha-heads-interleaved"

    def multi_head_attention(self, x_q: Array, x_kv: Array, params: dict[str, Array], num_heads: int,
                             mask: Any = None, is_causal: bool = False) -> Array:
        def project(x: Array, name: str) -> Array:
            return _split_interleaved(x @ params[f"w_{name}"].T + params[f"b_{name}"], num_heads)

        heads = self.attention(project(x_q, "q"), project(x_kv, "k"), project(x_kv, "v"),
                               mask=mask, is_causal=is_causal)
        batch, _, length, _ = heads.shape
        concatenated = heads.transpose(0, 2, 3, 1).reshape(batch, length, -1)  # undo the interleaving
        return concatenated @ params["w_o"].T + params["b_o"]


class MultiHeadScaleUsesModelWidth(NumpyBackend):
    """Each head scales its logits by 1/sqrt(d_model) instead of 1/sqrt(d_model / h)."""

    name: ClassVar[str] = "mutant-mha-scale-model-width"

    def multi_head_attention(self, x_q: Array, x_kv: Array, params: dict[str, Array], num_heads: int,
                             mask: Any = None, is_causal: bool = False) -> Array:
        width = x_q.shape[-1]

        def split(x: Array) -> Array:
            batch, length, _ = x.shape
            return x.reshape(batch, length, num_heads, width // num_heads).transpose(0, 2, 1, 3)

        heads = self.attention(split(x_q @ params["w_q"].T + params["b_q"]), split(x_kv @ params["w_k"].T + params["b_k"]),
                               split(x_kv @ params["w_v"].T + params["b_v"]), mask=mask, is_causal=is_causal,
                               scale=1.0 / np.sqrt(width))
        batch, _, length, _ = heads.shape
        return heads.transpose(0, 2, 1, 3).reshape(batch, length, -1) @ params["w_o"].T + params["b_o"]


class LinearAttentionWithoutPlusOne(NumpyBackend):
    """Linear attention uses the feature map elu(x) instead of elu(x) + 1 (features can be negative)."""

    name: ClassVar[str] = "mutant-linear-attention-elu"

    def linear_attention(self, q: Array, k: Array, v: Array, is_causal: bool = False) -> Array:
        def feature(x: Array) -> Array:
            return np.where(x > 0, x, np.exp(np.minimum(x, 0.0)) - 1.0)

        similarity = feature(q) @ np.swapaxes(feature(k), -1, -2)
        if is_causal:
            similarity = np.tril(similarity)
        return (similarity @ v) / np.sum(similarity, axis=-1, keepdims=True)


class LinearAttentionCausalExcludesCurrent(NumpyBackend):
    """Causal linear attention sums over j < i, leaving out the current position."""

    name: ClassVar[str] = "mutant-linear-attention-strict-causal"

    def linear_attention(self, q: Array, k: Array, v: Array, is_causal: bool = False) -> Array:
        if not is_causal:
            return super().linear_attention(q, k, v)

        def feature(x: Array) -> Array:
            return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))

        similarity = np.tril(feature(q) @ np.swapaxes(feature(k), -1, -2), k=-1)
        totals = np.sum(similarity, axis=-1, keepdims=True)
        return (similarity @ v) / np.where(totals > 0, totals, 1.0)


REJECTED_BY: dict[type[NumpyBackend], tuple[str, ...]] = {
    AttentionWeightsUnnormalised: ("attention.sdpa.output_in_value_hull",),
    QueriesTruncatedToKeyLength: ("attention.cross.output_follows_queries",),
    KeysRolledByOne: ("attention.projections.shared_qk_symmetric_scores",),
    SoftmaxOverWholeScoreMatrix: ("attention.projections.shared_qk_symmetric_scores",),
    SoftmaxProbabilityFloor: ("softmax.temperature.limits",),
    StraightThroughGradient: ("scaling.saturation.jacobian_shrinks",),
    KeyPaddingMaskAppliedToQueries: ("masking.padding.pad_invariance",),
    AdditiveMaskIgnored: ("masking.additive.equals_boolean",),
    MaskHeadAxisIgnored: ("masking.arbitrary.matches_oracle", "sparse.sliding_window.independence",
                          "sparse.block_sparse.independence"),
    MaskTransposed: ("masking.prefix_lm.bidirectional_prefix", "masking.arbitrary.matches_oracle",
                     "sparse.block_sparse.independence"),
    MaskedLogitsFilledWithMinusTen: ("sparse.*.independence", "masking.padding.pad_invariance"),
    MaskedPathUnscaled: ("sparse.full_window.equals_dense", "masking.arbitrary.matches_oracle"),
    FullyMaskedRowsUniform: ("masking.fully_masked.output_zero",),
    CausalBottomRightAligned: ("masking.causal.alignment_when_lengths_differ",),
    CausalMaskExcludesSelf: ("decoding.kv_cache.incremental_attention_equals_causal",
                             "decoding.kv_cache.cached_equals_recomputed", "decoding.greedy.cache_agrees"),
    MultiHeadIgnoresCausal: ("decoding.teacher_forcing.parallel_equals_stepwise", "multihead.formula.concatenated_heads"),
    MultiHeadHeadsInterleaved: ("multihead.heads.width_is_d_model_over_h", "multihead.formula.concatenated_heads"),
    MultiHeadScaleUsesModelWidth: ("multihead.heads.width_is_d_model_over_h", "multihead.formula.concatenated_heads"),
    LinearAttentionWithoutPlusOne: ("linear_attention.recurrent.equals_parallel",
                                    "linear_attention.recurrent.causal_equals_parallel"),
    LinearAttentionCausalExcludesCurrent: ("linear_attention.recurrent.causal_equals_parallel",),
}
