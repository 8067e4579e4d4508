"""Every speed and scale figure of issue 12, measured side by side in one run, as one table.

1. examples/s of nnspec's checker, of a naive ``hypothesis.extra.numpy.arrays`` loop and of the
   bare backend call (NumPy backend), for the benchmark property and one property of each family:
   attention with masks, a recurrent cell, a gradient property;
2. the default catalogue as ``nnspec run`` runs it: jax:cpu alone with a cold persistent
   compilation cache, then numpy + torch:cpu + jax:cpu with that cache warm (wall time, and the
   share of jax:cpu's time spent compiling, from the records' ``compile_s``), then the same with
   ``--workers 2`` (speedup, and whether the records are identical apart from timings);
3. the median time for the default profile to reject a mutant (``benchmarks/kill_matrix.py``).

Usage: python benchmarks/issue12.py [--examples 300] [--repeat 3] [--topic T ...] [--keep DIR] [--skip-examples] [--skip-catalogue]
       [--skip-kill] [--kill-module MODULE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.extra import numpy as hnp

from nnspec import oracles
from nnspec.backends.numpy import NumpyBackend
from nnspec.runner import RunOptions, run_property
from nnspec.spec_loader import load_catalogue

ROOT = Path(__file__).resolve().parent.parent
NNSPEC = [sys.executable, "-m", "nnspec.cli"]
CATALOGUE_TARGETS = ["numpy", "torch:cpu", "jax:cpu"]
TIMINGS = ("time_s", "compile_s")

Pick = Callable[[int, int], int]
Arrays = dict[str, np.ndarray]


@dataclass
class Workload:
    """One property's work outside nnspec: the arrays it draws (by shape) and the call plus check."""

    property: str
    family: str
    shapes: Callable[[Pick], dict[str, tuple[tuple[int, ...], Any]]]
    check: Callable[[Any, Arrays], None]


def _attention_shapes(pick: Pick, mask: bool) -> dict[str, tuple[tuple[int, ...], Any]]:
    batch, heads, q_len, k_len, dim = pick(1, 3), pick(1, 3), pick(1, 12), pick(1, 12), pick(1, 16)
    shapes: dict[str, tuple[tuple[int, ...], Any]] = {
        "q": ((batch, heads, q_len, dim), np.float64),
        "k": ((batch, heads, k_len, dim), np.float64),
    }
    if mask:
        shapes["v"] = ((batch, heads, k_len, dim), np.float64)
        shapes["mask"] = ((batch, 1, q_len, k_len), np.bool_)
    return shapes


def _lstm_shapes(
    pick: Pick, batch: int = 3, inputs: int = 8, hidden: int = 8
) -> dict[str, tuple[tuple[int, ...], Any]]:
    """The LSTM cell's arrays, sizes drawn up to the spec's bounds."""
    batch, inputs, hidden = pick(1, batch), pick(1, inputs), pick(1, hidden)
    return {
        "x": ((batch, inputs), np.float64),
        "h": ((batch, hidden), np.float64),
        "c": ((batch, hidden), np.float64),
        "w_ih": ((4 * hidden, inputs), np.float64),
        "w_hh": ((4 * hidden, hidden), np.float64),
        "b": ((4 * hidden,), np.float64),
    }


def _rows_sum_to_one(backend: Any, a: Arrays) -> None:
    weights = backend.attention_weights(a["q"], a["k"])
    assert np.allclose(weights.sum(axis=-1), 1.0)


def _masked_attention(backend: Any, a: Arrays) -> None:
    mask = a["mask"].copy()
    mask[..., 0] = True  # every query may attend somewhere
    out = backend.attention(a["q"], a["k"], a["v"], mask=mask)
    assert np.allclose(out, oracles.attention(a["q"], a["k"], a["v"], mask), atol=1e-9)


def _params(a: Arrays) -> Arrays:
    return {"w_ih": a["w_ih"], "w_hh": a["w_hh"], "b": a["b"]}


def _lstm_cell(backend: Any, a: Arrays) -> None:
    h, c = backend.lstm_cell(a["x"], a["h"], a["c"], _params(a))
    expected_h, expected_c = oracles.lstm_cell(a["x"], a["h"], a["c"], _params(a))
    assert np.allclose(c, expected_c, atol=1e-9) and np.allclose(h, expected_h, atol=1e-9)


def _cell_state_jacobian(backend: Any, a: Arrays) -> None:
    params = _params(a)
    value, pullback = backend.vjp(lambda c: backend.lstm_cell(a["x"], a["h"], c, params)[1], a["c"])
    rows = []
    for index in range(value.size):
        basis = np.zeros(value.size)
        basis[index] = 1.0
        rows.append(np.asarray(pullback(basis.reshape(value.shape))[0]).reshape(-1))
    jacobian = np.stack(rows)
    forget = oracles.lstm_gates(a["x"], a["h"], params)["f"].reshape(-1)
    assert np.allclose(np.diag(jacobian), forget, atol=1e-6)


