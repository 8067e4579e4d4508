"""The whole mutant x property matrix: for every mutant in tests/mutants/, which properties reject it.

Prints, per mutant, how many properties reject it (a failed check or an error the backend raised),
then the kill rate and the properties that reject no mutant at all in this run.

Usage: python benchmarks/kill_matrix.py [--profile quick] [--module reference_mutants ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypothesis.database import InMemoryExampleDatabase

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnspec.runner import RunOptions, run_property
from nnspec.spec_loader import load_catalogue
from tests.test_mutants import mutant_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--module", action="append", help="only mutants from these modules")
    args = parser.parse_args()
    catalogue = load_catalogue()
    rejected_somewhere: set[str] = set()
    killed = 0
    started = time.perf_counter()
    mutants = [m for m in mutant_table() if not args.module or m[0] in args.module]
    for module, mutant, _ in mutants:
        backend = mutant()
        options = RunOptions(profile=args.profile, seed=0, database=InMemoryExampleDatabase())
        rejecting = []
        for prop in catalogue.properties:
            record = run_property(prop, backend, options)
            if record.status == "fail" or record.message.startswith("the backend raised"):
                rejecting.append(prop.id)
        rejected_somewhere.update(rejecting)
        killed += bool(rejecting)
        print(f"{module}.{mutant.__name__:<40} rejected by {len(rejecting):>3} of {len(catalogue.properties)}", flush=True)
    print(f"\n{killed} of {len(mutants)} mutants rejected ({killed / max(len(mutants), 1):.0%}) "
          f"in {time.perf_counter() - started:.0f} s, profile {args.profile}")
    silent = sorted(p.id for p in catalogue.properties if p.id not in rejected_somewhere)
    print(f"properties that rejected none of these mutants: {len(silent)}" + (f" ({', '.join(silent)})" if silent else ""))


if __name__ == "__main__":
    main()
