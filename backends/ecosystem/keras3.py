"""Keras 3 as a backend: ``keras.ops.softmax`` and ``keras.ops.dot_product_attention``, and the
layers ``LayerNormalization``, ``SimpleRNNCell``, ``LSTMCell`` and ``GRUCell``, on the JAX
(``keras-jax``) or the torch (``keras-torch``) backend of keras.

Keras reads its backend once, from the ``KERAS_BACKEND`` environment variable, when it is first
imported. The constructor sets that variable (for this process) to the adapter's backend if keras
is not imported yet; when keras was already imported with another backend, the adapter is
unavailable and says so (run each keras adapter in its own ``nnspec run``); keras is imported at
the adapter's first primitive call, not when it is constructed or listed. Layers are called
through ``Layer.stateless_call`` with the protocol's parameters converted to keras's weights.
"""

from __future__ import annotations

import os
import sys
from typing import Any, ClassVar

from nnspec.backends.base import Unavailable
from nnspec.backends.ecosystem import _convert
from nnspec.backends.jax import JaxBackend
from nnspec.backends.torch import TorchBackend

Array = Any
PIP = "'nnspec[ecosystem]' (or: pip install keras)"


def _keras_reason(backend: str) -> str:
    """Why keras cannot run on ``backend`` in this process, or ``""``."""
    reason = _convert.require("keras", PIP)
    if reason:
        return reason
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != backend:
            return (
                f"keras is already imported in this process with the {running!r} backend and cannot switch "
                f"to {backend!r}; run this adapter in a process of its own"
            )
    elif os.environ.get("KERAS_BACKEND", backend) != backend:
        return (
            f"KERAS_BACKEND={os.environ['KERAS_BACKEND']} is set; this adapter runs keras on {backend!r} "
            f"(unset it, or set KERAS_BACKEND={backend})"
        )
    return ""


