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
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

# The protocol's primitives by family, in the order every backend file lists them. The families
# follow what a property needs to run: attention first (softmax and the kernels built on it, the
# additive-bias form beside the boolean-mask one, then the blocked, multi-head and kernelised
# variants), the positional encodings that feed attention, the per-position layers, the recurrent
# cells and the layer composed of them, the training-time transforms (clipping, the schedule, the
# masked-LM corruption), the decoders and scoring functions that stand alone, and last autodiff,
# which every family above uses (``vjp`` differentiates functions built from the others and
# ``stop_gradient`` marks their constants). Adding a primitive means adding it to its family here;
# ``PRIMITIVES`` and the order tests follow.
PRIMITIVE_FAMILIES: dict[str, tuple[str, ...]] = {
    "attention": (
        "softmax",
        "attention_weights",
        "attention",
        "attention_with_bias",
        "tiled_attention",
        "multi_head_attention",
        "linear_attention",
    ),
    "positional": ("sinusoidal_encoding", "rope", "alibi_bias"),
    "normalisation and layers": ("layer_norm", "feed_forward", "patch_embed"),
    "recurrent": ("rnn_cell", "lstm_cell", "gru_cell", "peephole_lstm_cell", "lstm_sequence"),
    "training": ("clip_grad_norm", "warmup_schedule", "mlm_corrupt"),
    "decoding and the rest": ("beam_search", "additive_attention_scores", "luong_scores", "gat_attention"),
    "autodiff": ("vjp", "stop_gradient"),
}

#: Every primitive of the protocol, family by family (:data:`PRIMITIVE_FAMILIES`).
PRIMITIVES: tuple[str, ...] = tuple(name for family in PRIMITIVE_FAMILIES.values() for name in family)


#: Composite primitives and the lower primitives a backend composes each from by default (through
#: ``self``, so an override of a lower primitive is checked wherever it is composed). A backend
#: that computes a composite with a fused kernel instead lists it in :attr:`Backend.fused`.
COMPOSITES: dict[str, tuple[str, ...]] = {
    "multi_head_attention": ("attention",),
    "lstm_sequence": ("lstm_cell",),
}


class Unavailable(Exception):
    """Raised by a backend's constructor when it cannot run here; the message says why."""


