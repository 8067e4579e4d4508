"""``python -m nnspec.backends.ecosystem``: run every ecosystem adapter and write the matrix.

Each adapter runs in a process of its own (keras fixes its backend per process) as
``nnspec run --backend NAME:cpu --property ID ... --no-claims``, on the properties that reach the
primitives the adapter itself provides: the others would re-check its parent backend, whose
results belong to the parent's row. The matrix counts passed, failed (MUST, and SHOULD or MAY,
separately), divergent (a failure the adapter's divergence file declares) and not applicable,
and lists every failure with its reproduce line.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from nnspec import divergences, registry
from nnspec.backends.base import PRIMITIVES, Backend
from nnspec.backends.ecosystem import ADAPTERS
from nnspec.spec_loader import Catalogue, load_catalogue

RUN = "import sys; from nnspec.cli import main; sys.exit(main(sys.argv[1:]))"


def adapter_class(name: str) -> type[Backend]:
    module, _, cls = ADAPTERS[name].partition(":")
    backend_class: type[Backend] = getattr(importlib.import_module(module), cls)
    return backend_class


def own_primitives(backend_class: type) -> list[str]:
    """The primitives an adapter's own classes define (not those it inherits from a shipped backend)."""
    own: set[str] = set()
    for cls in backend_class.__mro__:
        if cls.__module__.startswith("nnspec.backends.ecosystem"):
            own.update(name for name in PRIMITIVES if name in vars(cls))
    return [name for name in PRIMITIVES if name in own]


def reached(backend_class: type, own: list[str]) -> set[str]:
    """The primitives whose results the adapter's own code decides: its own, and the torch
    backend's multi-head attention, which is composed from ``self.attention``."""
    from nnspec.backends.torch import TorchBackend

    reach = set(own)
    if "attention" in own and "multi_head_attention" not in own and issubclass(backend_class, TorchBackend):
        reach.add("multi_head_attention")
    return reach


@functools.cache
def _catalogue() -> Catalogue:
    """The shipped catalogue, loaded and validated once for every adapter of the run."""
    return load_catalogue()


def reaching_properties(reach: set[str]) -> list[str]:
    catalogue = _catalogue()
    return sorted(
        prop.id
        for prop in catalogue.properties
        if reach & {*registry.get(prop.check).requires, *prop.requires}
    )


def run_adapter(name: str, profile: str, seed: int, results: Path, reuse: bool = False) -> dict[str, Any]:
    """Run one adapter in its own process (or, with ``reuse``, read its earlier results); its row."""
    backend_class = adapter_class(name)
    ok, reason = backend_class.available("cpu")
    own = own_primitives(backend_class)
    row: dict[str, Any] = {"name": name, "own": own, "reason": reason, "records": [], "seconds": 0.0}
    if not ok:
        return row
    properties = reaching_properties(reached(backend_class, own))
    out = results / f"{name}.json"
    command = [
        sys.executable,
        "-c",
        RUN,
        "run",
        "--backend",
        f"{name}:cpu",
        "--profile",
        profile,
        "--seed",
        str(seed),
        "--no-claims",
        "--quiet",
        "--json",
        str(out),
    ]
    for prop in properties:
        command += ["--property", prop]
    if not (reuse and out.is_file()):
        out.unlink(missing_ok=True)
        completed = subprocess.run(command, capture_output=True, text=True)
        if not out.is_file():
            row["reason"] = (
                f"nnspec run exited {completed.returncode} without results: {completed.stderr.strip()[-500:]}"
            )
            return row
    row["records"] = json.loads(out.read_text(encoding="utf-8"))["results"]
    row["seconds"] = sum(record.get("time_s") or 0.0 for record in row["records"])
    known = (
        divergences.parse(
            Path(backend_class.divergences).read_text(encoding="utf-8"), str(backend_class.divergences)
        )
        if backend_class.divergences
        else []
    )
    for record in row["records"]:
        # The runner applies the class's own divergence file; results kept from a run made before
        # it did (--reuse) get it here: a failure of a property the file lists, or whose minimal
        # counterexample is in a listed dtype.
        if record["status"] not in ("fail", "error"):
            continue
        dtype = (record.get("counterexample") or {}).get("dtype")
        entry = divergences.find(known, record["property"], record["backend"]) or next(
            (e for e in known if dtype in e.dtypes and e.matches(record["property"], record["backend"])), None
        )
        if entry is not None:
            scope = f" in {dtype}" if entry.dtypes else ""
            record["status"], record["divergence"] = "xfail", f"{entry.reason}{scope}"
    return row