WORKLOADS = [
    Workload(
        "softmax.attention_weights.rows_sum_to_one",
        "benchmark",
        lambda p: _attention_shapes(p, False),
        _rows_sum_to_one,
    ),
    Workload(
        "masking.arbitrary.matches_oracle",
        "attention with masks",
        lambda p: _attention_shapes(p, True),
        _masked_attention,
    ),
    Workload("lstm.cell.matches_equations", "recurrent cell", _lstm_shapes, _lstm_cell),
    Workload(
        "lstm.gradient.cell_state_jacobian_is_forget_gate",
        "gradient",
        lambda p: _lstm_shapes(p, 2, 4, 5),
        _cell_state_jacobian,
    ),
]


def nnspec_rate(workload: Workload, examples: int) -> float:
    prop = load_catalogue().property(workload.property)
    options = RunOptions(profile="default", seed=0, database=InMemoryExampleDatabase(), max_examples=examples)
    started = time.perf_counter()
    record = run_property(prop, NumpyBackend(), options)
    elapsed = time.perf_counter() - started
    assert record.status == "pass", record.message
    return record.examples / elapsed


def naive_rate(workload: Workload, examples: int) -> float:
    backend, count = NumpyBackend(), 0

    @st.composite
    def inputs(draw: st.DrawFn) -> Arrays:
        shapes = workload.shapes(lambda low, high: draw(st.integers(low, high)))
        floats = st.floats(-3, 3, allow_nan=False, width=64)
        return {
            name: draw(hnp.arrays(dtype, shape, elements=floats if dtype is np.float64 else st.booleans()))
            for name, (shape, dtype) in shapes.items()
        }

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(inputs())
    def check(arrays: Arrays) -> None:
        nonlocal count
        count += 1
        workload.check(backend, arrays)

    started = time.perf_counter()
    check()
    return count / (time.perf_counter() - started)


def bare_rate(workload: Workload, examples: int) -> float:
    backend, rng = NumpyBackend(), np.random.default_rng(0)
    drawn = []
    for _ in range(examples):
        shapes = workload.shapes(lambda low, high: int(rng.integers(low, high + 1)))
        drawn.append(
            {
                name: rng.standard_normal(shape) if dtype is np.float64 else rng.random(shape) < 0.5
                for name, (shape, dtype) in shapes.items()
            }
        )
    started = time.perf_counter()
    for arrays in drawn:
        workload.check(backend, arrays)
    return examples / (time.perf_counter() - started)


def examples_per_second(examples: int, repeat: int) -> list[str]:
    lines = [
        f"1. examples/s, numpy backend, {examples} examples, median of {repeat} runs",
        f"   {'family':<22}{'property':<50}{'nnspec':>8}{'naive':>8}{'bare':>9}{'/naive':>8}{'/bare':>7}",
    ]
    for workload in WORKLOADS:
        rates = [
            statistics.median(function(workload, examples) for _ in range(repeat))
            for function in (nnspec_rate, naive_rate, bare_rate)
        ]
        ours, naive, bare = rates
        lines.append(
            f"   {workload.family:<22}{workload.property:<50}{ours:>8.0f}{naive:>8.0f}{bare:>9.0f}"
            f"{ours / naive:>7.1f}x{ours / bare:>7.1%}"
        )
        print(lines[-1], flush=True)
    return lines


def nnspec_run(arguments: list[str], out: Path, cache: str) -> tuple[float, int, list[dict[str, Any]]]:
    """Wall seconds, exit status and records of one ``nnspec run`` in a fresh process."""
    environment = {**os.environ, "NNSPEC_JAX_CACHE": cache, "NNSPEC_DATABASE": str(out.parent / "database")}
    command = [*NNSPEC, "run", *arguments, "--profile", "default", "--no-claims", "-q", "--json", str(out)]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT)
    wall = time.perf_counter() - started
    if finished.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {finished.returncode}:\n{finished.stderr[-2000:]}")
    return wall, finished.returncode, json.loads(out.read_text())["results"]


def _compile_share(records: list[dict[str, Any]], target: str) -> tuple[float, float]:
    chosen = [r for r in records if r["backend"] == target]
    return sum(r["time_s"] for r in chosen), sum(r.get("compile_s") or 0.0 for r in chosen)


