"""flax.linen as a backend: ``dot_product_attention`` and its weights, ``MultiHeadDotProductAttention``,
``LayerNorm`` and the recurrent cells ``SimpleCell``, ``LSTMCell`` and ``GRUCell``.

flax runs on JAX, so the adapter subclasses the JAX backend (arrays cross as JAX arrays, gradients
by ``jax.vjp``) and offers its ``cpu`` and ``gpu`` targets without the attention-kernel variants.
Modules are applied with parameters converted from the protocol's: a dense ``(out, in)`` weight
is flax's ``(in, out)`` kernel, head projections are ``(M, H, D)`` kernels.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from nnspec.backends.ecosystem import _convert
from nnspec.backends.jax import JaxBackend, jit_method

Array = Any
PIP = "'nnspec[ecosystem]' (or: pip install flax)"


class FlaxBackend(_convert.LibraryAdapter, JaxBackend):
    """flax.linen's attention, normalisation and recurrent cells.

    Conversions: attention arrays go to flax's ``(B, L, H, D)`` layout and back; the boolean
    mask keeps its polarity (flax's True = may attend) with ``is_causal`` folded in (flax has no
    causal flag); flax has no ``scale`` argument (it divides the queries by ``sqrt(D)``), so an
    explicit scale multiplies the queries by ``scale * sqrt(D)`` first. Cells take the
    protocol's stacked gate blocks split per gate; flax gives the input projections of LSTM the
    bias, of GRU the r and z biases summed (b_ir + b_hr), and keeps b_hn inside the reset product.
    """

    name: ClassVar[str] = "flax"
    library: ClassVar[str] = "flax"
    install: ClassVar[str] = PIP
    in_default_run: ClassVar[bool] = False
    divergences: ClassVar[Any] = _convert.DIVERGENCES / "flax.txt"

    @classmethod
    def targets(cls) -> list[str]:
        return ["cpu", "gpu"]

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        super().__init__(device, variant)
        import flax.linen

        self.linen = flax.linen

    # -- primitives, in protocol order ----------------------------------------------------------

    @jit_method("is_causal", "scale")
    def attention_weights(
        self,
        q: Array,
        k: Array,
        mask: Array | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        allowed = _convert.allowed_mask(self.jax.numpy, mask, is_causal, q.shape[-2], k.shape[-2])
        q, k = (_convert.swap_heads_and_length(x) for x in (self._scaled(q, scale), k))
        return self.linen.dot_product_attention_weights(q, k, mask=allowed)

    @jit_method("is_causal", "scale")
    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Array | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        allowed = _convert.allowed_mask(self.jax.numpy, mask, is_causal, q.shape[-2], k.shape[-2])
        q, k, v = (_convert.swap_heads_and_length(x) for x in (self._scaled(q, scale), k, v))
        return _convert.swap_heads_and_length(self.linen.dot_product_attention(q, k, v, mask=allowed))

    @jit_method("num_heads", "is_causal")
    def multi_head_attention(
        self,
        x_q: Array,
        x_kv: Array,
        params: dict[str, Array],
        num_heads: int,
        mask: Array | None = None,
        is_causal: bool = False,
    ) -> Array:
        width = x_q.shape[-1]
        head_dim = width // num_heads
        allowed = _convert.allowed_mask(self.jax.numpy, mask, is_causal, x_q.shape[1], x_kv.shape[1])
        variables = {
            name: {
                "kernel": _convert.dense_kernel(params[f"w_{short}"]).reshape(width, num_heads, head_dim),
                "bias": params[f"b_{short}"].reshape(num_heads, head_dim),
            }
            for name, short in (("query", "q"), ("key", "k"), ("value", "v"))
        }
        variables["out"] = {
            "kernel": _convert.dense_kernel(params["w_o"]).reshape(num_heads, head_dim, width),
            "bias": params["b_o"],
        }
        module = self.linen.MultiHeadDotProductAttention(
            num_heads=num_heads,
            qkv_features=width,
            out_features=width,
            param_dtype=x_q.dtype,
            deterministic=True,
        )
        return module.apply({"params": variables}, x_q, x_kv, mask=allowed)

    @jit_method("eps")
    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        module = self.linen.LayerNorm(epsilon=eps, param_dtype=x.dtype)
        return module.apply({"params": {"scale": weight, "bias": bias}}, x)

    @jit_method()
    def rnn_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        # SimpleCell: h' = tanh(dense_i(x) + dense_h(h)); the input projection carries the bias.
        variables = {
            "i": {"kernel": _convert.dense_kernel(params["w_ih"]), "bias": params["b"]},
            "h": {"kernel": _convert.dense_kernel(params["w_hh"])},
        }
        module = self.linen.SimpleCell(features=h.shape[-1], param_dtype=x.dtype)
        new_h, _ = module.apply({"params": variables}, h, x)
        return new_h

    @jit_method()
    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        # LSTMCell's gates are ii/hi, if/hf, ig/hg, io/ho: the protocol's i, f, g, o blocks, one
        # dense layer each; the recurrent projections carry the bias.
        jnp = self.jax.numpy
        input_blocks = jnp.split(params["w_ih"], 4)
        hidden_blocks = jnp.split(params["w_hh"], 4)
        bias_blocks = jnp.split(params["b"], 4)
        variables = {}
        for gate, w_i, w_h, b in zip("ifgo", input_blocks, hidden_blocks, bias_blocks, strict=True):
            variables[f"i{gate}"] = {"kernel": _convert.dense_kernel(w_i)}
            variables[f"h{gate}"] = {"kernel": _convert.dense_kernel(w_h), "bias": b}
        module = self.linen.LSTMCell(features=h.shape[-1], param_dtype=x.dtype)
        (new_c, new_h), _ = module.apply({"params": variables}, (c, h), x)
        return new_h, new_c

    @jit_method()
    def gru_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        # GRUCell: r and z sum one bias each (b_i + b_h: the sums are what the cell computes),
        # and b_hn stays inside the reset product, as the protocol's cell has it.
        jnp = self.jax.numpy
        w_i, w_h = jnp.split(params["w_ih"], 3), jnp.split(params["w_hh"], 3)
        b_i, b_h = jnp.split(params["b_ih"], 3), jnp.split(params["b_hh"], 3)
        variables = {
            "ir": {"kernel": _convert.dense_kernel(w_i[0]), "bias": b_i[0] + b_h[0]},
            "iz": {"kernel": _convert.dense_kernel(w_i[1]), "bias": b_i[1] + b_h[1]},
            "in": {"kernel": _convert.dense_kernel(w_i[2]), "bias": b_i[2]},
            "hr": {"kernel": _convert.dense_kernel(w_h[0])},
            "hz": {"kernel": _convert.dense_kernel(w_h[1])},
            "hn": {"kernel": _convert.dense_kernel(w_h[2]), "bias": b_h[2]},
        }
        module = self.linen.GRUCell(features=h.shape[-1], param_dtype=x.dtype)
        new_h, _ = module.apply({"params": variables}, h, x)
        return new_h

    @jit_method("scale")
    def attention_with_bias(
        self, q: Array, k: Array, v: Array, bias: Array, scale: float | None = None
    ) -> Array:
        q, k, v = (_convert.swap_heads_and_length(x) for x in (self._scaled(q, scale), k, v))
        bias = _convert.four_dimensional(self.jax.numpy.asarray(bias, dtype=q.dtype))
        return _convert.swap_heads_and_length(self.linen.dot_product_attention(q, k, v, bias=bias))

    def _scaled(self, q: Array, scale: float | None) -> Array:
        """Queries pre-multiplied so that flax's fixed ``1 / sqrt(D)`` gives ``scale`` overall."""
        if scale is None:
            return q
        return q * self.jax.numpy.asarray(scale * math.sqrt(q.shape[-1]), dtype=q.dtype)
