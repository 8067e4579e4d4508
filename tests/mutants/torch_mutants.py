"""Deliberately broken torch backends, each named after the bug it plants.

Every mutant subclasses :class:`nnspec.backends.torch.TorchBackend` and overrides one primitive
with a bug that real kernels have shipped with. The suite must reject each of them; the
property ids in ``REJECTED_BY`` say which properties are expected to do it (tests/test_mutants.py).
torch is imported inside methods only, so importing this module is cheap and framework-free.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from nnspec.backends.torch import TorchBackend

FRAMEWORK = "torch"  # tests/test_mutants.py leaves this module out when torch is not installed

Tensor = Any


class DetachedCellStateLSTM(TorchBackend):
    """The incoming cell state is detached: forward exact, ``dc'/dc`` is zero instead of ``f``."""

    name: ClassVar[str] = "torch-detached-cell-state"

    def lstm_cell(self, x: Tensor, h: Tensor, c: Tensor, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return super().lstm_cell(x, h, c.detach(), params)


class CausalMaskOffByOne(TorchBackend):
    """``is_causal`` builds its own mask with ``tril(diagonal=1)``: each query sees one future key."""

    name: ClassVar[str] = "torch-causal-off-by-one"

    def attention(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Tensor:
        if is_causal:
            torch = self.torch
            leaky = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril(diagonal=1)
            mask = leaky if mask is None else mask.to(torch.bool) & leaky
        return super().attention(q, k, v, mask=mask, is_causal=False, scale=scale)


class UnscaledAttention(TorchBackend):
    """The default scale is 1 instead of ``1/sqrt(D)``: logits too sharp by a factor ``sqrt(D)``."""

    name: ClassVar[str] = "torch-unscaled-attention"

    def attention(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Tensor:
        return super().attention(q, k, v, mask=mask, is_causal=is_causal, scale=1.0 if scale is None else scale)


class InvertedMaskPolarity(TorchBackend):
    """A boolean mask read as "True = masked out" (the polarity of ``nn.MultiheadAttention``)."""

    name: ClassVar[str] = "torch-inverted-mask"

    def attention(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Tensor:
        inverted = None if mask is None else ~mask.to(self.torch.bool)
        return super().attention(q, k, v, mask=inverted, is_causal=is_causal, scale=scale)


class LSTMGatesInOnnxOrder(TorchBackend):
    """Protocol weights (i, f, g, o) handed to torch as if they were ONNX's order (i, o, f, g)."""

    name: ClassVar[str] = "torch-lstm-onnx-gate-order"

    def lstm_cell(self, x: Tensor, h: Tensor, c: Tensor, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        def reorder(weight: Tensor) -> Tensor:
            i, o, f, g = weight.chunk(4, dim=0)  # misread: the second block is taken as o, ...
            return self.torch.cat((i, f, g, o), dim=0)

        return super().lstm_cell(x, h, c, {name: reorder(value) for name, value in params.items()})


class SoftmaxWithoutMaxShift(TorchBackend):
    """``exp(x) / sum(exp(x))`` without subtracting the maximum: overflows to NaN for large logits."""

    name: ClassVar[str] = "torch-softmax-no-shift"

    def softmax(self, x: Tensor, axis: int = -1) -> Tensor:
        exponentials = self.torch.exp(x)
        return exponentials / exponentials.sum(dim=axis, keepdim=True)


class TiledAttentionWithoutRescale(TorchBackend):
    """Online softmax that never rescales earlier blocks when the running maximum grows."""

    name: ClassVar[str] = "torch-tiled-no-rescale"

    def tiled_attention(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        block_q: int,
        block_k: int,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Tensor:
        torch = self.torch
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        q_len, k_len = q.shape[-2], k.shape[-2]
        running_max = q.new_full((*q.shape[:-1], 1), -math.inf)
        running_sum = q.new_zeros((*q.shape[:-1], 1))
        accumulator = q.new_zeros((*q.shape[:-1], v.shape[-1]))
        query_index = torch.arange(q_len, device=q.device)[:, None]
        for k_start in range(0, k_len, block_k):
            k_block, v_block = k[..., k_start : k_start + block_k, :], v[..., k_start : k_start + block_k, :]
            logits = (q @ k_block.transpose(-1, -2)) * scale
            if is_causal:
                key_index = torch.arange(k_start, k_start + k_block.shape[-2], device=q.device)[None, :]
                logits = logits.masked_fill(key_index > query_index, -math.inf)
            running_max = torch.maximum(running_max, logits.amax(dim=-1, keepdim=True))
            probabilities = torch.exp(logits - running_max)
            running_sum = running_sum + probabilities.sum(dim=-1, keepdim=True)  # bug: no correction
            accumulator = accumulator + probabilities @ v_block
        return accumulator / running_sum


# -- gradient-only bugs: the forward pass is exact, the backward is not -------------------------


class AttentionBackwardValuesOnly(TorchBackend):
    """Attention's backward returns dV only: queries and keys are detached, the forward is exact."""

    name: ClassVar[str] = "torch-attention-backward-dv-only"

    def attention(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, is_causal: bool = False,
                  scale: float | None = None) -> Tensor:
        return super().attention(q.detach(), k.detach(), v, mask=mask, is_causal=is_causal, scale=scale)


class LayerNormDetachedVariance(TorchBackend):
    """Layer norm whose variance is detached from the graph (a constant in the backward)."""

    name: ClassVar[str] = "torch-layer-norm-detached-variance"

    def layer_norm(self, x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        variance = ((x - mean) ** 2).mean(dim=-1, keepdim=True).detach()
        return (x - mean) / self.torch.sqrt(variance + eps) * weight + bias


class DetachedHiddenStateLSTM(TorchBackend):
    """The incoming hidden state is detached: forward exact, no gradient reaches h or w_hh through it."""

    name: ClassVar[str] = "torch-detached-hidden-state"

    def lstm_cell(self, x: Tensor, h: Tensor, c: Tensor, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return super().lstm_cell(x, h.detach(), c, params)


class GruUpdateGateDetached(TorchBackend):
    """The GRU's interpolation ``z * h`` treats h as a constant in the backward."""

    name: ClassVar[str] = "torch-gru-detached-carry"

    def gru_cell(self, x: Tensor, h: Tensor, params: dict[str, Tensor]) -> Tensor:
        return super().gru_cell(x, h.detach(), params)


class SoftmaxDetachedNormaliser(TorchBackend):
    """``exp(x) / sum(exp(x))`` with the sum detached: forward exact, the backward misses the
    ``-p p^T`` part of the softmax Jacobian."""

    name: ClassVar[str] = "torch-softmax-detached-sum"

    def softmax(self, x: Tensor, axis: int = -1) -> Tensor:
        exponentials = self.torch.exp(x - x.amax(dim=axis, keepdim=True).detach())
        return exponentials / exponentials.sum(dim=axis, keepdim=True).detach()


class AttentionBiasDetached(TorchBackend):
    """The additive bias enters attention as a constant: no gradient reaches a learned bias."""

    name: ClassVar[str] = "torch-attention-bias-detached"

    def attention_with_bias(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor, scale: float | None = None) -> Tensor:
        return super().attention_with_bias(q, k, v, bias.detach(), scale=scale)


class FeedForwardFirstLayerFrozen(TorchBackend):
    """The FFN's first weight matrix is detached (a frozen layer left in the graph by mistake)."""

    name: ClassVar[str] = "torch-ffn-first-layer-detached"

    def feed_forward(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        return super().feed_forward(x, {**params, "w_1": params["w_1"].detach()})


class RopeDetachedRotatedHalf(TorchBackend):
    """RoPE whose ``sin`` term is computed from a detached copy of x: forward exact, backward a
    scaling by cos instead of a rotation."""

    name: ClassVar[str] = "torch-rope-detached-sin-term"

    def rope(self, x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
        exact = super().rope(x, positions, base)
        torch = self.torch
        dim = x.shape[-1]
        frequencies = base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=x.device) / dim)
        angles = positions.to(torch.float64)[:, None] * frequencies[None, :]
        cos = torch.repeat_interleave(torch.cos(angles), 2, dim=-1).to(x.dtype)
        return x * cos + (exact - x * cos).detach()


class RnnCellDetachedHidden(TorchBackend):
    """The Elman cell's incoming hidden state is detached: BPTT through it sees no gradient."""

    name: ClassVar[str] = "torch-rnn-detached-hidden"

    def rnn_cell(self, x: Tensor, h: Tensor, params: dict[str, Tensor]) -> Tensor:
        return super().rnn_cell(x, h.detach(), params)


class StraightThroughTanhRNN(TorchBackend):
    """The Elman cell's tanh is differentiated as the identity (a straight-through backward):
    exact forward, right gradient only near 0 where tanh' is about 1."""

    name: ClassVar[str] = "torch-rnn-straight-through-tanh"

    def rnn_cell(self, x: Tensor, h: Tensor, params: dict[str, Tensor]) -> Tensor:
        linear = self.functional.linear
        pre = linear(x, params["w_ih"]) + linear(h, params["w_hh"]) + params["b"]
        return pre + (self.torch.tanh(pre) - pre).detach()


#: Each mutant and the property ids (glob patterns) expected to reject it, as observed in a quick run.
REJECTED_BY: dict[type[TorchBackend], tuple[str, ...]] = {
    DetachedCellStateLSTM: ("lstm.gradient.cell_state_jacobian_is_forget_gate", "lstm.gradient.long_horizon_retention",
                            "gradients.lstm_cell.matches_reference"),
    AttentionBackwardValuesOnly: ("gradients.attention.*", "gradients.multi_head_attention.matches_reference"),
    LayerNormDetachedVariance: ("gradients.layer_norm.matches_reference",),
    DetachedHiddenStateLSTM: ("gradients.lstm_cell.matches_reference",),
    GruUpdateGateDetached: ("gradients.gru_cell.matches_reference",),
    SoftmaxDetachedNormaliser: ("gradients.softmax.matches_reference",),
    AttentionBiasDetached: ("gradients.attention_with_bias.matches_reference",),
    FeedForwardFirstLayerFrozen: ("gradients.feed_forward.matches_reference",),
    RopeDetachedRotatedHalf: ("gradients.rope.matches_reference",),
    RnnCellDetachedHidden: ("gradients.rnn_cell.matches_reference",),
    StraightThroughTanhRNN: ("rnn.gradient.explodes", "gradients.rnn_cell.matches_reference"),
    CausalMaskOffByOne: ("masking.causal.future_independence", "masking.causal.first_position_self_only"),
    UnscaledAttention: ("attention.sdpa.matches_formula",),
    InvertedMaskPolarity: ("attention.sdpa.matches_formula",),
    LSTMGatesInOnnxOrder: ("lstm.cell.matches_equations",),
    SoftmaxWithoutMaxShift: ("softmax.shift.invariance",),
    TiledAttentionWithoutRescale: ("flash.tiled.equals_dense", "flash.tiled.causal_equals_dense"),
}
