"""Convention conversions for adapter authors: layout, mask polarity and form, gate order.

nnspec's protocol fixes one convention for each (see :mod:`nnspec.backends.base`): attention
arrays ``(B, H, L, D)``; boolean masks with ``True`` = "may attend"; an additive bias of ``0`` to
keep a key and ``-inf`` to remove it; LSTM gate blocks in the order ``i, f, g, o`` and GRU gate
blocks ``r, z, n``. An adapter converts at its boundary with these helpers, so it stays a few
lines. Each takes NumPy, torch or JAX arrays and returns the same kind; none imports a framework
at module level.

Gate orders are strings with one letter per gate block. LSTM: ``i`` input, ``f`` forget, ``g``
(or ``c``) candidate, ``o`` output; GRU: ``r`` reset, ``z`` update, ``n`` (or ``h``) candidate.
Some orders met in practice:

========================================  =========  ========
framework                                 LSTM       GRU
========================================  =========  ========
nnspec, torch.nn.LSTM / GRU               ``ifgo``   ``rzn``
keras 3 LSTM / GRU                        ``ifco``   ``zrh``
TensorFlow's LSTMBlockCell (cuDNN-style)  ``icfo``
ONNX LSTM / GRU                           ``iofc``   ``zrh``
========================================  =========  ========
"""

from __future__ import annotations

from typing import Any

Array = Any  # a NumPy, torch or JAX array

#: nnspec's gate orders (the protocol's and torch's).
LSTM_ORDER = "ifgo"
GRU_ORDER = "rzn"
# Letters that name the same gate in different frameworks' orders: the candidate.
_ALIASES = {"c": "g", "h": "n"}


def _namespace(x: Array) -> Any:
    """The array module of ``x``: torch, jax.numpy, or NumPy for anything else."""
    module = type(x).__module__
    if module.startswith("torch"):
        import torch

        return torch
    if module.startswith("jax"):
        import jax.numpy as jnp

        return jnp
    import numpy as np

    return np


# -- layout ----------------------------------------------------------------------------------


def bshd_to_bhsd(x: Array) -> Array:
    """``(B, S, H, D)`` (JAX's, flash-attention's and most libraries' layout) to the protocol's ``(B, H, S, D)``.

    >>> import numpy as np
    >>> bshd_to_bhsd(np.zeros((2, 7, 4, 16))).shape
    (2, 4, 7, 16)
    """
    return x.swapaxes(1, 2)


def bhsd_to_bshd(x: Array) -> Array:
    """The protocol's ``(B, H, S, D)`` to ``(B, S, H, D)``; the inverse of :func:`bshd_to_bhsd`.

    >>> import numpy as np
    >>> bhsd_to_bshd(np.zeros((2, 4, 7, 16))).shape
    (2, 7, 4, 16)
    """
    return x.swapaxes(1, 2)


# -- masks -----------------------------------------------------------------------------------


def invert_mask(mask: Array) -> Array:
    """Swap mask polarity: ``True`` = "may attend" (nnspec, SDPA, JAX, keras) <-> ``True`` = "masked".

    ``torch.nn.MultiheadAttention``'s boolean ``attn_mask`` and ``key_padding_mask`` say
    ``True`` = masked; the protocol's masks say ``True`` = may attend.

    >>> import numpy as np
    >>> invert_mask(np.array([True, False])).tolist()
    [False, True]
    """
    return ~mask


def boolean_to_additive(mask: Array, dtype: Any = None, masked: float = float("-inf")) -> Array:
    """A boolean "may attend" mask as an additive bias: ``0`` where ``True``, ``masked`` where ``False``.

    ``dtype`` is the bias's dtype (the framework's dtype object, or a NumPy dtype name for NumPy
    arrays); by default float32. Libraries that avoid ``-inf`` pass their fill value as ``masked``
    (Hugging Face uses ``torch.finfo(dtype).min``).

    >>> import numpy as np
    >>> boolean_to_additive(np.array([True, False])).tolist()
    [0.0, -inf]
    """
    xp = _namespace(mask)
    dtype = xp.float32 if dtype is None else dtype
    zeros = xp.zeros(mask.shape, dtype=dtype)
    return xp.where(mask, zeros, xp.full(mask.shape, masked, dtype=dtype))


def additive_to_boolean(bias: Array, masked_at_or_below: float = float("-inf")) -> Array:
    """An additive 0/-inf bias as a boolean "may attend" mask: ``True`` where the bias is above
    ``masked_at_or_below``.

    With the default only ``-inf`` entries are masked. For a library whose masked entries are a
    large finite negative number, pass that number (``torch.finfo(dtype).min``).

    >>> import numpy as np
    >>> additive_to_boolean(np.array([0.0, -np.inf])).tolist()
    [True, False]
    """
    return bias > masked_at_or_below


# -- gate order ------------------------------------------------------------------------------


def _canonical(order: str) -> str:
    return "".join(_ALIASES.get(letter, letter) for letter in order.lower())


def gate_permutation(source: str, target: str) -> list[int]:
    """The block indices that reorder gates from ``source`` order to ``target`` order.

    Block ``k`` of the result is block ``gate_permutation(source, target)[k]`` of the input.
    ``c`` and ``g`` both name the LSTM candidate, ``h`` and ``n`` the GRU candidate.

    >>> gate_permutation("ifco", "ifgo")   # keras LSTM -> nnspec: the same order
    [0, 1, 2, 3]
    >>> gate_permutation("zrh", "rzn")     # keras GRU -> nnspec
    [1, 0, 2]
    """
    source_gates, target_gates = _canonical(source), _canonical(target)
    if sorted(source_gates) != sorted(target_gates) or len(set(source_gates)) != len(source_gates):
        raise ValueError(
            f"gate orders must name the same distinct gates. Received: {source!r} and {target!r}"
        )
    return [source_gates.index(gate) for gate in target_gates]


def permute_gates(weights: Array, source: str, target: str, axis: int = 0) -> Array:
    """``weights`` with its gate blocks along ``axis`` reordered from ``source`` to ``target`` order.

    The blocks are ``len(source)`` equal slices of ``axis`` (``4N`` rows of an LSTM's ``w_ih``,
    ``3N`` of a GRU's). Keras stores kernels as ``(I, 4N)``: use ``axis=-1`` there (or transpose).

    >>> import numpy as np
    >>> weights = np.repeat(np.arange(3), 2)          # blocks z, r, h of width 2
    >>> permute_gates(weights, "zrh", "rzn").tolist()  # now r, z, n
    [1, 1, 0, 0, 2, 2]
    """
    order = gate_permutation(source, target)
    size = weights.shape[axis]
    if size % len(order):
        raise ValueError(
            f"axis {axis} of length {size} does not split into {len(order)} gate blocks "
            f"({source!r}). Received: shape {tuple(weights.shape)}"
        )
    width = size // len(order)
    position = axis % weights.ndim

    def block(index: int) -> Array:
        return weights[(slice(None),) * position + (slice(index * width, (index + 1) * width),)]

    xp = _namespace(weights)
    concatenate = xp.cat if hasattr(xp, "cat") else xp.concatenate
    return concatenate([block(index) for index in order], axis)
