"""Draws shared by the attention checkers."""

from __future__ import annotations

import numpy as np

from nnspec.case import Case


def qkv(case: Case, self_attention: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``q (B,H,L,D)``, ``k (B,H,S,D)``, ``v (B,H,S,Dv)`` from the domain (``S = L`` for self-attention)."""
    batch, heads = case.size("batch", (1, 2)), case.size("heads", (1, 2))
    q_len = case.size("q_len", (1, 8))
    k_len = q_len if self_attention else case.size("k_len", (1, 8))
    dim = case.size("dim", (1, 8))
    # The value width is drawn on its own (from the domain's dim_v, else dim's range): a kernel that
    # scales by 1/sqrt(Dv) or assumes Dv == D is seen wherever attention is drawn.
    dim_v = case.size("dim_v", tuple(case.prop.inputs.get("dim", (1, 8))))
    regime = case.regime()
    q = case.array("q", (batch, heads, q_len, dim), regime)
    k = case.array("k", (batch, heads, k_len, dim), regime)
    v = case.array("v", (batch, heads, k_len, dim_v), regime)
    return q, k, v


def permutation(case: Case, length: int, name: str = "permutation") -> np.ndarray:
    return case.keep(name, case.rng.permutation(length))