class _KerasPrimitives:
    """The keras primitives, shared by the JAX and torch flavours (``self.keras`` is the keras module)."""

    keras_backend: ClassVar[str]

    def _start_keras(self) -> None:
        """Check that keras can run on this adapter's backend; keras itself is imported on first use.

        Importing keras here would fix its backend for the whole process as soon as the adapter is
        listed (``nnspec backends`` constructs every available backend in turn).
        """
        reason = _keras_reason(self.keras_backend)
        if reason:
            raise Unavailable(reason)
        self._layers: dict[tuple[Any, ...], Any] = {}

    @property
    def keras(self) -> Any:
        """The keras module, imported with ``KERAS_BACKEND`` set to this adapter's backend."""
        if "keras" not in sys.modules:
            os.environ["KERAS_BACKEND"] = self.keras_backend
        reason = _keras_reason(self.keras_backend)
        if reason:
            raise Unavailable(reason)
        import keras

        return keras

    def environment(self) -> dict[str, str]:
        return super().environment() | {  # type: ignore[misc]
            "keras": self.keras.__version__,
            "keras_backend": self.keras.backend.backend(),
        }

    # -- primitives, in protocol order ----------------------------------------------------------

    def softmax(self, x: Array, axis: int = -1) -> Array:
        return self.keras.ops.softmax(x, axis=axis)

    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Array | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        # keras takes (B, L, H, D) and a boolean mask of the protocol's polarity; mask and
        # is_causal are passed on as they are.
        q, k, v = (_convert.swap_heads_and_length(x) for x in (q, k, v))
        if mask is not None:
            mask = _convert.four_dimensional(self.keras.ops.cast(mask, "bool"))
        out = self.keras.ops.dot_product_attention(q, k, v, mask=mask, scale=scale, is_causal=is_causal)
        return _convert.swap_heads_and_length(out)

    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        layer = self._layer("LayerNormalization", x.shape[-1:], x.dtype, epsilon=eps)
        return self._call(layer, [weight, bias], x)

    def rnn_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        layer = self._layer("SimpleRNNCell", x.shape[-1:], x.dtype, units=h.shape[-1])
        weights = [_convert.dense_kernel(params["w_ih"]), _convert.dense_kernel(params["w_hh"]), params["b"]]
        out, _ = self._call(layer, weights, x, [h])
        return out

    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        # keras's LSTM gate blocks are i, f, c, o: the protocol's i, f, g, o, no permutation.
        layer = self._layer("LSTMCell", x.shape[-1:], x.dtype, units=h.shape[-1])
        weights = [_convert.dense_kernel(params["w_ih"]), _convert.dense_kernel(params["w_hh"]), params["b"]]
        _, (new_h, new_c) = self._call(layer, weights, x, [h, c])
        return new_h, new_c

    def gru_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        # keras's GRU gate blocks are z, r, h (the protocol's r, z, n permuted); with
        # reset_after=True (its default) the bias is (2, 3N), input bias then recurrent bias,
        # and the recurrent candidate bias sits inside the reset product, as the protocol's.
        ops = self.keras.ops
        layer = self._layer("GRUCell", x.shape[-1:], x.dtype, units=h.shape[-1], reset_after=True)

        def keras_order(weight: Array) -> Array:
            return _convert.permute_gates(ops, weight, "rzn", "zrn", axis=-1)

        weights = [
            keras_order(_convert.dense_kernel(params["w_ih"])),
            keras_order(_convert.dense_kernel(params["w_hh"])),
            ops.stack([keras_order(params["b_ih"]), keras_order(params["b_hh"])]),
        ]
        out, _ = self._call(layer, weights, x, [h])
        return out

    def attention_with_bias(
        self, q: Array, k: Array, v: Array, bias: Array, scale: float | None = None
    ) -> Array:
        q, k, v = (_convert.swap_heads_and_length(x) for x in (q, k, v))
        bias = _convert.four_dimensional(self.keras.ops.cast(bias, q.dtype))
        out = self.keras.ops.dot_product_attention(q, k, v, bias=bias, scale=scale)
        return _convert.swap_heads_and_length(out)

    # -- layers ------------------------------------------------------------------------------------

    def _layer(self, kind: str, input_shape: tuple[int, ...], dtype: Any, **config: Any) -> Any:
        """A built keras layer of ``kind`` for inputs ``(None, *input_shape)``, one per configuration."""
        dtype_name = str(dtype).removeprefix("torch.")
        key = (kind, tuple(input_shape), dtype_name, tuple(sorted(config.items())))
        if key not in self._layers:
            layer = getattr(self.keras.layers, kind)(dtype=dtype_name, **config)
            layer.build((None, *input_shape))
            self._layers[key] = layer
        return self._layers[key]

    def _call(self, layer: Any, weights: list[Array], *args: Any) -> Any:
        # stateless_call takes the trainable weights in the layer's own order (kernel,
        # recurrent_kernel, bias; gamma, beta) and its non-trainable state (a seed) unchanged.
        state = [variable.value for variable in layer.non_trainable_variables]
        out, _ = layer.stateless_call(weights, state, *args)
        return out


class KerasJaxBackend(_KerasPrimitives, JaxBackend):
    """Keras 3 on its JAX backend (arrays are JAX arrays; gradients by ``jax.vjp``)."""

    name: ClassVar[str] = "keras-jax"
    keras_backend: ClassVar[str] = "jax"
    in_default_run: ClassVar[bool] = False
    divergences: ClassVar[Any] = _convert.DIVERGENCES / "keras-jax.txt"

    @classmethod
    def targets(cls) -> list[str]:
        return ["cpu"]

    @classmethod
    def available(cls, device: str = "cpu") -> tuple[bool, str]:
        reason = _keras_reason(cls.keras_backend)
        return (False, reason) if reason else JaxBackend.available(device)

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        JaxBackend.__init__(self, device, variant)  # enables float64 in JAX before keras starts
        self._start_keras()


class KerasTorchBackend(_KerasPrimitives, TorchBackend):
    """Keras 3 on its torch backend (arrays are torch tensors; gradients by ``torch.func.vjp``)."""

    name: ClassVar[str] = "keras-torch"
    keras_backend: ClassVar[str] = "torch"
    in_default_run: ClassVar[bool] = False
    divergences: ClassVar[Any] = _convert.DIVERGENCES / "keras-torch.txt"

    @classmethod
    def targets(cls) -> list[str]:
        return ["cpu"]

    @classmethod
    def available(cls, device: str = "cpu") -> tuple[bool, str]:
        reason = _keras_reason(cls.keras_backend)
        return (False, reason) if reason else TorchBackend.available(device)

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        TorchBackend.__init__(self, device, variant)
        self._start_keras()
