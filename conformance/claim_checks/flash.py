"""Claim checks about FlashAttention's memory traffic and block sizes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nnspec import oracles
from nnspec.claim_checks._counting import _qkv, _tiled_attention, fit_exponent
from nnspec.claims import Condition, Measurement, claim_check


def _flash_blocks(sram_elements: float, d: int) -> tuple[int, int]:
    block_k = math.ceil(sram_elements / (4 * d))   # B_c = ceil(M / 4d), Dao et al. 2022, Algorithm 1
    return block_k, min(block_k, d)                 # B_r = min(B_c, d)


@claim_check("flash_hbm_accesses")
def flash_hbm_accesses(n: int = 1024, d: int = 32, sram_elements: int = 8192) -> Measurement:
    """Growth exponents in n, d and the SRAM size M of the elements a real tiled forward pass moves to and from HBM."""
    def traffic(n_: int, d_: int, m_: int) -> float:
        q, k, v = _qkv(n_, d_)
        moved: list[int] = []
        block_k, block_q = _flash_blocks(m_, d_)
        out = _tiled_attention(q, k, v, block_k, block_q, moved)
        reference = oracles.softmax(q @ k.T / math.sqrt(d_)) @ v
        if not np.allclose(out, reference, atol=1e-10):
            raise ArithmeticError("the tiled forward pass disagrees with plain attention")
        return float(moved[0])

    # each sweep far enough out that the K, V reads (2 n d, independent of M) are a small share
    grids = {"n": ([256, 512, 1024, 2048], {}), "d": ([16, 32, 64, 128], {"M": 2 * sram_elements}),
             "M": ([4096, 8192, 16384, 32768], {"n": 2 * n})}
    values: dict[str, Any] = {}
    tolerance: dict[str, float] = {}
    for variable, (grid, base) in grids.items():
        sizes = {"n": n, "d": d, "M": sram_elements, **base}
        costs = [traffic(**{"n_": sizes["n"], "d_": sizes["d"], "m_": sizes["M"],
                            {"n": "n_", "d": "d_", "M": "m_"}[variable]: g}) for g in grid]
        values[variable], tolerance[variable] = fit_exponent(grid, costs)
    return Measurement(values, f"counting the elements a tiled forward pass (B_c = M/4d, B_r = min(B_c, d), output "
                               f"checked against plain attention) reads and writes: n^{values['n']:g} d^{values['d']:g} "
                               f"M^{values['M']:g}, i.e. O(n^2 d^2 / M) as Dao et al. (2022) state.", tolerance=tolerance)


@claim_check("flash_block_size")
def flash_block_size(sram_bytes: int, head_dims: list[int], element_bytes: list[int]) -> Measurement:
    """FlashAttention's key/value block B_c = ceil(M / 4d) for an SRAM of ``sram_bytes``, per head size and precision.

    The first head size and precision listed is the measurement; the others are conditions.
    """
    table = {}
    for size in element_bytes:
        for d in head_dims:
            block_k, block_q = _flash_blocks(sram_bytes / size, d)
            table[f"{8 * size}-bit, d={d}"] = {"key_block": block_k, "query_block": block_q}
    first, *others = table
    return Measurement({"key_block": table[first]["key_block"], "blocks": table},
                       f"with {sram_bytes // 1024} KB of SRAM: " + "; ".join(
                           f"{name}: {row['key_block']} keys x {row['query_block']} queries" for name, row in table.items())
                       + f". The block depends on head size and precision; {first} is taken as the usual case.",
                       primary="key_block",
                       under=tuple(Condition(f"for {name}", {"key_block": table[name]["key_block"]}) for name in others))
