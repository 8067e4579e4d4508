"""The mutant x property kill matrix: for every mutant in tests/mutants/, which properties reject it.

For each profile asked for (quick and default unless told), prints per mutant how many of the
properties it is run against reject it (a failed check or an error the backend raised) and the
time until the first rejection, then the kill rate, the median time to the first failure, and
the properties that rejected none of the mutants.

By default each mutant is run against the properties its module's REJECTED_BY lists (the
matrix the teeth test asserts); ``--all-properties`` runs every mutant against the whole
catalogue (slow: mutants x properties).

Usage: python benchmarks/kill_matrix.py [--profile quick --profile default] [--module NAME ...]
       [--all-properties] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from hypothesis.database import InMemoryExampleDatabase

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnspec.runner import RunOptions, run_property
from nnspec.spec_loader import load_catalogue
from tests.test_mutants import expected_properties, mutant_divergences, mutant_table


def run_profile(profile: str, mutants: list, catalogue, all_properties: bool, seed: int) -> None:
    rejected_somewhere: set[str] = set()
    killed, first_failures = 0, []
    started = time.perf_counter()
    run_against: set[str] = set()
    for module, mutant, patterns in mutants:
        backend = mutant()
        known = mutant_divergences(module, backend)
        options = RunOptions(profile=profile, seed=seed, database=InMemoryExampleDatabase())
        chosen = (
            [p.id for p in catalogue.properties]
            if all_properties
            else expected_properties(patterns, catalogue)
        )
        run_against.update(chosen)
        rejecting, first, clock = [], None, time.perf_counter()
        for property_id in chosen:
            record = run_property(catalogue.property(property_id), backend, options, known=known)
            if record.status == "fail" or record.message.startswith("the backend raised"):
                rejecting.append(property_id)
                if first is None:
                    first = time.perf_counter() - clock
        rejected_somewhere.update(rejecting)
        killed += bool(rejecting)
        if first is not None:
            first_failures.append(first)
        shown = f"{first:.2f} s" if first is not None else "never"
        print(
            f"  {module}.{mutant.__name__:<42} rejected by {len(rejecting):>3} of {len(chosen):>3}; "
            f"first failure after {shown}",
            flush=True,
        )
    median = statistics.median(first_failures) if first_failures else float("nan")
    print(
        f"profile {profile}: {killed} of {len(mutants)} mutants rejected ({killed / max(len(mutants), 1):.1%}), "
        f"median time to first failure {median:.2f} s, {time.perf_counter() - started:.0f} s in all"
    )
    silent = sorted(p for p in run_against if p not in rejected_somewhere)
    print(
        f"profile {profile}: properties run that rejected none of these mutants: {len(silent)}"
        + (f" ({', '.join(silent)})" if silent else "")
        + "\n",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", help="profiles to measure (default: quick and default)")
    parser.add_argument("--module", action="append", help="only mutants from these modules")
    parser.add_argument(
        "--all-properties", action="store_true", help="run every mutant against every property"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    catalogue = load_catalogue()
    mutants = [m for m in mutant_table() if not args.module or m[0] in args.module]
    for profile in args.profile or ["quick", "default"]:
        run_profile(profile, mutants, catalogue, args.all_properties, args.seed)


if __name__ == "__main__":
    main()
