"""The NumPy reference backend: readable, float64-capable, written straight from the formulas.

The formulas that the JAX backend computes step for step the same way are written once, against
an array namespace, in ``backends/_formulas.py``; this backend calls them with ``numpy``.

Gradients: NumPy has no autodiff, so :meth:`NumpyBackend.vjp` differentiates numerically by
central differences in float64 (step ``h = 1e-6`` scaled by each input's magnitude). That is
accurate to about 1e-8 for the smooth primitives here and returns exact zeros where an output
does not depend on an input at all, which is what the gradient-structure properties test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from nnspec.backends import _formulas
from nnspec.backends.base import Backend

Array = np.ndarray


def _sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _scale(scale: float | None, dim: int) -> float:
    return 1.0 / np.sqrt(dim) if scale is None else scale


def _allowed(
    mask: Array | None, is_causal: bool, q_len: int, k_len: int, shape: tuple[int, ...]
) -> Array | None:
    """The combined boolean "may attend" mask broadcast to ``shape`` (BHLS), or None for no mask."""
    allowed = None
    if mask is not None:
        allowed = np.broadcast_to(np.asarray(mask, dtype=bool), shape)
    if is_causal:
        causal = np.tril(np.ones((q_len, k_len), dtype=bool))
        allowed = causal if allowed is None else allowed & causal
    return None if allowed is None else np.broadcast_to(allowed, shape)


class NumpyBackend(Backend):
    """The reference: every primitive written in NumPy from its formula."""

    name: ClassVar[str] = "numpy"
    dtypes: ClassVar[tuple[str, ...]] = ("float16", "float32", "float64")
    #: Primitives the reference leaves out on purpose, with the reason (a test keeps this list true).
    NOT_PROVIDED: ClassVar[dict[str, str]] = {
        "stop_gradient": "finite-difference gradients cannot express a stop-gradient",
    }

    def environment(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    # -- primitives, family by family in protocol order (PRIMITIVE_FAMILIES) ----------------------

    # attention

    def softmax(self, x: Array, axis: int = -1) -> Array:
        shifted = x - np.max(x, axis=axis, keepdims=True)
        exponentials = np.exp(shifted)
        return exponentials / np.sum(exponentials, axis=axis, keepdims=True)

    def attention_weights(
        self, q: Array, k: Array, mask: Array | None = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        logits = (q @ np.swapaxes(k, -1, -2)) * np.asarray(_scale(scale, q.shape[-1]), dtype=q.dtype)
        allowed = _allowed(mask, is_causal, q.shape[-2], k.shape[-2], logits.shape)
        if allowed is None:
            return self.softmax(logits, axis=-1)
        # A fully masked row has no admissible key: the reference defines its weights as zero.
        logits = np.where(allowed, logits, -np.inf)
        row_max = np.max(logits, axis=-1, keepdims=True)
        row_max = np.where(np.isfinite(row_max), row_max, 0.0)
        exponentials = np.where(allowed, np.exp(logits - row_max), 0.0)
        totals = np.sum(exponentials, axis=-1, keepdims=True)
        return (exponentials / np.where(totals > 0, totals, 1.0)).astype(q.dtype)

    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Array | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        weights = self.attention_weights(q, k, mask=mask, is_causal=is_causal, scale=scale)
        if np.all(np.isfinite(v)):
            return weights @ v
        # A key with weight exactly 0 contributes nothing, even when its value is NaN or inf
        # (IEEE 0 * inf is NaN): only the terms with a non-zero weight are summed.
        with np.errstate(invalid="ignore"):
            terms = weights[..., :, :, None] * v[..., None, :, :]
        return np.sum(np.where(weights[..., :, :, None] != 0, terms, 0.0), axis=-2).astype(weights.dtype)

    def attention_with_bias(self, q: Array, k: Array, v: Array, bias: Array, scale: float | None = None) -> Array:
        logits = (q @ np.swapaxes(k, -1, -2)) * np.asarray(_scale(scale, q.shape[-1]), dtype=q.dtype)
        return self.softmax(logits + np.asarray(bias, dtype=q.dtype), axis=-1) @ v

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
        q_len, k_len = q.shape[-2], k.shape[-2]
        scale_value = np.asarray(_scale(scale, q.shape[-1]), dtype=q.dtype)
        out = np.zeros(q.shape[:-1] + (v.shape[-1],), dtype=q.dtype)
        for q_start in range(0, q_len, block_q):
            q_block = q[..., q_start : q_start + block_q, :]
            rows = q_block.shape[-2]
            running_max = np.full(q_block.shape[:-1] + (1,), -np.inf, dtype=q.dtype)
            running_sum = np.zeros(q_block.shape[:-1] + (1,), dtype=q.dtype)
            accumulator = np.zeros(q_block.shape[:-1] + (v.shape[-1],), dtype=q.dtype)
            for k_start in range(0, k_len, block_k):
                if is_causal and k_start > q_start + rows - 1:
                    break  # every key in this and later blocks lies in the future of every query here
                k_block = k[..., k_start : k_start + block_k, :]
                v_block = v[..., k_start : k_start + block_k, :]
                logits = (q_block @ np.swapaxes(k_block, -1, -2)) * scale_value
                if is_causal:
                    query_index = np.arange(q_start, q_start + rows)[:, None]
                    key_index = np.arange(k_start, k_start + k_block.shape[-2])[None, :]
                    logits = np.where(key_index <= query_index, logits, -np.inf)
                block_max = np.max(logits, axis=-1, keepdims=True)
                new_max = np.maximum(running_max, block_max)
                safe_max = np.where(np.isfinite(new_max), new_max, 0.0)
                # Rescale what was accumulated under the old maximum to the new one.
                correction = np.where(np.isfinite(running_max), np.exp(running_max - safe_max), 0.0)
                probabilities = np.exp(logits - safe_max)
                running_sum = running_sum * correction + np.sum(probabilities, axis=-1, keepdims=True)
                accumulator = accumulator * correction + probabilities @ v_block
                running_max = new_max
            out[..., q_start : q_start + rows, :] = accumulator / np.where(running_sum > 0, running_sum, 1.0)
        return out

    def multi_head_attention(
        self,
        x_q: Array,
        x_kv: Array,
        params: dict[str, Array],
        num_heads: int,
        mask: Array | None = None,
        is_causal: bool = False,
    ) -> Array:
        return _formulas.multi_head_attention(self.attention, x_q, x_kv, params, num_heads, mask, is_causal)

    def linear_attention(self, q: Array, k: Array, v: Array, is_causal: bool = False) -> Array:
        def feature(x: Array) -> Array:  # elu(x) + 1
            return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))

        q_features, k_features = feature(q), feature(k)
        similarity = q_features @ np.swapaxes(k_features, -1, -2)
        if is_causal:
            similarity = np.tril(similarity)
        return (similarity @ v) / np.sum(similarity, axis=-1, keepdims=True)

    # positional

    def sinusoidal_encoding(self, length: int, d_model: int, dtype: str = "float64") -> Array:
        return _formulas.sinusoidal_encoding(np, length, d_model, dtype)

    def rope(self, x: Array, positions: Array, base: float = 10000.0) -> Array:
        return _formulas.rope(np, x, positions, base)

    def alibi_bias(self, num_heads: int, q_len: int, k_len: int, dtype: str = "float64") -> Array:
        return _formulas.alibi_bias(np, num_heads, q_len, k_len, dtype)

    # normalisation and layers

    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        mean = np.mean(x, axis=-1, keepdims=True)
        variance = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(variance + eps) * weight + bias

    def feed_forward(self, x: Array, params: dict[str, Array]) -> Array:
        hidden = np.maximum(x @ params["w_1"].T + params["b_1"], 0.0)
        return hidden @ params["w_2"].T + params["b_2"]

    def patch_embed(self, images: Array, weight: Array, bias: Array) -> Array:
        batch, channels, height, width = images.shape
        embed, patch = weight.shape[0], weight.shape[-1]
        rows, cols = height // patch, width // patch
        patches = images.reshape(batch, channels, rows, patch, cols, patch).transpose(0, 2, 4, 1, 3, 5)
        return patches.reshape(batch, rows * cols, -1) @ weight.reshape(embed, -1).T + bias

    # recurrent

    def rnn_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        return _formulas.rnn_cell(np, x, h, params)

    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        return _formulas.lstm_cell(np, _sigmoid, x, h, c, params)

    def gru_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        return _formulas.gru_cell(np, _sigmoid, x, h, params)

    def peephole_lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        return _formulas.peephole_lstm_cell(np, _sigmoid, x, h, c, params)

    def lstm_sequence(
        self, xs: Array, h0: Array, c0: Array, params: dict[str, Array], lengths: Array | None = None,
        reverse: bool = False,
    ) -> tuple[Array, Array, Array]:
        batch, steps, _ = xs.shape
        lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
        rows = np.arange(batch)
        dtype = np.result_type(xs, h0, c0, params["w_ih"])
        outputs = np.zeros((batch, steps, h0.shape[-1]), dtype=dtype)
        h, c = h0, c0
        for step in range(steps):
            # The position each sequence reads at this step; reversed, each starts at its own last token.
            positions = lengths - 1 - step if reverse else np.full(batch, step)
            active = step < lengths
            h_next, c_next = self.lstm_cell(xs[rows, np.clip(positions, 0, steps - 1)], h, c, params)
            h = np.where(active[:, None], h_next, h)
            c = np.where(active[:, None], c_next, c)
            outputs[rows[active], positions[active]] = h_next[active]
        return outputs, h, c

    # training

    def clip_grad_norm(self, grads: Sequence[Array], max_norm: float) -> list[Array]:
        total = np.sqrt(sum(np.sum(np.square(np.asarray(g, dtype=np.float64))) for g in grads))
        if total <= max_norm:
            return list(grads)
        return [(g * (max_norm / total)).astype(g.dtype) for g in grads]

    def warmup_schedule(self, steps: Array, d_model: int, warmup: int) -> Array:
        steps = np.asarray(steps, dtype=np.float64)
        return d_model**-0.5 * np.minimum(steps**-0.5, steps * float(warmup) ** -1.5)

    def mlm_corrupt(self, tokens: Array, vocab_size: int, mask_id: int, seed: int) -> tuple[Array, Array]:
        rng = np.random.default_rng(seed)
        selected = rng.random(tokens.shape) < 0.15
        action = rng.random(tokens.shape)
        replacements = rng.integers(0, vocab_size, tokens.shape)
        corrupted = np.where(selected & (action < 0.8), mask_id, tokens)
        corrupted = np.where(selected & (action >= 0.8) & (action < 0.9), replacements, corrupted)
        return corrupted.astype(tokens.dtype), selected

    # decoding and the rest

    def beam_search(self, initial: Array, transitions: Array, beam_width: int) -> tuple[Array, Array]:
        return _formulas.beam_search(np, initial, transitions, beam_width)

    def additive_attention_scores(self, query: Array, keys: Array, params: dict[str, Array]) -> Array:
        return _formulas.additive_attention_scores(np, query, keys, params)

    def luong_scores(self, query: Array, keys: Array, weight: Array | None = None) -> Array:
        return _formulas.luong_scores(np, query, keys, weight)

    def gat_attention(self, h: Array, adjacency: Array, w: Array, a: Array, negative_slope: float = 0.2) -> Array:
        projected = h @ w.T
        width = projected.shape[-1]
        scores = (projected @ a[:width])[:, None] + (projected @ a[width:])[None, :]
        scores = np.where(scores > 0, scores, negative_slope * scores)
        allowed = np.asarray(adjacency, dtype=bool)
        scores = np.where(allowed, scores, -np.inf)
        exponentials = np.where(allowed, np.exp(scores - np.max(scores, axis=-1, keepdims=True)), 0.0)
        return exponentials / np.sum(exponentials, axis=-1, keepdims=True)

    # autodiff

    def vjp(self, fn: Callable[..., Any], *primals: Array) -> tuple[Any, Callable[[Any], Sequence[Array]]]:
        primals64 = [np.asarray(p, dtype=np.float64) for p in primals]
        out = fn(*primals64)

        def vjp_fn(cotangent: Any) -> list[Array]:
            def pulled(*args: Array) -> float:
                return float(np.sum(_tree_dot(fn(*args), cotangent)))

            grads = []
            for index, primal in enumerate(primals64):
                grad = np.zeros_like(primal)
                flat = grad.reshape(-1)
                for position in range(primal.size):
                    step = 1e-6 * max(1.0, abs(float(primal.reshape(-1)[position])))
                    plus, minus = [p.copy() for p in primals64], [p.copy() for p in primals64]
                    plus[index].reshape(-1)[position] += step
                    minus[index].reshape(-1)[position] -= step
                    flat[position] = (pulled(*plus) - pulled(*minus)) / (2 * step)
                grads.append(grad)
            return grads

        return out, vjp_fn

    # stop_gradient: not expressible when gradients are finite differences of the forward pass.


def _tree_dot(out: Any, cotangent: Any) -> float:
    if isinstance(out, (tuple, list)):
        return sum(_tree_dot(o, c) for o, c in zip(out, cotangent, strict=True))
    return float(np.sum(np.asarray(out) * np.asarray(cotangent)))
