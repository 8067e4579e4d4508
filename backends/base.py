"""The backend protocol.

Shape letters, used throughout: B batch, H heads, L query length, S key length,
D head dimension (Dv for values), M model width, I input width, N hidden width.
Attention arrays are ``(B, H, L, D)``. Boolean masks broadcast to ``(B, H, L, S)``
and ``True`` means "may attend". ``is_causal`` masks key ``j`` from query ``i``
when ``j > i`` (top-left alignment, the alignment of ``numpy.tril``); when ``L != S``
other alignments are implementation-defined and the specs say so.

A backend is a subclass of :class:`Backend`. Every primitive below is optional: a
backend that leaves one as the base class's stub makes the properties that need it
*not applicable* (status ``skip``), never *passed*. Subclassing a shipped backend and
overriding one primitive is the documented way to test a single custom kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

# The protocol's primitives, in the order every backend file lists them.
PRIMITIVES: tuple[str, ...] = (
    "softmax",
    "attention_weights",
    "attention",
    "tiled_attention",
    "multi_head_attention",
    "linear_attention",
    "layer_norm",
    "feed_forward",
    "sinusoidal_encoding",
    "rope",
    "alibi_bias",
    "rnn_cell",
    "lstm_cell",
    "gru_cell",
    "vjp",
)


class Unavailable(Exception):
    """Raised by a backend's constructor when it cannot run here; the message says why."""


def _stub(function: Callable[..., Any]) -> Callable[..., Any]:
    function.__nnspec_missing__ = True  # type: ignore[attr-defined]
    return function


