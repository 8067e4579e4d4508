"""Mutants of the NumPy reference for the transformer building blocks: positional encodings,
layer normalisation, the feed-forward network, residual wiring and encoder/decoder layers."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nnspec.backends.numpy import NumpyBackend

FRAMEWORK = None  # the reference backend needs no framework

Array = np.ndarray


# -- sinusoidal encodings ---------------------------------------------------------------------------


class SinusoidalPositionsIgnored(NumpyBackend):
    """Every row of the sinusoidal table is the encoding of position 0."""

    name: ClassVar[str] = "mutant-sinusoidal-positions-ignored"

    def sinusoidal_encoding(self, length: int, d_model: int, dtype: str = "float64") -> Array:
        table = super().sinusoidal_encoding(length, d_model, dtype)
        return np.broadcast_to(table[:1], table.shape).copy()


class SinusoidalOneBasedPositions(NumpyBackend):
    """Positions count from 1, so row p holds the encoding of p + 1."""

    name: ClassVar[str] = "mutant-sinusoidal-one-based"

    def sinusoidal_encoding(self, length: int, d_model: int, dtype: str = "float64") -> Array:
        return super().sinusoidal_encoding(length + 1, d_model, dtype)[1:]


class SinusoidalScaledBySqrtDModel(NumpyBackend):
    """The sqrt(d_model) embedding scale is applied to the encoding instead of the embeddings."""

    name: ClassVar[str] = "mutant-sinusoidal-scaled"

    def sinusoidal_encoding(self, length: int, d_model: int, dtype: str = "float64") -> Array:
        return (super().sinusoidal_encoding(length, d_model, "float64") * np.sqrt(d_model)).astype(dtype)


class SinusoidalSineOnly(NumpyBackend):
    """Odd columns take the sine as well, not the cosine."""

    name: ClassVar[str] = "mutant-sinusoidal-sine-only"

    def sinusoidal_encoding(self, length: int, d_model: int, dtype: str = "float64") -> Array:
        table = super().sinusoidal_encoding(length, d_model, "float64")
        table[:, 1::2] = table[:, 0::2][:, : d_model // 2]
        return table.astype(dtype)


# -- RoPE -------------------------------------------------------------------------------------------


class RopeRotatesHalves(NumpyBackend):
    """RoPE pairs x[i] with x[i + D/2] ("rotate_half") instead of adjacent coordinates."""

    name: ClassVar[str] = "mutant-rope-rotate-half"

    def rope(self, x: Array, positions: Array, base: float = 10000.0) -> Array:
        half = x.shape[-1] // 2
        interleaved = np.empty_like(x)
        interleaved[..., 0::2], interleaved[..., 1::2] = x[..., :half], x[..., half:]
        rotated = super().rope(interleaved, positions, base)
        return np.concatenate([rotated[..., 0::2], rotated[..., 1::2]], axis=-1)


class RopeNotOrthogonal(NumpyBackend):
    """The sine term of the even coordinate has the wrong sign: [[cos, sin], [sin, cos]] is no rotation."""

    name: ClassVar[str] = "mutant-rope-not-orthogonal"

    def rope(self, x: Array, positions: Array, base: float = 10000.0) -> Array:
        dim = x.shape[-1]
        angles = np.asarray(positions, np.float64)[:, None] * base ** (-np.arange(0, dim, 2) / dim)
        cos, sin = np.cos(angles).astype(x.dtype), np.sin(angles).astype(x.dtype)
        out = np.empty_like(x)
        out[..., 0::2] = x[..., 0::2] * cos + x[..., 1::2] * sin
        out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
        return out


# -- ALiBi ------------------------------------------------------------------------------------------


class AlibiSlopesOffByOne(NumpyBackend):
    """Slopes are 2^(-8h/H) for h = 0 .. H-1, so the first head has slope 1."""

    name: ClassVar[str] = "mutant-alibi-slopes-off-by-one"

    def alibi_bias(self, num_heads: int, q_len: int, k_len: int, dtype: str = "float64") -> Array:
        bias = super().alibi_bias(num_heads, q_len, k_len, "float64")
        return (bias * 2.0 ** (8.0 / num_heads)).astype(dtype)


class AlibiBottomRightAligned(NumpyBackend):
    """The distance is measured with the last query aligned to the last key (i + S - L - j)."""

    name: ClassVar[str] = "mutant-alibi-bottom-right"

    def alibi_bias(self, num_heads: int, q_len: int, k_len: int, dtype: str = "float64") -> Array:
        slopes = 2.0 ** (-8.0 * np.arange(1, num_heads + 1) / num_heads)
        distance = np.arange(q_len)[:, None] + (k_len - q_len) - np.arange(k_len)[None, :]
        return (-slopes[:, None, None] * np.maximum(distance, 0)[None]).astype(dtype)


# -- layer normalisation ----------------------------------------------------------------------------


class LayerNormEpsOutsideSqrt(NumpyBackend):
    """Layer norm divides by sqrt(var) + eps instead of sqrt(var + eps)."""

    name: ClassVar[str] = "mutant-layer-norm-eps-outside-sqrt"

    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        centred = x - x.mean(axis=-1, keepdims=True)
        return centred / (np.sqrt((centred**2).mean(axis=-1, keepdims=True)) + eps) * weight + bias


class LayerNormUnbiasedVariance(NumpyBackend):
    """Layer norm uses the unbiased variance (divides by d - 1)."""

    name: ClassVar[str] = "mutant-layer-norm-unbiased"

    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        centred = x - x.mean(axis=-1, keepdims=True)
        variance = (centred**2).sum(axis=-1, keepdims=True) / max(x.shape[-1] - 1, 1)
        return centred / np.sqrt(variance + eps) * weight + bias


class LayerNormOverSequence(NumpyBackend):
    """Statistics are taken over the whole (T, M) slab of each sequence, not per token."""

    name: ClassVar[str] = "mutant-layer-norm-over-sequence"

    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        axes = (-2, -1) if x.ndim >= 2 else (-1,)
        centred = x - x.mean(axis=axes, keepdims=True)
        return centred / np.sqrt((centred**2).mean(axis=axes, keepdims=True) + eps) * weight + bias


class LayerNormWithoutCentering(NumpyBackend):
    """RMS norm in place of layer norm: divides by the root mean square without subtracting the mean."""

    name: ClassVar[str] = "mutant-layer-norm-rms"

    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        return x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps) * weight + bias


class LayerNormOnePassVariance(NumpyBackend):
    """Layer norm takes the variance in one pass as mean(x^2) - mean(x)^2, which cancels for large means."""

    name: ClassVar[str] = "mutant-layer-norm-one-pass-variance"

    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        mean = x.mean(axis=-1, keepdims=True)
        variance = np.maximum((x * x).mean(axis=-1, keepdims=True) - mean * mean, 0.0)
        return (x - mean) / np.sqrt(variance + eps) * weight + bias


# -- feed-forward network ---------------------------------------------------------------------------


class FeedForwardConvWidthTwo(NumpyBackend):
    """The "position-wise" FFN is a width-2 convolution: each position also reads the previous token."""

    name: ClassVar[str] = "mutant-ffn-conv-width-two"

    def feed_forward(self, x: Array, params: dict[str, Array]) -> Array:
        previous = np.zeros_like(x)
        previous[..., 1:, :] = x[..., :-1, :]
        return super().feed_forward(x + previous, params)


class FeedForwardIncludesResidual(NumpyBackend):
    """The FFN primitive returns x + FFN(x): the block's residual is built into the sublayer."""

    name: ClassVar[str] = "mutant-ffn-includes-residual"

    def feed_forward(self, x: Array, params: dict[str, Array]) -> Array:
        return x + super().feed_forward(x, params)