def differences(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[str]:
    """Where two runs' records differ, timings aside: one line per (property, target, field)."""
    if [(r["property"], r["backend"]) for r in first] != [(r["property"], r["backend"]) for r in second]:
        return ["the two runs hold different (property, target) pairs"]
    found = []
    for one, other in zip(first, second, strict=True):
        for key in sorted(set(one) | set(other)):
            if key not in TIMINGS and one.get(key) != other.get(key):
                shown = f"{str(one.get(key))[:80]!r} vs {str(other.get(key))[:80]!r}"
                found.append(f"{one['property']} [{one['backend']}] {key}: {shown}")
    return found


def catalogue(folder: Path, topics: list[str]) -> list[str]:
    cache = str(folder / "jax-cache")
    selection = [word for topic in topics for word in ("--topic", topic)]
    targets = [word for target in CATALOGUE_TARGETS for word in ("-b", target)] + selection
    cold_wall, _, cold = nnspec_run(["-b", "jax:cpu", *selection], folder / "cold.json", cache)
    cold_time, cold_compile = _compile_share(cold, "jax:cpu")
    serial_wall, serial_code, serial = nnspec_run(targets, folder / "serial.json", cache)
    warm_time, warm_compile = _compile_share(serial, "jax:cpu")
    parallel_wall, parallel_code, parallel = nnspec_run(
        [*targets, "--workers", "2"], folder / "workers2.json", cache
    )
    differing = differences(serial, parallel)
    statuses_agree = [r["status"] for r in serial] == [r["status"] for r in parallel]
    per_target = ", ".join(
        f"{target} {_compile_share(serial, target)[0]:.1f} s"
        for target in sorted({r["backend"] for r in serial})
    )
    scope = f"topics {', '.join(topics)}" if topics else "the whole catalogue"
    return [
        f"2. default profile over {scope}, nnspec run --profile default --no-claims, one process each",
        f"   jax:cpu cold cache: wall {cold_wall:.1f} s; property time {cold_time:.1f} s, compiling "
        f"{cold_compile:.1f} s = {cold_compile / cold_time:.0%} of jax time ({cold_compile / cold_wall:.0%} of wall)",
        f"   numpy + torch:cpu + jax:cpu, warm cache, serial: wall {serial_wall:.1f} s (exit {serial_code}); "
        f"{len(serial)} records; property time by target: {per_target}",
        f"   jax:cpu warm cache: property time {warm_time:.1f} s, compiling {warm_compile:.1f} s "
        f"= {warm_compile / warm_time:.0%} of jax time",
        f"   --workers 2: wall {parallel_wall:.1f} s (exit {parallel_code}), speedup {serial_wall / parallel_wall:.2f}x "
        f"over serial; records identical apart from timings: {'yes' if not differing else 'NO'}"
        f" (statuses {'agree' if statuses_agree else 'DIFFER'})",
        *(f"     differs: {line}" for line in differing[:8]),
    ]


def kill_median(modules: list[str]) -> list[str]:
    command = [sys.executable, str(ROOT / "benchmarks" / "kill_matrix.py"), "--profile", "default"]
    for module in modules:
        command += ["--module", module]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    summary = re.search(
        r"profile default: (\d+) of (\d+) mutants rejected.*median time to first failure ([\d.na]+) s",
        finished.stdout,
    )
    if finished.returncode != 0 or summary is None:
        return [f"3. kill matrix failed (exit {finished.returncode}): {finished.stderr[-500:]}"]
    killed, total, median = summary.groups()
    scope = ", ".join(modules) if modules else "every module"
    return [
        f"3. default profile against the mutants of {scope}: {killed} of {total} rejected, "
        f"median time to the first rejection {median} s ({time.perf_counter() - started:.0f} s in all)"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-examples", action="store_true", help="leave out the examples/s table")
    parser.add_argument("--keep", type=Path, help="keep the catalogue runs' documents in this folder")
    parser.add_argument(
        "--skip-catalogue", action="store_true", help="leave out the catalogue runs (minutes)"
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        help="run only these topics in the catalogue runs (default: the whole catalogue)",
    )
    parser.add_argument("--skip-kill", action="store_true", help="leave out the kill-matrix median")
    parser.add_argument(
        "--kill-module",
        action="append",
        default=None,
        help="only the mutants of these modules for the median (default: every module)",
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs", flush=True)
    lines = [] if args.skip_examples else examples_per_second(args.examples, args.repeat)
    if not args.skip_catalogue and args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        lines += catalogue(args.keep, args.topic)
    elif not args.skip_catalogue:
        with tempfile.TemporaryDirectory() as folder:
            lines += catalogue(Path(folder), args.topic)
    if not args.skip_kill:
        lines += kill_median(args.kill_module or [])
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
