"""An example nnspec plug-in: one custom attention kernel, everything else from the reference.

Install it (``pip install -e examples/nnspec-example-backend``) and run
``nnspec run --backend example-fast-attention``; only the properties that reach ``attention``
test new code, the rest re-check the inherited NumPy primitives.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from nnspec.backends.numpy import NumpyBackend


class FastAttentionBackend(NumpyBackend):
    """NumPy reference backend whose ``attention`` is a single fused einsum pass."""

    name: ClassVar[str] = "example-fast-attention"

    def attention(self, q, k, v, mask=None, is_causal=False, scale=None):
        scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
        logits = np.einsum("bhld,bhsd->bhls", q, k) * np.asarray(scale, dtype=q.dtype)
        allowed = np.ones(logits.shape, dtype=bool)
        if mask is not None:
            allowed = allowed & mask
        if is_causal:
            allowed = allowed & np.tri(q.shape[-2], k.shape[-2], dtype=bool)
        # Subtract each row's largest admissible logit; fully masked rows get weight 0.
        row_max = np.max(np.where(allowed, logits, -np.inf), axis=-1, keepdims=True)
        row_max = np.where(np.isfinite(row_max), row_max, 0.0)
        exponentials = np.where(allowed, np.exp(logits - row_max), 0.0)
        totals = exponentials.sum(axis=-1, keepdims=True)
        out = np.einsum("bhls,bhsd->bhld", exponentials, v) / np.where(totals > 0, totals, 1.0)
        return out.astype(q.dtype)