class SublayersOverwriteInput(NumpyBackend):
    """The FFN and multi-head attention write their output into the input buffer and return it."""

    name: ClassVar[str] = "mutant-sublayers-overwrite-input"

    def feed_forward(self, x: Array, params: dict[str, Array]) -> Array:
        np.copyto(x, super().feed_forward(x, params), casting="unsafe")
        return x

    def multi_head_attention(self, x_q: Array, x_kv: Array, params: dict[str, Array], num_heads: int,
                             mask: Any = None, is_causal: bool = False) -> Array:
        np.copyto(x_q, super().multi_head_attention(x_q, x_kv, params, num_heads, mask, is_causal), casting="unsafe")
        return x_q


# -- multi-head attention inside layers -------------------------------------------------------------


class MhaIgnoresKeyValueInput(NumpyBackend):
    """Multi-head attention takes keys and values from the query input, so cross-attention is self-attention."""

    name: ClassVar[str] = "mutant-mha-ignores-kv-input"

    def multi_head_attention(self, x_q: Array, x_kv: Array, params: dict[str, Array], num_heads: int,
                             mask: Any = None, is_causal: bool = False) -> Array:
        return super().multi_head_attention(x_q, x_q, params, num_heads, mask, is_causal)


class MhaAddsPositions(NumpyBackend):
    """Multi-head attention adds sinusoidal encodings to its inputs itself."""

    name: ClassVar[str] = "mutant-mha-adds-positions"

    def multi_head_attention(self, x_q: Array, x_kv: Array, params: dict[str, Array], num_heads: int,
                             mask: Any = None, is_causal: bool = False) -> Array:
        width = x_q.shape[-1]
        x_q = x_q + self.sinusoidal_encoding(x_q.shape[-2], width, str(x_q.dtype))
        x_kv = x_kv + self.sinusoidal_encoding(x_kv.shape[-2], width, str(x_kv.dtype))
        return super().multi_head_attention(x_q, x_kv, params, num_heads, mask, is_causal)


