"""torch's own attention modules as backends: ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``
and FlexAttention (``torch.nn.attention.flex_attention``).

Each offers the one target ``cpu`` (or ``cuda``): the SDPA-pinning variants of the torch backend
test SDPA, which these modules reach only through their own code paths.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, ClassVar

from nnspec.backends.base import InputNotSupported
from nnspec.backends.ecosystem import _convert
from nnspec.backends.torch import TorchBackend

Tensor = Any


class _TorchModuleBackend(TorchBackend):
    """The torch backend without its SDPA variants; parent of the adapters of torch modules."""

    in_default_run: ClassVar[bool] = False

    @classmethod
    def targets(cls) -> list[str]:
        return ["cpu", "cuda"]

    def _allowed_heads(
        self, mask: Tensor | None, is_causal: bool, shape: tuple[int, int, int, int]
    ) -> Tensor | None:
        """The "may attend" mask expanded to ``(B, H, L, S)``, or None."""
        allowed = _convert.allowed_mask(self.torch, mask, is_causal, shape[2], shape[3])
        return None if allowed is None else _convert.four_dimensional(allowed).expand(shape)


class TorchMultiheadAttentionBackend(_TorchModuleBackend):
    """``torch.nn.MultiheadAttention`` (batch first) as the protocol's ``multi_head_attention``.

    Conversions: the four projections are packed into ``in_proj_weight`` (rows q, k, v); the
    boolean mask is inverted (MultiheadAttention's True means "may *not* attend") and expanded
    to ``(B * H, L, S)``; ``is_causal`` is folded into that mask (the module's own ``is_causal``
    is only a hint about ``attn_mask``). The module runs in eval mode.
    """

    name: ClassVar[str] = "torch-mha"
    divergences: ClassVar[Any] = _convert.DIVERGENCES / "torch-mha.txt"

    def multi_head_attention(
        self,
        x_q: Tensor,
        x_kv: Tensor,
        params: dict[str, Tensor],
        num_heads: int,
        mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        torch = self.torch
        batch, q_len, width = x_q.shape
        allowed = self._allowed_heads(mask, is_causal, (batch, num_heads, q_len, x_kv.shape[1]))
        attn_mask = None
        if allowed is not None:
            attn_mask = _convert.disallowed_mask(allowed).reshape(batch * num_heads, q_len, x_kv.shape[1])
        weights = {
            "in_proj_weight": torch.cat((params["w_q"], params["w_k"], params["w_v"])),
            "in_proj_bias": torch.cat((params["b_q"], params["b_k"], params["b_v"])),
            "out_proj.weight": params["w_o"],
            "out_proj.bias": params["b_o"],
        }
        module = _multihead_module(width, num_heads)
        out, _ = torch.func.functional_call(
            module, weights, (x_q, x_kv, x_kv), {"attn_mask": attn_mask, "need_weights": False}
        )
        return out


class TorchEncoderLayerBackend(_TorchModuleBackend):
    """``torch.nn.TransformerEncoderLayer``'s blocks (post-norm, ReLU, batch first, eval mode).

    The protocol has no encoder-layer primitive, so the layer's own blocks stand for the
    primitives they compute: its self-attention block for ``multi_head_attention`` (for
    cross-attention inputs, which the layer never computes, the layer's attention module
    ``self_attn`` called on them), its feed-forward block for ``feed_forward`` and its first norm
    for ``layer_norm``. tests/test_ecosystem.py checks that the whole layer, fast
    path included, equals the composition of these blocks.
    """

    name: ClassVar[str] = "torch-encoder-layer"
    divergences: ClassVar[Any] = _convert.DIVERGENCES / "torch-encoder-layer.txt"

    def layer(self, params: dict[str, Tensor], num_heads: int, eps: float = 1e-5) -> Any:
        """A TransformerEncoderLayer holding ``params`` (keys of :meth:`layer_parameters`), in eval mode."""
        torch = self.torch
        width, hidden = params["w_q"].shape[0], params["w_1"].shape[0]
        layer = torch.nn.TransformerEncoderLayer(
            width,
            num_heads,
            hidden,
            dropout=0.0,
            batch_first=True,
            layer_norm_eps=eps,
            device=params["w_q"].device,
            dtype=params["w_q"].dtype,
        ).eval()
        with torch.no_grad():
            for name, value in self.layer_parameters(params).items():
                layer.get_parameter(name).copy_(value)
        return layer

    def layer_parameters(self, params: dict[str, Tensor]) -> dict[str, Tensor]:
        """The protocol's attention (``w_q .. b_o``), FFN (``w_1 .. b_2``) and norm weights by layer name."""
        torch = self.torch
        found = {}
        if "w_q" in params:
            found["self_attn.in_proj_weight"] = torch.cat((params["w_q"], params["w_k"], params["w_v"]))
            found["self_attn.in_proj_bias"] = torch.cat((params["b_q"], params["b_k"], params["b_v"]))
            found["self_attn.out_proj.weight"], found["self_attn.out_proj.bias"] = (
                params["w_o"],
                params["b_o"],
            )
        if "w_1" in params:
            found["linear1.weight"], found["linear1.bias"] = params["w_1"], params["b_1"]
            found["linear2.weight"], found["linear2.bias"] = params["w_2"], params["b_2"]
        for norm in ("norm1", "norm2"):
            if f"{norm}_weight" in params:
                found[f"{norm}.weight"], found[f"{norm}.bias"] = (
                    params[f"{norm}_weight"],
                    params[f"{norm}_bias"],
                )
        return found

    def multi_head_attention(
        self,
        x_q: Tensor,
        x_kv: Tensor,
        params: dict[str, Tensor],
        num_heads: int,
        mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        torch = self.torch
        batch, q_len, width = x_q.shape
        k_len = x_kv.shape[1]
        allowed = self._allowed_heads(mask, is_causal, (batch, num_heads, q_len, k_len))
        attn_mask = None
        if allowed is not None:
            attn_mask = _convert.disallowed_mask(allowed).reshape(batch * num_heads, q_len, k_len)
        module = _encoder_blocks(width, num_heads, 1, 1e-5)
        weights = _prefixed(self.layer_parameters(params))
        if x_q.shape == x_kv.shape and torch.equal(x_q, x_kv):
            return torch.func.functional_call(module, weights, ("attention", x_q, attn_mask))
        return torch.func.functional_call(module, weights, ("cross_attention", x_q, attn_mask, x_kv))

    def feed_forward(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        width, hidden = params["w_1"].shape[1], params["w_1"].shape[0]
        module = _encoder_blocks(width, 1, hidden, 1e-5)
        return self.torch.func.functional_call(
            module, _prefixed(self.layer_parameters(params)), ("feed_forward", x)
        )

    def layer_norm(self, x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
        module = _encoder_blocks(x.shape[-1], 1, 1, eps)
        weights = {"norm1.weight": weight, "norm1.bias": bias}
        return self.torch.func.functional_call(module, _prefixed(weights), ("norm", x))


class FlexAttentionBackend(_TorchModuleBackend):
    """FlexAttention (``torch.nn.attention.flex_attention``), called eagerly.

    Conversions: the boolean mask (``is_causal`` folded in) becomes a ``score_mod`` that sends
    forbidden logits to ``-inf``; an additive bias becomes a ``score_mod`` adding it. Called
    without ``torch.compile``, FlexAttention runs its unfused implementation (it says so in a
    warning, silenced here); compiling it works on this CPU but takes about 90 s per input
    shape, too slow for property runs, so the compiled kernel is not offered as a target.
    FlexAttention has no backward on the CPU: there, the gradient properties that reach
    attention are not applicable (their examples are refused, never passed).
    """

    name: ClassVar[str] = "torch-flex"
    divergences: ClassVar[Any] = _convert.DIVERGENCES / "torch-flex.txt"

    @classmethod
    def available(cls, device: str = "cpu") -> tuple[bool, str]:
        ok, reason = super().available(device)
        if not ok:
            return ok, reason
        try:
            from torch.nn.attention import flex_attention  # noqa: F401
        except ImportError as error:
            return False, f"this torch has no FlexAttention ({error}); it needs torch >= 2.5"
        return True, ""

    def attention(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Tensor:
        allowed = self._allowed_heads(mask, is_causal, (q.shape[0], q.shape[1], q.shape[2], k.shape[2]))
        if allowed is None:
            return self._flex(q, k, v, None, scale)
        torch = self.torch

        def score_mod(score: Tensor, b: Tensor, h: Tensor, q_index: Tensor, kv_index: Tensor) -> Tensor:
            return torch.where(allowed[b, h, q_index, kv_index], score, -math.inf)

        return self._flex(q, k, v, score_mod, scale)

    def attention_with_bias(
        self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor, scale: float | None = None
    ) -> Tensor:
        shape = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        bias = _convert.four_dimensional(self.torch.as_tensor(bias, device=q.device).to(q.dtype)).expand(
            shape
        )

        def score_mod(score: Tensor, b: Tensor, h: Tensor, q_index: Tensor, kv_index: Tensor) -> Tensor:
            return score + bias[b, h, q_index, kv_index]

        return self._flex(q, k, v, score_mod, scale)

    def _flex(self, q: Tensor, k: Tensor, v: Tensor, score_mod: Any, scale: float | None) -> Tensor:
        from torch.nn.attention.flex_attention import flex_attention

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            try:
                return flex_attention(q, k, v, score_mod=score_mod, scale=scale)
            except NotImplementedError as error:
                # torch 2.13: "FlexAttention does not support backward on CPU": gradients are not applicable.
                raise InputNotSupported(
                    f"FlexAttention refuses these inputs on {self.device}: {error}"
                ) from error


def _prefixed(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"layer.{name}": value for name, value in weights.items()}


@functools.lru_cache(maxsize=64)
def _encoder_blocks(width: int, num_heads: int, hidden: int, eps: float) -> Any:
    """A shape-only TransformerEncoderLayer (meta device, eval mode) whose blocks are called one at a time.

    ``forward(block, x, attn_mask=None, memory=None)`` runs the layer's self-attention block
    (``"attention"``), its attention module on ``x`` and ``memory`` (``"cross_attention"``), its
    feed-forward block (``"feed_forward"``) or its first norm (``"norm"``); the parameters are
    replaced on every call through ``torch.func.functional_call``.
    """
    import torch

    class EncoderBlocks(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.TransformerEncoderLayer(
                width, num_heads, hidden, dropout=0.0, batch_first=True, layer_norm_eps=eps, device="meta"
            ).eval()

        def forward(
            self, block: str, x: Tensor, attn_mask: Tensor | None = None, memory: Tensor | None = None
        ) -> Tensor:
            if block == "attention":
                return self.layer._sa_block(x, attn_mask, None)
            if block == "cross_attention":
                return self.layer.self_attn(x, memory, memory, attn_mask=attn_mask, need_weights=False)[0]
            if block == "feed_forward":
                return self.layer._ff_block(x)
            return self.layer.norm1(x)

    return EncoderBlocks().eval()


@functools.lru_cache(maxsize=64)
def _multihead_module(width: int, num_heads: int) -> Any:
    """A shape-only batch-first ``nn.MultiheadAttention`` on the meta device, in eval mode."""
    import torch

    return torch.nn.MultiheadAttention(width, num_heads, batch_first=True, device="meta").eval()
