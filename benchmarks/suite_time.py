"""The whole catalogue on each CPU backend, one backend at a time, in one run: wall time,
examples run, examples per second, and for JAX the share of its time spent compiling.

Usage: python benchmarks/suite_time.py [--profile default] [--backend numpy --backend torch:cpu ...]
"""

from __future__ import annotations

import argparse
import time

from hypothesis.database import InMemoryExampleDatabase

from nnspec.backends.discovery import resolve
from nnspec.runner import RunOptions, RunPlan, run
from nnspec.spec_loader import load_catalogue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", action="append", default=None)
    args = parser.parse_args()
    catalogue = load_catalogue()
    selectors = args.backend or ["numpy", "torch:cpu", "jax:cpu"]
    print(f"{len(catalogue.properties)} properties, profile {args.profile}, seed {args.seed}")
    print(f"{'target':<14}{'wall s':>9}{'examples':>10}{'examples/s':>12}{'pass':>6}{'fail':>6}"
          f"{'error':>7}{'skip':>6}{'xfail':>7}  compile share")
    for selector in selectors:
        targets = [t for t in resolve(selector) if t.is_available]
        if not targets:
            print(f"{selector:<14} unavailable")
            continue
        target = targets[0]
        options = RunOptions(profile=args.profile, seed=args.seed, database=InMemoryExampleDatabase())
        started = time.perf_counter()
        document = run(RunPlan(catalogue, [(selector, target)]), options)
        wall = time.perf_counter() - started
        examples = sum(r.examples for r in document.results)
        counts = document.counts()
        share = ""
        compiling = [r.compile_s for r in document.results if r.compile_s is not None]
        if compiling:  # the pairs ran in worker processes: their records carry the compile time
            share = f"{sum(compiling) / wall:.0%} of wall time"
        print(f"{target.target:<14}{wall:>9.1f}{examples:>10}{examples / wall:>12.0f}{counts['pass']:>6}"
              f"{counts['fail']:>6}{counts['error']:>7}{counts['skip']:>6}{counts['xfail']:>7}  {share}")


if __name__ == "__main__":
    main()