class MhaDropsIsCausal(NumpyBackend):
    """Multi-head attention does not pass is_causal on to attention."""

    name: ClassVar[str] = "mutant-mha-drops-is-causal"

    def multi_head_attention(self, x_q: Array, x_kv: Array, params: dict[str, Array], num_heads: int,
                             mask: Any = None, is_causal: bool = False) -> Array:
        return super().multi_head_attention(x_q, x_kv, params, num_heads, mask, False)


REJECTED_BY: dict[type[NumpyBackend], tuple[str, ...]] = {
    SinusoidalPositionsIgnored: ("positional.sinusoidal.matches_formula",
                                 "positional.sinusoidal.breaks_permutation_equivariance"),
    SinusoidalOneBasedPositions: ("positional.sinusoidal.matches_formula", "positional.sinusoidal.shift_is_rotation"),
    SinusoidalScaledBySqrtDModel: ("positional.sinusoidal.bounded", "positional.sinusoidal.pairs_on_unit_circle",
                                   "positional.sinusoidal.matches_formula"),
    SinusoidalSineOnly: ("positional.sinusoidal.pairs_on_unit_circle", "positional.sinusoidal.shift_is_rotation",
                         "positional.sinusoidal.matches_formula"),
    RopeRotatesHalves: ("positional.rope.matches_formula",),
    RopeNotOrthogonal: ("positional.rope.matches_formula", "positional.rope.preserves_norm",
                        "positional.rope.relative_scores"),
    AlibiSlopesOffByOne: ("positional.alibi.matches_formula", "positional.alibi.geometric_slopes"),
    AlibiBottomRightAligned: ("positional.alibi.matches_formula", "positional.alibi.relative_distance_only"),
    LayerNormEpsOutsideSqrt: ("normalisation.layer_norm.matches_formula",
                              "normalisation.layer_norm.standardises_each_token"),
    LayerNormUnbiasedVariance: ("normalisation.layer_norm.matches_formula",
                                "normalisation.layer_norm.standardises_each_token", "residual.pre_ln.matches_oracle"),
    LayerNormOverSequence: ("normalisation.layer_norm.batch_independent",
                            "normalisation.layer_norm.standardises_each_token"),
    LayerNormOnePassVariance: ("normalisation.layer_norm.accurate_for_large_means",),
    LayerNormWithoutCentering: ("normalisation.layer_norm.matches_formula", "residual.depth.pre_ln_identity_path"),
    FeedForwardConvWidthTwo: ("feed_forward.formula.matches", "feed_forward.position_wise.permutation_equivariance",
                              "feed_forward.position_wise.token_independence"),
    FeedForwardIncludesResidual: ("feed_forward.formula.matches", "residual.depth.pre_ln_identity_path"),
    SublayersOverwriteInput: ("residual.jacobian.identity_plus_sublayer", "residual.post_ln.matches_oracle",
                              "transformer_layers.encoder.matches_oracle"),
    MhaIgnoresKeyValueInput: ("transformer_layers.decoder.cross_attention_wiring",
                              "transformer_layers.decoder.matches_oracle"),
    MhaAddsPositions: ("transformer_layers.encoder.permutation_equivariance",
                       "transformer_layers.encoder.matches_oracle"),
    MhaDropsIsCausal: ("transformer_layers.decoder.causal", "transformer_layers.decoder.matches_oracle"),
}