def tally(records: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"pass": 0, "MUST fail": 0, "SHOULD/MAY fail": 0, "divergent": 0, "not applicable": 0}
    for record in records:
        status = record["status"]
        if status in ("fail", "error"):
            counts["MUST fail" if record["level"] == "MUST" else "SHOULD/MAY fail"] += 1
        elif status == "xfail":
            counts["divergent"] += 1
        elif status == "skip":
            counts["not applicable"] += 1
        elif status in ("pass", "xpass"):
            counts["pass"] += 1
    return counts


def markdown(rows: list[dict[str, Any]], profile: str, seed: int) -> str:
    lines = [
        f"Profile `{profile}`, seed {seed}; each adapter on the properties that reach its own primitives.",
        "",
        "| adapter | own primitives | pass | MUST fail | SHOULD/MAY fail | divergent | not applicable | checking s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["reason"] and not row["records"]:
            lines.append(f"| `{row['name']}` | {', '.join(row['own'])} | unavailable: {row['reason']} ||||||")
            continue
        counts = tally(row["records"])
        lines.append(
            f"| `{row['name']}` | {', '.join(row['own'])} | "
            + " | ".join(str(v) for v in counts.values())
            + f" | {row['seconds']:.0f} |"
        )
    lines += ["", "Failures (not declared):", ""]
    for row in rows:
        for record in row["records"]:
            if record["status"] in ("fail", "error"):
                message = record["message"].splitlines()[0] if record["message"] else ""
                reproduce = f" (`{record['reproduce']}`)" if record.get("reproduce") else ""
                lines.append(
                    f"- `{record['backend']}` `{record['property']}` ({record['level']}, "
                    f"{record['status']}): {message}{reproduce}"
                )
    lines += ["", "Divergences (declared in each adapter's divergence file):", ""]
    for row in rows:
        by_reason: dict[str, list[str]] = {}
        for record in row["records"]:
            if record["status"] == "xfail":
                # The runner's message starts "known divergence: <reason>. "; the matrix's own is kept apart.
                reason = (
                    record.get("divergence")
                    or record["message"].removeprefix("known divergence: ").split(". ")[0]
                )
                by_reason.setdefault(reason, []).append(f"`{record['property']}`")
        for reason, properties in by_reason.items():
            lines.append(f"- `{row['name']}`, {len(properties)}: {reason}: {', '.join(properties)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nnspec.backends.ecosystem", description=__doc__.splitlines()[0]
    )
    parser.add_argument("adapters", nargs="*", metavar="ADAPTER", help=f"default: all of {sorted(ADAPTERS)}")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="read an adapter's results from --results when present instead of rerunning",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("build/ecosystem"),
        help="folder for each adapter's results JSON (default build/ecosystem)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("ecosystem/MATRIX.md"),
        help="the Markdown matrix (default ecosystem/MATRIX.md)",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.adapters if name not in ADAPTERS]
    if unknown:
        parser.error(f"unknown adapters {unknown}; expected some of {sorted(ADAPTERS)}")
    names = args.adapters or list(ADAPTERS)
    args.results.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        row = run_adapter(name, args.profile, args.seed, args.results, args.reuse)
        counts = tally(row["records"])
        print(f"{name:<20} {row['reason'] or counts} ({row['seconds']:.0f} s)", flush=True)
        rows.append(row)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(markdown(rows, args.profile, args.seed), encoding="utf-8")
    print(f"matrix: {args.output}")
    # A run where an adapter could not run, or failed a MUST property nobody declared, is not green.
    broken = any((row["reason"] and not row["records"]) or tally(row["records"])["MUST fail"] for row in rows)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
