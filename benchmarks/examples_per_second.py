"""Examples per second, side by side in one run, for one property (attention weight rows sum to one):

  (a) nnspec's checker: Hypothesis draws sizes, dtype, regime and a seed; NumPy fills the arrays;
  (b) a naive Hypothesis loop drawing every array element through hypothesis.extra.numpy.arrays;
  (c) the bare backend call in a loop, on inputs of the same sizes, with the same check.

Usage: python benchmarks/examples_per_second.py [--examples N] [--repeat K]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.extra import numpy as hnp

from nnspec.backends.numpy import NumpyBackend
from nnspec.runner import RunOptions, run_property
from nnspec.spec_loader import load_catalogue

PROPERTY = "softmax.attention_weights.rows_sum_to_one"


def nnspec_checker(examples: int) -> float:
    prop = load_catalogue().property(PROPERTY)
    options = RunOptions(profile="default", seed=0, database=InMemoryExampleDatabase(), max_examples=examples)
    started = time.perf_counter()
    record = run_property(prop, NumpyBackend(), options)
    elapsed = time.perf_counter() - started
    assert record.status == "pass", record.message
    return record.examples / elapsed


def naive_arrays(examples: int) -> float:
    backend = NumpyBackend()
    count = 0

    @st.composite
    def inputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
        batch, heads = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        q_len, k_len, dim = draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.integers(1, 16))
        elements = st.floats(-10, 10, allow_nan=False, width=64)
        q = draw(hnp.arrays(np.float64, (batch, heads, q_len, dim), elements=elements))
        k = draw(hnp.arrays(np.float64, (batch, heads, k_len, dim), elements=elements))
        return q, k

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(inputs())
    def check(pair: tuple[np.ndarray, np.ndarray]) -> None:
        nonlocal count
        count += 1
        weights = backend.attention_weights(*pair)
        assert np.allclose(weights.sum(axis=-1), 1.0)

    started = time.perf_counter()
    check()
    return count / (time.perf_counter() - started)


def bare_calls(examples: int) -> float:
    backend = NumpyBackend()
    rng = np.random.default_rng(0)
    shapes = [(int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 13)), int(rng.integers(1, 13)),
               int(rng.integers(1, 17))) for _ in range(examples)]
    inputs = [(rng.standard_normal((b, h, lq, d)), rng.standard_normal((b, h, lk, d))) for b, h, lq, lk, d in shapes]
    started = time.perf_counter()
    for q, k in inputs:
        weights = backend.attention_weights(q, k)
        assert np.allclose(weights.sum(axis=-1), 1.0)
    return examples / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = {"(a) nnspec checker": nnspec_checker, "(b) naive arrays() loop": naive_arrays,
            "(c) bare backend call": bare_calls}
    medians = {}
    print(f"property {PROPERTY}, numpy backend, {args.examples} examples, median of {args.repeat} runs")
    for label, function in rows.items():
        rates = [function(args.examples) for _ in range(args.repeat)]
        medians[label] = statistics.median(rates)
        print(f"{label:<26} {medians[label]:>10.0f} examples/s   (runs: {', '.join(f'{r:.0f}' for r in rates)})")
    a, b, c = medians.values()
    print(f"nnspec / naive = {a / b:.1f}x;  nnspec / bare call = {a / c:.2f}")


if __name__ == "__main__":
    main()
