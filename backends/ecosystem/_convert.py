"""Convention conversions at an adapter's boundary, written once for every array library.

Each helper takes arrays of any library with NumPy-style methods (NumPy, torch, JAX) and, where
it needs to build an array, the library's namespace ``xp`` (``numpy``, ``torch``, ``jax.numpy``).
Shape letters as in :mod:`nnspec.backends.base`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from nnspec.backends.base import Unavailable

DIVERGENCES = Path(__file__).parent / "divergences"


def swap_heads_and_length(x: Any) -> Any:
    """``(B, H, L, D) <-> (B, L, H, D)``: the protocol's layout to the BLHD one of flax, keras and HF outputs."""
    return x.swapaxes(1, 2)


def allowed_mask(xp: Any, mask: Any, is_causal: bool, q_len: int, k_len: int) -> Any:
    """The protocol's boolean "may attend" mask with ``is_causal`` folded in (top-left), or None."""
    allowed = None if mask is None else xp.asarray(mask, dtype=xp.bool)
    if is_causal:
        causal = xp.tril(xp.ones((q_len, k_len), dtype=xp.bool))
        allowed = causal if allowed is None else allowed & causal
    return allowed


def four_dimensional(x: Any) -> Any:
    """An array broadcasting to ``(B, H, L, S)`` reshaped to 4-D (leading axes of 1)."""
    return x.reshape((1,) * (4 - x.ndim) + tuple(x.shape)) if x.ndim < 4 else x


def additive_mask(xp: Any, allowed: Any, fill: float, dtype: Any) -> Any:
    """A boolean "may attend" mask as an additive one: 0 where allowed, ``fill`` where not.

    ``fill`` is ``-inf`` for an exact mask or a library's own large negative number
    (``finfo(dtype).min`` in Hugging Face transformers and flax).
    """
    return xp.where(allowed, xp.zeros((), dtype=dtype), xp.full((), fill, dtype=dtype))


def disallowed_mask(allowed: Any) -> Any:
    """The inverted polarity: True where attending is *forbidden* (``torch.nn.MultiheadAttention``)."""
    return ~allowed


def permute_gates(xp: Any, weight: Any, source: str, target: str, axis: int = 0) -> Any:
    """Reorder the gate blocks of a stacked weight or bias along ``axis``.

    ``source`` and ``target`` spell the gate order one letter per block, e.g. the protocol's
    GRU order ``"rzn"`` to keras's ``"zrn"``, or LSTM ``"ifgo"`` to ``"icfo"``-style orders.
    """
    if sorted(source) != sorted(target):
        raise ValueError(
            f"gate orders must hold the same gates. Received: source={source!r}, target={target!r}"
        )
    axis %= weight.ndim
    size = weight.shape[axis] // len(source)
    lead = (slice(None),) * axis
    blocks = {gate: weight[(*lead, slice(n * size, (n + 1) * size))] for n, gate in enumerate(source)}
    return xp.concatenate([blocks[gate] for gate in target], axis=axis)


def dense_kernel(weight: Any) -> Any:
    """The protocol's ``(out, in)`` weight as the ``(in, out)`` kernel of flax and keras dense layers."""
    return weight.T


def require(module: str, pip: str) -> str:
    """Why ``module`` cannot be imported here (with the pip command), or ``""`` when it can."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    return "" if found else f"{module} is not installed: pip install {pip}"


class LibraryAdapter:
    """The part every library adapter shares: unavailable, with the pip command, where its library
    is not installed, and the library's version in the run's environment.

    Put it first among the bases (``class FlaxBackend(LibraryAdapter, JaxBackend)``) and set
    ``library`` (the module to import) and ``install`` (what to give ``pip install``).
    """

    library: ClassVar[str] = ""
    install: ClassVar[str] = ""

    @classmethod
    def available(cls, device: str = "cpu") -> tuple[bool, str]:
        reason = require(cls.library, cls.install)
        if reason:
            return False, reason
        available: tuple[bool, str] = super().available(device)  # type: ignore[misc]
        return available

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        ok, reason = self.available(device)
        if not ok:
            raise Unavailable(reason)
        super().__init__(device, variant)  # type: ignore[call-arg]

    def environment(self) -> dict[str, str]:
        import importlib

        version = str(getattr(importlib.import_module(self.library), "__version__", "unknown"))
        environment: dict[str, str] = super().environment()  # type: ignore[misc]
        return {**environment, self.library: version}
