"""Peak memory of tiled (flash-style) attention against dense attention, as sequence length grows.

The documents say flash attention makes attention memory linear in sequence length instead of
quadratic. This measures it on the NumPy reference backend with ``tracemalloc`` (NumPy reports
its array buffers to it): for each L the peak bytes allocated while computing one self-attention
call, dense (which materialises the L x L weights) and tiled (blocks of 64 x 64), then the slope
of log(peak) against log(L) over the lengths measured (2 = quadratic, 1 = linear).

    .venv/bin/python benchmarks/tiled_memory.py [--lengths 256 512 1024 2048 4096] [--dim 64] [--block 64]

A benchmark rather than a test: the numbers depend on the allocator and NumPy's temporaries, and
the claim is about growth, which a fitted slope states better than a threshold.
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections.abc import Callable

import numpy as np

from nnspec.backends.numpy import NumpyBackend


def peak_bytes(compute: Callable[[], np.ndarray]) -> int:
    """Peak traced allocation while ``compute`` runs, above what was allocated before it started."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    result = compute()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return peak - before


def slope(lengths: list[int], peaks: list[int]) -> float:
    """Least-squares slope of log(peak) against log(length)."""
    return float(np.polyfit(np.log(lengths), np.log(peaks), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--block", type=int, default=64)
    args = parser.parse_args()

    backend = NumpyBackend()
    rng = np.random.default_rng(0)
    rows = []
    for length in args.lengths:
        q, k, v = (rng.standard_normal((1, 1, length, args.dim)).astype(np.float32) for _ in range(3))
        dense = peak_bytes(lambda q=q, k=k, v=v: backend.attention(q, k, v))
        tiled = peak_bytes(lambda q=q, k=k, v=v: backend.tiled_attention(q, k, v, args.block, args.block))
        rows.append((length, dense, tiled))

    print(f"one head, d = {args.dim}, float32, tiled blocks {args.block} x {args.block}; peak bytes (tracemalloc)")
    print(f"{'L':>6} {'dense':>14} {'tiled':>14} {'dense/tiled':>12}")
    for length, dense, tiled in rows:
        print(f"{length:>6} {dense:>14,} {tiled:>14,} {dense / tiled:>12.1f}")
    lengths = [row[0] for row in rows]
    print(f"fitted slope of log(peak) on log(L): dense {slope(lengths, [r[1] for r in rows]):.2f}, "
          f"tiled {slope(lengths, [r[2] for r in rows]):.2f}  (2 = quadratic, 1 = linear)")


if __name__ == "__main__":
    main()