class InputNotSupported(Exception):
    """Raised by a primitive for inputs its kernel does not take (a mask given to a kernel without
    mask support, say). The example is discarded, not failed; a property for which every drawn
    example is discarded is *not applicable* on that target."""


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
    #: A backend that compiles once per input shape (JAX) sets this to n: each property then
    #: draws its sizes from n fixed shapes per run instead of freely, bounding compilation.
    shape_pool: ClassVar[int | None] = None
    #: Every device this backend runs on, each with the variants offered there (a variant pins one
    #: kernel: torch's ``cpu/math``). :meth:`targets` lists ``device`` and ``device/variant``.
    device_variants: ClassVar[dict[str, tuple[str, ...]]] = {"cpu": ()}
    #: The primitives whose result depends on a variant's kernel: a variant target supports only
    #: these, and only those that still reach the kernel of the class declaring them
    #: (:meth:`variant_primitives_in_play`); with none left, no variant target is offered.
    variant_primitives: ClassVar[frozenset[str]] = frozenset()
    #: Composites of :data:`COMPOSITES` this class computes with a fused kernel of its own rather
    #: than from its lower primitives (``nnspec backends --detail`` shows them).
    fused: ClassVar[frozenset[str]] = frozenset()
    #: False for a backend left out of a plain ``nnspec run`` (no ``--backend``): it runs only when
    #: selected by name (``-b NAME``). The ecosystem adapters set it.
    in_default_run: ClassVar[bool] = True
    #: This class's own known-divergence file (the format of ``backends/divergences/*.txt``), a
    #: path relative to the folder of the module that defines the class. Read from the class's own
    #: body only: a subclass does not get its parent's entries unless it sets
    #: ``inherit_divergences = True``, and then the parent's target patterns ``parent-name:...``
    #: apply to ``subclass-name:...`` (see :func:`nnspec.divergences.for_backend`).
    divergences: ClassVar[str | Path | None] = None
    #: Whether this class also takes the divergence entries of its base classes (read from the
    #: class's own body; default False).
    inherit_divergences: ClassVar[bool] = False

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
        """Every ``device[/variant]`` this backend offers, available here or not.

        The devices of :attr:`device_variants`, each followed by its variants; the variants only
        while some primitive of this class still reaches their kernel.
        """
        with_variants = bool(cls.variant_primitives_in_play())
        return [
            spec
            for device, variants in cls.device_variants.items()
            for spec in (device, *(f"{device}/{variant}" for variant in variants if with_variants))
        ]

    @classmethod
    def variant_primitives_in_play(cls) -> frozenset[str]:
        """The :attr:`variant_primitives` a variant target of this class runs.

        A primitive counts while it is the one of the class that declares ``variant_primitives``
        (the kernel-pinning class) and, for a composite not in :attr:`fused`, while the lower
        primitives it is composed from are that class's too. So a subclass of the torch backend
        that overrides ``attention`` with its own function is run once per device, not once per
        SDPA kernel; a subclass that routes its override through the kernel on purpose declares
        ``variant_primitives`` itself. ``vjp`` counts while any other primitive does.
        """
        owner = next(k for k in cls.__mro__ if "variant_primitives" in vars(k))

        def own(primitive: str) -> bool:
            return getattr(cls, primitive, None) is getattr(owner, primitive, None)

        in_play = {
            primitive for primitive in cls.variant_primitives - {"vjp"}
            if own(primitive) and (primitive in cls.fused or all(map(own, COMPOSITES.get(primitive, ()))))
        }
        if in_play and "vjp" in cls.variant_primitives and own("vjp"):
            in_play.add("vjp")
        return frozenset(in_play)

    @classmethod
    def implemented_by(cls, primitive: str) -> type[Backend] | None:
        """The class in this one's hierarchy whose body defines ``primitive``; None for a stub."""
        for klass in cls.__mro__:
            method = vars(klass).get(primitive)
            if method is not None:
                return None if getattr(method, "__nnspec_missing__", False) else klass
        return None

    @classmethod
    def available(cls, device: str = "cpu") -> tuple[bool, str]:
        """Whether the backend can run on ``device`` here and, when it cannot, why."""
        return True, ""

    def supports(self, primitive: str) -> bool:
        """Whether this target implements ``primitive`` (rather than inheriting the stub).

        A variant target supports only :meth:`variant_primitives_in_play`: every other primitive
        is checked once per device, on the plain target.
        """
        if self.variant is not None and primitive not in self.variant_primitives_in_play():
            return False
        method = getattr(type(self), primitive, None)
        return method is not None and not getattr(method, "__nnspec_missing__", False)

    def supports_dtype(self, dtype: str) -> bool:
        return dtype in self.dtypes

    def environment(self) -> dict[str, str]:
        """Versions and devices worth recording in a run's environment."""
        return {}

    # -- the boundary --------------------------------------------------------------------------
    # Not primitives (outside PRIMITIVES, never stubs, never a property's subject): how arrays
    # cross between NumPy and this backend (asarray, to_numpy, cast) and the optional hook
    # ``compile_seconds() -> float``, which a backend that compiles (JAX) defines to report the
    # seconds this process has spent compiling; the runner records a property's share of it and,
    # for a backend without the method, records no compile time at all (None, not 0). The base
    # class therefore leaves compile_seconds undefined on purpose.

    def asarray(self, x: np.ndarray, dtype: str | None = None) -> Any:
        """Convert a NumPy array into this backend's array type.

        ``dtype`` names one of :attr:`dtypes` (``"bfloat16"`` included, which NumPy lacks: such
        inputs arrive as float32 values already rounded to bfloat16); ``None`` keeps ``x``'s dtype.
        """
        return x if dtype is None else x.astype(dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Convert one of this backend's arrays into a NumPy array."""
        return np.asarray(x)

    def cast(self, x: Any, dtype: str) -> Any:
        """``x``, one of this backend's arrays, converted to the dtype named ``dtype`` (one of :attr:`dtypes`)."""
        return x.astype(dtype)

    # -- primitives, family by family in protocol order (PRIMITIVE_FAMILIES) ----------------------

    # attention

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
    def attention_with_bias(self, q: Any, k: Any, v: Any, bias: Any, scale: float | None = None) -> Any:
        """Attention with an additive float mask: ``softmax(scale * q @ k^T + bias) @ v``.

        ``bias`` broadcasts to ``(B, H, L, S)``; ``0`` keeps a key and ``-inf`` removes it, so a
        0/-inf bias is the additive form of a boolean mask (``where(mask, 0, -inf)``); finite
        values shift logits (ALiBi, relative positions). A separate primitive rather than a float
        ``mask`` for :meth:`attention`, whose ``mask`` stays boolean: one argument with two
        meanings invites the polarity bug (a 0/-inf mask cast to bool reads as its inverse).
        torch: ``scaled_dot_product_attention`` with a float ``attn_mask``; JAX:
        ``jax.nn.dot_product_attention(..., bias=...)``.
        """
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

    # positional

    @_stub
    def sinusoidal_encoding(self, length: int, d_model: int, dtype: str = "float64") -> Any:
        """``PE[p, 2i] = sin(p / 10000^(2i/M))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/M))``: ``(L, M)``."""
        raise NotImplementedError

    @_stub
    def rope(self, x: Any, positions: Any, base: float = 10000.0) -> Any:
        """Rotary embedding of ``x (B, H, L, D)`` at integer ``positions (L,)``.

        Pairs ``(x[2i], x[2i+1])`` rotate by the angle ``position * base^(-2i/D)``. Which dimensions
        form a pair is implementation-defined (``rotate_half`` pairs ``i`` with ``i + D/2``); the
        properties judge only what every pairing keeps (norms, relative positions).
        """
        raise NotImplementedError

    @_stub
    def alibi_bias(self, num_heads: int, q_len: int, k_len: int, dtype: str = "float64") -> Any:
        """ALiBi's additive bias ``(H, L, S)``: ``-slope_h * (i - j)`` for ``j <= i``, 0 above.

        Slopes are the geometric sequence ``2^(-8 (h+1) / H)`` for ``h = 0 .. H-1`` when ``H`` is a
        power of two; for other head counts the recipe is implementation-defined (plain geometric,
        or the ALiBi authors' interleaving of the two nearest powers of two).
        """
        raise NotImplementedError

    # normalisation and layers

    @_stub
    def layer_norm(self, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
        """Normalise the last axis to zero mean and unit (biased) variance, then ``* weight + bias``."""
        raise NotImplementedError

    @_stub
    def feed_forward(self, x: Any, params: dict[str, Any]) -> Any:
        """Position-wise FFN: ``relu(x @ w_1.T + b_1) @ w_2.T + b_2``; ``w_1 (F, M)``, ``w_2 (M, F)``."""
        raise NotImplementedError

    @_stub
    def patch_embed(self, images: Any, weight: Any, bias: Any) -> Any:
        """ViT patch embedding: ``images (B, C, H, W)``, ``weight (E, C, P, P)``, ``bias (E,) -> (B, N, E)``.

        The image is cut into non-overlapping ``P x P`` patches (``H`` and ``W`` multiples of
        ``P``), numbered row by row; each is flattened and projected: a convolution with kernel
        and stride ``P``. ``N = (H / P) * (W / P)``.
        """
        raise NotImplementedError

    # recurrent

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
    def peephole_lstm_cell(self, x: Any, h: Any, c: Any, params: dict[str, Any]) -> tuple[Any, Any]:
        """One LSTM step whose gates also see the cell state (peephole connections).

        ``params`` as for :meth:`lstm_cell` plus diagonal peephole weights ``p_i, p_f, p_o (N,)``.
        The input and forget gates see the previous cell state and the output gate the new one
        (Gers, Schraudolph & Schmidhuber, 2002): ``i = sigmoid(. + p_i * c)``,
        ``f = sigmoid(. + p_f * c)``, ``c' = f * c + i * g``, ``o = sigmoid(. + p_o * c')``,
        ``h' = o * tanh(c')``. With zero peephole weights this is :meth:`lstm_cell`.
        """
        raise NotImplementedError

    @_stub
    def lstm_sequence(
        self, xs: Any, h0: Any, c0: Any, params: dict[str, Any], lengths: Any = None, reverse: bool = False
    ) -> tuple[Any, Any, Any]:
        """A whole LSTM layer over ``xs (B, T, I)``: ``-> (outputs (B, T, N), h_n (B, N), c_n (B, N))``.

        The same ``params`` (as for :meth:`lstm_cell`) are applied at every step. ``lengths (B,)``
        (integers in ``1..T``, ``None`` for all ``T``) gives each sequence's true length: steps at
        or past it are padding, never read; their outputs are implementation-defined (the reference
        gives zeros, some frameworks leave what they computed) and ``h_n, c_n`` are the state after
        the last true step. ``reverse`` runs each sequence from its last true step back to
        its first (the backward half of a bidirectional layer); outputs stay aligned with the
        input positions.
        """
        raise NotImplementedError

    # training

    @_stub
    def clip_grad_norm(self, grads: Sequence[Any], max_norm: float) -> list[Any]:
        """Rescale a list of gradient arrays by one common factor so their global norm is at most ``max_norm``.

        The global norm is ``sqrt(sum of squares over every array)``. When it exceeds ``max_norm``
        every array is multiplied by ``max_norm / norm`` (an implementation may add a tiny
        epsilon, as ``torch.nn.utils.clip_grad_norm_`` adds 1e-6 to the norm); otherwise the
        arrays are returned unchanged.
        """
        raise NotImplementedError

    @_stub
    def warmup_schedule(self, steps: Any, d_model: int, warmup: int) -> Any:
        """The Transformer learning-rate schedule at integer ``steps (K,)`` (each >= 1): ``(K,)`` floats.

        ``lr(step) = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)``.
        """
        raise NotImplementedError

    @_stub
    def mlm_corrupt(self, tokens: Any, vocab_size: int, mask_id: int, seed: int) -> tuple[Any, Any]:
        """BERT's masked-LM corruption of integer ``tokens (B, L)``: ``-> (corrupted (B, L), selected (B, L))``.

        Each position is selected independently with probability 0.15. A selected token becomes
        ``mask_id`` with probability 0.8, a token drawn uniformly from ``0 .. vocab_size - 1`` with
        probability 0.1, and stays as it is with probability 0.1. Unselected tokens are unchanged.
        ``selected`` is boolean; ``seed`` fixes the draw.
        """
        raise NotImplementedError

    # decoding and the rest

    @_stub
    def beam_search(self, initial: Any, transitions: Any, beam_width: int) -> tuple[Any, Any]:
        """Beam search over a first-order model given as log-probability tables.

        ``initial (V,)`` scores the first token, ``transitions (T-1, V, V)`` the token at step
        ``t + 1`` given the token at step ``t`` (``transitions[t, previous, next]``). A sequence's
        score is the sum of its log-probabilities. At each step every kept prefix is extended by
        every token and the ``beam_width`` best extensions are kept. Returns
        ``tokens (K, T)`` (integers) and ``scores (K,)``, best first, ``K = min(beam_width, V^T)``.
        """
        raise NotImplementedError

    @_stub
    def additive_attention_scores(self, query: Any, keys: Any, params: dict[str, Any]) -> Any:
        """Bahdanau scores ``e_i = v^T tanh(W_q s + W_k h_i)``: ``query (B, Dq)``, ``keys (B, S, Dk) -> (B, S)``.

        ``params``: ``w_query (A, Dq)``, ``w_key (A, Dk)``, ``v (A,)``.
        """
        raise NotImplementedError

    @_stub
    def luong_scores(self, query: Any, keys: Any, weight: Any = None) -> Any:
        """Luong scores ``query (B, Dq)``, ``keys (B, S, Dk) -> (B, S)``.

        ``weight=None`` gives the dot score ``s . h_i`` (``Dq == Dk``); a ``weight (Dq, Dk)`` gives
        the general score ``s^T W h_i``.
        """
        raise NotImplementedError

    @_stub
    def gat_attention(self, h: Any, adjacency: Any, w: Any, a: Any, negative_slope: float = 0.2) -> Any:
        """Graph-attention coefficients of one GAT head: ``h (N, F)``, ``adjacency (N, N) -> (N, N)``.

        ``alpha_ij = softmax_j(LeakyReLU(a^T [W h_i || W h_j]))`` over the neighbours ``j`` of
        ``i`` (``adjacency[i, j]`` True; self-loops are the caller's to include, every row has
        one), and exactly 0 for non-neighbours. ``w (F', F)``, ``a (2F',)``.
        """
        raise NotImplementedError

    # autodiff

    @_stub
    def vjp(self, fn: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], Sequence[Any]]]:
        """``(fn(*primals), vjp_fn)`` with the meaning of ``jax.vjp``.

        ``fn`` is built from this backend's own primitives and takes and returns its arrays;
        ``vjp_fn(cotangent)`` returns one cotangent per primal.
        """
        raise NotImplementedError

    @_stub
    def stop_gradient(self, x: Any) -> Any:
        """``x`` unchanged in value, but a constant for :meth:`vjp`: no gradient flows through it."""
        raise NotImplementedError
