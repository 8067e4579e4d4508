"""Deliberately broken JAX backends, each named after the bug it plants.

Every mutant subclasses :class:`nnspec.backends.jax.JaxBackend` and overrides one primitive with
a bug that JAX code has shipped with (or that the JAX conventions invite: the (B, L, H, D)
layout, ``stop_gradient``, ``axis=`` defaults, the half-split RoPE of GPT-NeoX). The suite must
reject each; ``REJECTED_BY`` lists the property ids (glob patterns) expected to do it.
jax is imported inside methods only, so importing this module is cheap and framework-free.
"""

from __future__ import annotations

from typing import Any, ClassVar

from nnspec.backends.jax import JaxBackend, jit_method

FRAMEWORK = "jax"  # tests/test_mutants.py leaves this module out when jax is not installed
Array = Any


class StopGradientCellStateLSTM(JaxBackend):
    """``c' = f * stop_gradient(c) + i * g``: forward exact, ``dc'/dc`` is zero instead of ``f``."""

    name: ClassVar[str] = "jax-stop-gradient-cell-state"

    @jit_method()
    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        return super().lstm_cell(x, h, self.jax.lax.stop_gradient(c), params)


class AttentionScaledByDim(JaxBackend):
    """The default scale is ``1/D`` instead of ``1/sqrt(D)``: logits too flat by a factor ``sqrt(D)``."""

    name: ClassVar[str] = "jax-attention-scale-1-over-d"

    def attention_weights(
        self,
        q: Array,
        k: Array,
        mask: Array | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        scale = 1.0 / q.shape[-1] if scale is None else scale
        return super().attention_weights(q, k, mask=mask, is_causal=is_causal, scale=scale)

    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Array | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        scale = 1.0 / q.shape[-1] if scale is None else scale
        return super().attention(q, k, v, mask=mask, is_causal=is_causal, scale=scale)


class SoftmaxOverFirstAxis(JaxBackend):
    """``jax.nn.softmax(x, axis=0)`` whatever axis is asked for: normalises across the batch."""

    name: ClassVar[str] = "jax-softmax-axis-0"

    @jit_method("axis")
    def softmax(self, x: Array, axis: int = -1) -> Array:
        return self.jax.nn.softmax(x, axis=0)


class AttentionLayoutNotTransposed(JaxBackend):
    """Protocol ``(B, H, L, D)`` arrays handed to ``dot_product_attention`` as if they were ``(B, T, N, H)``.

    The shapes still fit, so nothing raises: heads are attended over instead of positions.
    """

    name: ClassVar[str] = "jax-attention-untransposed"

    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Array | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        if mask is not None or q.shape[2] != k.shape[2]:
            # Misread, a mask would not line up and L != S would not fit: only this path is broken.
            return super().attention(q, k, v, mask=mask, is_causal=is_causal, scale=scale)
        return self._dot_product_attention(q, k, v, None, is_causal, scale)


class RopeRotatesHalves(JaxBackend):
    """Rotates ``(x[i], x[i + D/2])`` (GPT-NeoX's layout) instead of the protocol's pairs ``(x[2i], x[2i+1])``."""

    name: ClassVar[str] = "jax-rope-half-split"

    @jit_method()
    def rope(self, x: Array, positions: Array, base: float = 10000.0) -> Array:
        import jax.numpy as jnp

        dim = x.shape[-1]
        frequencies = base ** (-jnp.arange(0, dim, 2, dtype=jnp.float64) / dim)
        angles = jnp.asarray(positions, dtype=jnp.float64)[:, None] * frequencies[None, :]
        cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
        first, second = x[..., : dim // 2], x[..., dim // 2 :]
        return jnp.concatenate((first * cos - second * sin, first * sin + second * cos), axis=-1)


class LayerNormUnbiasedVariance(JaxBackend):
    """Variance with Bessel's correction (``ddof=1``), the default of ``torch.var``, not the biased one."""

    name: ClassVar[str] = "jax-layer-norm-unbiased"

    @jit_method()
    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        import jax.numpy as jnp

        mean = x.mean(axis=-1, keepdims=True)
        variance = jnp.var(x, axis=-1, keepdims=True, ddof=1)
        return (x - mean) / jnp.sqrt(variance + eps) * weight + bias


class GRUResetBeforeMatmul(JaxBackend):
    """``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``: the reset gate applied before the recurrent matmul.

    The original GRU of Cho et al. (Keras ``reset_after=False``); the protocol's cell resets after it.
    """

    name: ClassVar[str] = "jax-gru-reset-before"

    @jit_method()
    def gru_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        import jax.numpy as jnp

        sigmoid = self.jax.nn.sigmoid
        w_hr, w_hz, w_hn = jnp.split(params["w_hh"], 3, axis=0)
        b_hr, b_hz, b_hn = jnp.split(params["b_hh"], 3, axis=-1)
        input_r, input_z, input_n = jnp.split(x @ params["w_ih"].T + params["b_ih"], 3, axis=-1)
        reset = sigmoid(input_r + h @ w_hr.T + b_hr)
        update = sigmoid(input_z + h @ w_hz.T + b_hz)
        candidate = jnp.tanh(input_n + (reset * h) @ w_hn.T + b_hn)
        return (1.0 - update) * candidate + update * h


class LstmSequenceInitialCellStopped(JaxBackend):
    """An LSTM layer that stops the gradient of its initial cell state c0 (forward exact)."""

    name: ClassVar[str] = "jax-lstm-sequence-c0-stop-gradient"

    def lstm_sequence(
        self,
        xs: Array,
        h0: Array,
        c0: Array,
        params: dict[str, Array],
        lengths: Array = None,
        reverse: bool = False,
    ) -> tuple[Array, Array, Array]:
        return super().lstm_sequence(
            xs, h0, self.jax.lax.stop_gradient(c0), params, lengths=lengths, reverse=reverse
        )


# -- gradient-only bugs: the forward pass is exact, only the backward is wrong --------------------


class _AttentionCustomVjp(JaxBackend):
    """Attention whose backward is a ``jax.custom_vjp`` keeping only the cotangents in ``kept``."""

    kept: ClassVar[tuple[str, ...]] = ("q", "k", "v")

    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Array | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        jax, exact = self.jax, super().attention

        def forward(q: Array, k: Array, v: Array) -> Array:
            return exact(q, k, v, mask=mask, is_causal=is_causal, scale=scale)

        def backward(primals: tuple[Array, Array, Array], cotangent: Array) -> tuple[Array, ...]:
            grads = jax.vjp(forward, *primals)[1](cotangent)
            return tuple(
                g if name in self.kept else jax.numpy.zeros_like(g)
                for name, g in zip("qkv", grads, strict=True)
            )

        planted = jax.custom_vjp(forward)
        planted.defvjp(lambda q, k, v: (forward(q, k, v), (q, k, v)), backward)
        return planted(q, k, v)


class AttentionCustomVjpValuesOnly(_AttentionCustomVjp):
    """A ``custom_vjp`` attention backward that returns dV only (dQ = dK = 0); the forward is exact."""

    name: ClassVar[str] = "jax-attention-vjp-values-only"
    kept = ("v",)


class AttentionCustomVjpDropsValues(_AttentionCustomVjp):
    """A ``custom_vjp`` attention backward that drops dV (returns 0 for it); the forward is exact."""

    name: ClassVar[str] = "jax-attention-vjp-drops-dv"
    kept = ("q", "k")


class LayerNormStopGradientVariance(JaxBackend):
    """Layer norm with ``stop_gradient`` on the variance: forward exact, the backward misses d var / dx."""

    name: ClassVar[str] = "jax-layer-norm-stopped-variance"

    @jit_method()
    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        import jax.numpy as jnp

        mean = x.mean(axis=-1, keepdims=True)
        variance = self.jax.lax.stop_gradient(((x - mean) ** 2).mean(axis=-1, keepdims=True))
        return (x - mean) / jnp.sqrt(variance + eps) * weight + bias


class StopGradientHiddenStateLSTM(JaxBackend):
    """``stop_gradient(h)`` entering the LSTM cell: forward exact, no gradient reaches h (nor w_hh through it)."""

    name: ClassVar[str] = "jax-stop-gradient-hidden-state"

    @jit_method()
    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        return super().lstm_cell(x, self.jax.lax.stop_gradient(h), c, params)


#: JaxBackend's dtype-scoped divergences apply to these mutants too (tests/test_mutants.py): a
#: mutant is judged only in the dtypes where JaxBackend itself is (float64 attention carries JAX's
#: float32 softmax), so a rejection is the planted bug's and not the framework's.
DIVERGENCES_OF = "jax"

#: Each mutant and the property ids (glob patterns) expected to reject it. Only properties that
#: JaxBackend itself passes (in the dtypes its divergences leave in) are listed.
REJECTED_BY: dict[type[JaxBackend], tuple[str, ...]] = {
    StopGradientCellStateLSTM: ("lstm.gradient.*",),
    AttentionScaledByDim: ("scaling.default_scale.*", "scaling.variance.scaled_is_unit"),
    SoftmaxOverFirstAxis: ("softmax.formula.*", "softmax.rows.*", "softmax.shift.*"),
    AttentionLayoutNotTransposed: (
        "attention.causal.breaks_equivariance",
        "masking.causal.first_position_self_only",
    ),
    RopeRotatesHalves: ("positional.rope.matches_formula",),
    LayerNormUnbiasedVariance: ("normalisation.layer_norm.matches_formula",),
    GRUResetBeforeMatmul: ("gru.cell.matches_equations",),
    LstmSequenceInitialCellStopped: ("gradients.lstm_sequence.matches_reference",),
    # at scale 0 the logits do not depend on q and k, so dQ = dK = 0 is right there (zero_scale passes it)
    AttentionCustomVjpValuesOnly: ("gradients.attention.matches_reference", "gradients.attention.half_precision"),
    AttentionCustomVjpDropsValues: ("gradients.attention.*",),
    LayerNormStopGradientVariance: ("gradients.layer_norm.matches_reference",),
    StopGradientHiddenStateLSTM: ("gradients.lstm_cell.matches_reference",),
}
