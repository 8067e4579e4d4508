"""How much of a JAX run is compilation, and how much the persistent cache saves.

    .venv/bin/python benchmarks/jax_compile.py [--shapes 20] [--calls 10]

Prints three tables:

1. per-call time of each primitive on a new shape (trace + compile + run) against the same
   shape again (the jit cache hit), with the persistent cache off;
2. the share of wall time spent compiling when a workload draws ``--shapes`` distinct shapes and
   makes ``--calls`` calls per shape, as property tests do (measured by ``jax.monitoring``
   through :func:`nnspec.backends.jax.compile_stats`);
3. the same workload in two fresh processes sharing a new persistent cache directory: the second
   process loads executables instead of compiling them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

PRIMITIVES = ("softmax", "attention", "tiled_attention", "layer_norm", "lstm_cell")


def _calls(backend: Any, rng: np.random.Generator, size: int) -> dict[str, Callable[[], Any]]:
    """One call of each benchmarked primitive on inputs whose shape depends on ``size``."""
    a = backend.asarray
    batch, heads, length, dim, hidden = 2, 2, 3 + size, 4 + size % 5, 4 + size % 7
    q, k, v = (a(rng.standard_normal((batch, heads, length, dim))) for _ in range(3))
    x = a(rng.standard_normal((batch, length, 8 + size % 3)))
    width = x.shape[-1]
    cell = {"w_ih": a(rng.standard_normal((4 * hidden, 3))), "w_hh": a(rng.standard_normal((4 * hidden, hidden))),
            "b": a(rng.standard_normal(4 * hidden))}
    x_cell, h, c = (a(rng.standard_normal((batch, n))) for n in (3, hidden, hidden))
    return {
        "softmax": lambda: backend.softmax(q),
        "attention": lambda: backend.attention(q, k, v, is_causal=True),
        "tiled_attention": lambda: backend.tiled_attention(q, k, v, 2, 3),
        "layer_norm": lambda: backend.layer_norm(x, a(np.ones(width)), a(np.zeros(width))),
        "lstm_cell": lambda: backend.lstm_cell(x_cell, h, c, cell),
    }


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    out = call()
    for leaf in out if isinstance(out, tuple) else (out,):
        leaf.block_until_ready()
    return time.perf_counter() - start


def first_versus_cached() -> None:
    from nnspec.backends.jax import JaxBackend

    backend, rng = JaxBackend(), np.random.default_rng(0)
    print("1. per call, new shape vs same shape again (persistent cache off)")
    print(f"   {'primitive':<18}{'first call ms':>14}{'cached call ms':>16}{'ratio':>8}")
    for name, call in _calls(backend, rng, 101).items():
        first = _timed(call)
        cached = min(_timed(call) for _ in range(20))
        print(f"   {name:<18}{first * 1e3:>14.1f}{cached * 1e3:>16.3f}{first / cached:>8.0f}")


def workload(shapes: int, calls: int) -> dict[str, float]:
    """``shapes`` distinct shapes, ``calls`` calls of each primitive per shape; wall and compile time."""
    from nnspec.backends.jax import JaxBackend, compile_stats

    backend, rng = JaxBackend(), np.random.default_rng(1)
    before = compile_stats()
    start = time.perf_counter()
    for size in range(shapes):
        for call in _calls(backend, rng, size).values():
            for _ in range(calls):
                _timed(call)
    wall = time.perf_counter() - start
    after = compile_stats()
    delta = {key: after[key] - before[key] for key in after}
    return {"wall_seconds": wall, **delta}


def compile_share(shapes: int, calls: int) -> None:
    print(f"\n2. compile share: {shapes} distinct shapes x {len(PRIMITIVES)} primitives x {calls} calls each")
    for count in sorted({1, max(1, shapes // 4), shapes}):
        result = workload_in_subprocess(count, calls, "off")
        print(f"   {count:>3} shapes: wall {result['wall_seconds']:6.2f} s, compiling {result['compile_seconds']:6.2f} s "
              f"({100 * result['compile_seconds'] / result['wall_seconds']:4.1f} %), "
              f"{int(result['compilations'])} executables; of it trace {result['trace_seconds']:.2f} s, "
              f"lower {result['lower_seconds']:.2f} s, XLA {result['backend_compile_seconds']:.2f} s")


def workload_in_subprocess(shapes: int, calls: int, cache: str) -> dict[str, float]:
    environment = {**os.environ, "NNSPEC_JAX_CACHE": cache}
    environment.pop("JAX_COMPILATION_CACHE_DIR", None)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--worker", "--shapes", str(shapes), "--calls", str(calls)],
        capture_output=True, text=True, check=True, env=environment,
    )
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    measured["process_seconds"] = time.perf_counter() - start
    return measured


def persistent_cache(shapes: int, calls: int) -> None:
    print(f"\n3. persistent cache across processes ({shapes} shapes, {calls} calls each)")
    with tempfile.TemporaryDirectory() as directory:
        runs = [
            ("cache off", workload_in_subprocess(shapes, calls, "off")),
            ("cold cache", workload_in_subprocess(shapes, calls, directory)),
            ("warm cache", workload_in_subprocess(shapes, calls, directory)),
        ]
        entries = len(os.listdir(directory))
        size = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))
    for label, result in runs:
        print(f"   {label:<11} process {result['process_seconds']:6.2f} s, workload {result['wall_seconds']:6.2f} s, "
              f"compiling {result['compile_seconds']:6.2f} s ({100 * result['compile_seconds'] / result['wall_seconds']:4.1f} %), "
              f"persistent hits {int(result['persistent_cache_hits'])}")
    print(f"   cache directory: {entries} entries, {size / 1024:.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=20, help="distinct input shapes (default 20)")
    parser.add_argument("--calls", type=int, default=10, help="calls per primitive and shape (default 10)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        print(json.dumps(workload(arguments.shapes, arguments.calls)))
        return
    os.environ["NNSPEC_JAX_CACHE"] = "off"  # tables 1 and 2 measure compilation itself
    first_versus_cached()
    compile_share(arguments.shapes, arguments.calls)
    persistent_cache(arguments.shapes, arguments.calls)


if __name__ == "__main__":
    main()
