"""Hugging Face transformers' attention paths as backends: the eager and the SDPA attention
functions that its models call, and the Llama rotary embedding. No model is downloaded: the
functions are called directly, the rotary embedding built from a ``LlamaConfig`` made here.
"""

from __future__ import annotations

import functools
import types
from typing import Any, ClassVar

from nnspec.backends.ecosystem import _convert
from nnspec.backends.torch import TorchBackend

Tensor = Any
PIP = "'nnspec[ecosystem]' (or: pip install transformers)"

# What the attention functions read from the attention module they are handed: no grouped-query
# repetition, no dropout, and (for SDPA) no causal default of its own.
_MODULE = types.SimpleNamespace(num_key_value_groups=1, training=False, is_causal=False)


class _HfBackend(_convert.LibraryAdapter, TorchBackend):
    library: ClassVar[str] = "transformers"
    install: ClassVar[str] = PIP
    in_default_run: ClassVar[bool] = False

    @classmethod
    def targets(cls) -> list[str]:
        return ["cpu", "cuda"]

    def rope(self, x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
        # LlamaRotaryEmbedding gives (cos, sin) for position ids (1, L); apply_rotary_pos_emb
        # rotates with rotate_half, which pairs dimension i with i + D/2.
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

        position_ids = self.torch.as_tensor(positions, device=x.device).to(self.torch.int64)[None]
        # LlamaRotaryEmbedding's own forward, on a stand-in holding what it reads: constructing the
        # module inside a torch.func transform (vjp) fails, as its buffers call requires_grad_.
        cos, sin = LlamaRotaryEmbedding.forward(
            _rotary_state(x.shape[-1], float(base), str(x.device)), x, position_ids
        )
        rotated, _ = apply_rotary_pos_emb(x, x, cos, sin)
        return rotated


class HfEagerBackend(_HfBackend):
    """``eager_attention_forward`` (transformers' Llama, the function most of its models share).

    Conversions: outputs come back ``(B, L, H, Dv)`` and are transposed; the boolean mask
    (``is_causal`` folded in, the function has no causal flag) becomes transformers' additive
    mask, 0 where allowed and ``torch.finfo(dtype).min`` where not, the value its own mask
    builders use. The function's attention weights are ``attention_weights``; an additive bias
    is passed as the additive mask it is.
    """

    name: ClassVar[str] = "hf-eager"
    library: ClassVar[str] = "transformers"
    install: ClassVar[str] = PIP
    divergences: ClassVar[Any] = _convert.DIVERGENCES / "hf-eager.txt"

    def attention_weights(
        self,
        q: Tensor,
        k: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Tensor:
        values = k.new_zeros((*k.shape[:-1], 1))
        return self._eager(q, k, values, self._additive(q, mask, is_causal, k.shape[-2]), scale)[1]

    def attention(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Tensor:
        out, _ = self._eager(q, k, v, self._additive(q, mask, is_causal, k.shape[-2]), scale)
        return _convert.swap_heads_and_length(out)

    def attention_with_bias(
        self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor, scale: float | None = None
    ) -> Tensor:
        bias = _convert.four_dimensional(self.torch.as_tensor(bias, device=q.device).to(q.dtype))
        out, _ = self._eager(q, k, v, bias, scale)
        return _convert.swap_heads_and_length(out)

    def _additive(self, q: Tensor, mask: Tensor | None, is_causal: bool, k_len: int) -> Tensor | None:
        torch = self.torch
        allowed = _convert.allowed_mask(torch, mask, is_causal, q.shape[-2], k_len)
        if allowed is None:
            return None
        return _convert.four_dimensional(
            _convert.additive_mask(torch, allowed, torch.finfo(q.dtype).min, q.dtype)
        )

    def _eager(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None) -> Any:
        from transformers.models.llama.modeling_llama import eager_attention_forward

        scaling = q.shape[-1] ** -0.5 if scale is None else scale
        # a stand-in module: the functions read only the attributes _MODULE sets
        return eager_attention_forward(_MODULE, q, k, v, mask, scaling=scaling, dropout=0.0)  # type: ignore[arg-type]


class HfSdpaBackend(_HfBackend):
    """``sdpa_attention_forward`` (transformers.integrations.sdpa_attention).

    Conversions: outputs come back ``(B, L, H, Dv)`` and are transposed; the boolean mask keeps
    its polarity (True = may attend, as SDPA's). The function drops ``is_causal`` whenever a mask
    is given (transformers' models bake causality into the mask), so a causal call with a mask
    passes their conjunction as the mask, as the models do; without a mask ``is_causal`` is
    passed on.
    """

    name: ClassVar[str] = "hf-sdpa"
    divergences: ClassVar[Any] = _convert.DIVERGENCES / "hf-sdpa.txt"

    def attention(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Tensor:
        if mask is not None:
            allowed = _convert.allowed_mask(self.torch, mask, is_causal, q.shape[-2], k.shape[-2])
            return self._sdpa(q, k, v, _convert.four_dimensional(allowed), False, scale)
        return self._sdpa(q, k, v, None, is_causal, scale)

    def attention_with_bias(
        self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor, scale: float | None = None
    ) -> Tensor:
        bias = _convert.four_dimensional(self.torch.as_tensor(bias, device=q.device).to(q.dtype))
        return self._sdpa(q, k, v, bias, False, scale)

    def _sdpa(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool, scale: float | None
    ) -> Tensor:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        out, _ = sdpa_attention_forward(
            _MODULE,  # type: ignore[arg-type]
            q,
            k,
            v,
            mask,
            dropout=0.0,
            scaling=scale,
            is_causal=is_causal,
        )
        return _convert.swap_heads_and_length(out)


@functools.lru_cache(maxsize=32)
def _rotary_state(head_dim: int, base: float, device: str) -> Any:
    """What ``LlamaRotaryEmbedding.forward`` reads, for one head width and base (a default-type RoPE):
    the inverse frequencies from transformers' own ``compute_default_rope_parameters``."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = LlamaConfig(
        hidden_size=head_dim,
        num_attention_heads=1,
        head_dim=head_dim,
        rope_parameters={"rope_type": "default", "rope_theta": base},
    )
    inv_freq, attention_scaling = LlamaRotaryEmbedding.compute_default_rope_parameters(config)
    return types.SimpleNamespace(
        config=config, rope_type="default", inv_freq=inv_freq.to(device), attention_scaling=attention_scaling
    )