class Backend:
    """One array framework on one device, adapted to nnspec's conventions.

    Subclasses set ``name`` and, when they can run on several devices or kernels,
    override :meth:`targets`. Arrays cross the boundary as NumPy arrays:
    :meth:`asarray` converts inputs, :meth:`to_numpy` converts outputs.
    """

    name: ClassVar[str] = "base"
    #: dtypes this backend computes in, as NumPy dtype names ("bfloat16" included by name).
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        self.device = device
        self.variant = variant

    # -- identity ----------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """The target's name in results: ``name:device`` or ``name:device/variant``."""
        base = f"{self.name}:{self.device}"
        return f"{base}/{self.variant}" if self.variant else base

    @classmethod
    def targets(cls) -> list[str]:
        """Every ``device[/variant]`` this backend offers, available here or not."""
        return ["cpu"]

    @classmethod
    def available(cls, device: str = "cpu") -> tuple[bool, str]:
        """Whether the backend can run on ``device`` here and, when it cannot, why."""
        return True, ""

    def supports(self, primitive: str) -> bool:
        """Whether this backend implements ``primitive`` (rather than inheriting the stub)."""
        method = getattr(type(self), primitive, None)
        return method is not None and not getattr(method, "__nnspec_missing__", False)

    def supports_dtype(self, dtype: str) -> bool:
        return dtype in self.dtypes

    def environment(self) -> dict[str, str]:
        """Versions and devices worth recording in a run's environment."""
        return {}

    # -- the boundary --------------------------------------------------------------------------

    def asarray(self, x: np.ndarray, dtype: str | None = None) -> Any:
        """Convert a NumPy array into this backend's array type.

        ``dtype`` names one of :attr:`dtypes` (``"bfloat16"`` included, which NumPy lacks: such
        inputs arrive as float32 values already rounded to bfloat16); ``None`` keeps ``x``'s dtype.
        """
        return x if dtype is None else x.astype(dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Convert one of this backend's arrays into a NumPy array."""
        return np.asarray(x)

    # -- primitives, in protocol order ----------------------------------------------------------

    @_stub
    def softmax(self, x: Any, axis: int = -1) -> Any:
        """``exp(x) / sum(exp(x))`` along ``axis``."""
        raise NotImplementedError

    @_stub
    def attention_weights(
        self, q: Any, k: Any, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Any:
        """``softmax(scale * q @ k^T)`` with masked logits removed: ``(BHLD), (BHSD) -> (BHLS)``.

        ``scale`` defaults to ``1 / sqrt(D)``.
        """
        raise NotImplementedError

    @_stub
    def attention(
        self,
        q: Any,
        k: Any,
        v: Any,
        mask: Any = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Any:
        """Scaled dot-product attention: ``(BHLD), (BHSD), (BHSDv) -> (BHLDv)``."""
        raise NotImplementedError

    @_stub
    def tiled_attention(
        self,
        q: Any,
        k: Any,
        v: Any,
        block_q: int,
        block_k: int,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Any:
        """Attention computed block by block with an online softmax (the flash-attention scheme).

        Never materialises the ``(L, S)`` weights: memory is linear in sequence length.
        """
        raise NotImplementedError

    @_stub
    def multi_head_attention(
        self,
        x_q: Any,
        x_kv: Any,
        params: dict[str, Any],
        num_heads: int,
        mask: Any = None,
        is_causal: bool = False,
    ) -> Any:
        """Multi-head attention over ``(B, L, M)`` queries and ``(B, S, M)`` keys/values.

        ``params`` holds ``w_q, w_k, w_v, w_o`` of shape ``(M, M)`` and biases ``b_q, b_k, b_v, b_o``
        of shape ``(M,)``; projections are ``x @ w.T + b``. Heads split the projected width into
        ``num_heads`` contiguous slices of ``M // num_heads``. ``mask`` broadcasts to ``(B, H, L, S)``.
        """
        raise NotImplementedError

    @_stub
    def linear_attention(self, q: Any, k: Any, v: Any, is_causal: bool = False) -> Any:
        """Kernelised attention with feature map ``phi(x) = elu(x) + 1``, in its parallel form.

        ``out_i = phi(q_i) @ sum_j phi(k_j)^T v_j / (phi(q_i) @ sum_j phi(k_j))``, the sums over
        every ``j`` or, when causal, over ``j <= i``.
        """
        raise NotImplementedError

    @_stub
    def layer_norm(self, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
        """Normalise the last axis to zero mean and unit (biased) variance, then ``* weight + bias``."""
        raise NotImplementedError

    @_stub
    def feed_forward(self, x: Any, params: dict[str, Any]) -> Any:
        """Position-wise FFN: ``relu(x @ w_1.T + b_1) @ w_2.T + b_2``; ``w_1 (F, M)``, ``w_2 (M, F)``."""
        raise NotImplementedError

    @_stub
    def sinusoidal_encoding(self, length: int, d_model: int, dtype: str = "float64") -> Any:
        """``PE[p, 2i] = sin(p / 10000^(2i/M))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/M))``: ``(L, M)``."""
        raise NotImplementedError

    @_stub
    def rope(self, x: Any, positions: Any, base: float = 10000.0) -> Any:
        """Rotary embedding of ``x (B, H, L, D)`` at integer ``positions (L,)``.

        Pairs ``(x[2i], x[2i+1])`` rotate by the angle ``position * base^(-2i/D)``.
        """
        raise NotImplementedError

    @_stub
    def alibi_bias(self, num_heads: int, q_len: int, k_len: int, dtype: str = "float64") -> Any:
        """ALiBi's additive bias ``(H, L, S)``: ``-slope_h * (i - j)`` for ``j <= i``, 0 above.

        Slopes are the geometric sequence ``2^(-8 (h+1) / H)`` for ``h = 0 .. H-1``.
        """
        raise NotImplementedError

    @_stub
    def rnn_cell(self, x: Any, h: Any, params: dict[str, Any]) -> Any:
        """Elman cell ``h' = tanh(x @ w_ih.T + h @ w_hh.T + b)``; ``w_ih (N, I)``, ``w_hh (N, N)``, ``b (N,)``."""
        raise NotImplementedError

    @_stub
    def lstm_cell(self, x: Any, h: Any, c: Any, params: dict[str, Any]) -> tuple[Any, Any]:
        """One LSTM step ``(x (B, I), h (B, N), c (B, N)) -> (h', c')``.

        ``params``: ``w_ih (4N, I)``, ``w_hh (4N, N)``, ``b (4N,)``, gate blocks in the order
        i, f, g, o. ``c' = f * c + i * g`` and ``h' = o * tanh(c')``, with sigmoid i, f, o and tanh g.
        """
        raise NotImplementedError

    @_stub
    def gru_cell(self, x: Any, h: Any, params: dict[str, Any]) -> Any:
        """One GRU step ``(x (B, I), h (B, N)) -> h'``.

        ``params``: ``w_ih (3N, I)``, ``w_hh (3N, N)``, ``b_ih (3N,)``, ``b_hh (3N,)``, gate blocks
        in the order r, z, n. ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` and
        ``h' = (1 - z) * n + z * h``.
        """
        raise NotImplementedError

    @_stub
    def vjp(self, fn: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], Sequence[Any]]]:
        """``(fn(*primals), vjp_fn)`` with the meaning of ``jax.vjp``.

        ``fn`` is built from this backend's own primitives and takes and returns its arrays;
        ``vjp_fn(cotangent)`` returns one cotangent per primal.
        """
        raise NotImplementedError
