"""The ``nnspec`` command line."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnspec.errors import NnspecError

if TYPE_CHECKING:
    from nnspec.backends.base import Backend

STATUS_MARK = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "skip": "skip", "xfail": "xfail", "xpass": "XPASS"}


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}. Received: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0. Received: {text}")
        return value

    return parse


def _add_spec_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", action="append", metavar="PATH",
                        help="spec file or folder (repeatable; default: the specs shipped with nnspec)")


def _parser() -> argparse.ArgumentParser:
    from nnspec.runner import PROFILES

    parser = argparse.ArgumentParser(prog="nnspec", description="Property-based conformance checks for "
                                     "attention, masking, softmax, normalisation and recurrent cells.")
    parser.add_argument("--version", action="version", version=f"nnspec {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="check properties against backends")
    run.add_argument("--backend", "-b", action="append", metavar="NAME",
                     help="backend name (numpy, torch, torch:cuda, jax, ...) or 'package.module:Class'; "
                          "repeatable; default: every backend found")
    run.add_argument("--property", "-p", action="append", metavar="PATTERN",
                     help="property id or glob, e.g. 'attention.*' (repeatable)")
    run.add_argument("--topic", action="append", help="only these topics (repeatable)")
    run.add_argument("--profile", default="default", choices=sorted(PROFILES),
                     help="examples per property: quick 10, default 40, ci 60, thorough 400 (every profile is seeded)")
    run.add_argument("--seed", type=int, default=0, help="run seed; with the profile it fixes every draw (default 0)")
    run.add_argument("--max-examples", type=_positive(int), help="override the profile's examples per property")
    run.add_argument("--json", default="reports/latest.json", metavar="PATH",
                     help="results document (default reports/latest.json); records also stream to PATH.jsonl")
    run.add_argument("--html", metavar="PATH", help="also write the HTML compliance report")
    run.add_argument("--junitxml", metavar="PATH", help="also write JUnit XML")
    run.add_argument("--workers", "-j", type=_positive(int), default=1,
                     help="supervised worker processes (default 1; each pair's crash or hang is confined to it)")
    run.add_argument("--timeout", type=_positive(float), default=300.0,
                     help="seconds one property may take on one backend before it is an error (default 300)")
    run.add_argument("--memory-limit", type=_positive(int), metavar="MB",
                     help="resident memory one worker may use before its pair is an error (default: half the "
                          "physical memory divided by --workers; Linux only)")
    run.add_argument("--quiet", "-q", action="store_true", help="print only failures and the summary")
    run.add_argument("--no-claims", action="store_true",
                     help="leave the documents' claims out of the results (they are checked by default)")
    run.add_argument("--divergences", action="append", metavar="FILE",
                     help="a known-divergence file (the format of backends/divergences/*.txt) applied on top of "
                          "each backend's own (repeatable)")
    run.add_argument("--dtype", action="append", metavar="DTYPE",
                     help="check only this dtype: float64, float32, float16 or bfloat16 (repeatable; default: "
                          "every dtype of each property's domain)")
    run.add_argument("--require-targets", action="append", metavar="PATTERN",
                     help="target glob, e.g. 'torch:cuda*' (repeatable): exit with status 2 when a matching "
                          "target is unavailable or only skipped, so a GPU job cannot pass on a CPU")
    run.add_argument("--shard", metavar="I/N",
                     help="run only shard I of N (1-based) of the (property, target) pairs, balanced by "
                          "--shard-durations; merge the shards' JSON with 'nnspec report'")
    run.add_argument("--shard-durations", metavar="PATH",
                     help="an earlier run's results .json/.jsonl whose times balance the shards (the same file "
                          "on every shard; default: an estimate from examples and backend)")
    _add_spec_option(run)

    listing = commands.add_parser("list", help="list the properties")
    listing.add_argument("--topic", action="append")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    listing.add_argument("--reaches", metavar="PRIMITIVE",
                         help="only the properties that call this backend primitive, directly or through a "
                              "composite built from it (e.g. attention)")
    _add_spec_option(listing)

    lint = commands.add_parser("lint", help="validate spec files against the schema")
    lint.add_argument("paths", nargs="*", help="spec files or folders (default: the shipped specs)")

    backends = commands.add_parser("backends", help="list the backends found, their targets, and why any is unavailable")
    backends.add_argument("--detail", action="store_true",
                          help="also, per backend class: the primitives it implements itself, those it inherits "
                               "and from which class, stubs, composites and fused kernels, its divergence entries")

    report = commands.add_parser("report", help="merge result JSON files into one HTML report")
    report.add_argument("inputs", nargs="+", help="results .json (or .jsonl) files")
    report.add_argument("-o", "--output", default="reports/compliance.html")
    report.add_argument("--json", metavar="PATH", help="also write the merged results document")
    report.add_argument("--history", action="store_true",
                        help="the inputs are successive runs of the same pairs, oldest first: report the "
                             "latest with a run-to-run trend of all of them")

    diff = commands.add_parser("diff", help="what changed between two runs")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.add_argument("--html", metavar="PATH", help="also render the difference as HTML")
    diff.add_argument("--fail-on-regression", action="store_true",
                      help="exit with status 1 when the new run has failures the old one did not")

    claims = commands.add_parser("claims", help="check the documents' own numeric and mathematical claims")
    claims.add_argument("--verdict", choices=["holds", "imprecise", "refuted", "unchecked"], action="append")
    claims.add_argument("--format", choices=["table", "json"], default="table")
    _add_spec_option(claims)

    gpu = commands.add_parser("gpu-check", help="run every CUDA/GPU target; fails when no GPU target ran")
    gpu.add_argument("--out", default="reports/gpu", help="folder for JSON, HTML and summary (default reports/gpu)")
    gpu.add_argument("--install", action="store_true",
                     help="first pip-install the GPU builds matching the NVIDIA driver from the project's extras")
    gpu.add_argument("--max-examples", type=int, help="override gpu-check's examples per property")

    coverage = commands.add_parser("coverage", help="which document questions the properties cover")
    coverage.add_argument("--format", choices=["table", "json"], default="table")
    _add_spec_option(coverage)
    return parser


def _version() -> str:
    from nnspec import __version__

    return __version__


def _select(catalogue: Any, patterns: list[str] | None, topics: list[str] | None) -> list[Any]:
    chosen = catalogue.properties
    if topics:
        unknown = sorted(set(topics) - {p.topic for p in chosen})
        if unknown:
            raise NnspecError(f"no property has topic {unknown}; topics: {sorted({p.topic for p in chosen})}")
        chosen = [p for p in chosen if p.topic in topics]
    if patterns:
        unmatched = [pattern for pattern in patterns
                     if not any(fnmatch.fnmatchcase(p.id, pattern) for p in chosen)]
        if unmatched:
            raise NnspecError(f"no property matches {unmatched}; see 'nnspec list'")
        chosen = [p for p in chosen if any(fnmatch.fnmatchcase(p.id, pattern) for pattern in patterns)]
        if not chosen:
            raise NnspecError(f"no property matches {patterns}; see 'nnspec list'")
    return chosen


def _print_failure(record: Any, prop: Any) -> None:
    from nnspec.runner import describe_failure

    print("\n" + describe_failure(record, prop.statement))


def _check_output(path: str | None, option: str) -> None:
    """Refuse, before the run starts, an output path that cannot be written."""
    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise NnspecError(f"{option} {path!r} is a folder; expected a file path")
    folder = target.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NnspecError(f"{option} {path!r}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise NnspecError(f"{option} {path!r} cannot be written (no write permission in {existing})")


def _write_outputs(document: Any, json_path: Path, args: argparse.Namespace) -> None:
    """Every output, each atomically (a temporary file in the same folder, then a rename)."""
    from nnspec.reports.junit import write_junit

    document.write(json_path)
    writers: list[tuple[Any, Any]] = []
    if args.html:
        from nnspec.reports.html import write_report

        writers.append((write_report, args.html))
    if args.junitxml:
        writers.append((write_junit, args.junitxml))
    for write, path in writers:
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            write(document, temporary)
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)


def _command_run(args: argparse.Namespace) -> int:
    from nnspec.divergences import load_all
    from nnspec.reports.console import output_lines, summarise_skips
    from nnspec.runner import (
        RunOptions,
        RunPlan,
        check_dtypes,
        exit_status,
        failed_must,
        prepare,
        run,
        select_targets,
    )
    from nnspec.spec_loader import load_catalogue

    for path, option in ((args.json, "--json"), (args.html, "--html"), (args.junitxml, "--junitxml")):
        _check_output(path, option)
    # A spec file given alone may depend on properties in the other shipped files.
    catalogue = load_catalogue(args.spec, partial=any(Path(path).is_file() for path in args.spec or []))
    chosen = _select(catalogue, args.property, args.topic)
    divergence_files = tuple(args.divergences or ())
    load_all(divergence_files)  # a missing or malformed file is a usage error before anything runs
    targets, unavailable = select_targets(args.backend)
    options = RunOptions(profile=args.profile, seed=args.seed, timeout=args.timeout, max_examples=args.max_examples,
                         spec_paths=args.spec, memory_limit_mb=args.memory_limit,
                         divergence_files=divergence_files, dtypes=tuple(dict.fromkeys(args.dtype or ())))
    plan = RunPlan(catalogue, targets, chosen, spec_paths=args.spec)
    pool = prepare(plan, divergence_files)
    check_dtypes(options.dtypes, pool.instances)
    shard_note = ""
    if args.shard:
        from nnspec.sharding import parse_shard, restrict

        shard = parse_shard(args.shard)
        total = restrict(plan, options, shard, args.shard_durations)
        shard_note = f", shard {shard}: {len(plan.pairs())} of {total} pairs"
        if not plan.selected:
            # Only possible with more shards than pairs (a longest-first split leaves none empty otherwise).
            print(f"nnspec run: shard {shard} has no pair: {total} pairs split into {shard.count} shards; "
                  "the other shards check every pair", file=sys.stderr)
    elif args.shard_durations:
        raise NnspecError(f"--shard-durations {args.shard_durations!r} is only read with --shard I/N")
    json_path = Path(args.json)
    jsonl_path = json_path.with_suffix(".jsonl")
    available = sorted({t.target for _, t in plan.targets})
    print(f"nnspec {_version()}: {len(chosen)} properties x {len(plan.targets)} targets "
          f"({', '.join(available) or 'none available'}), profile {args.profile}, seed {args.seed}{shard_note}")
    for name, reason in unavailable.items():
        print(f"  {name}: unavailable ({reason})")
    if args.require_targets:
        from nnspec.gpu import missing_required

        problems = missing_required(args.require_targets, available, unavailable)
        if problems:
            print("\n".join(["nnspec run: required targets cannot run:", *problems]), file=sys.stderr)
            return 2

    def progress(record: Any, done: int, total: int) -> None:
        if args.quiet and record.status not in ("fail", "error", "xpass"):
            return
        if record.backend in unavailable and record.status == "skip":
            return  # listed once above, with its reason, and counted in the summary
        ratio = f" worst {record.ratio:.2g} of tolerance" if record.ratio is not None else ""
        reason = f" ({record.message.splitlines()[0]})" if record.status == "skip" and record.message else ""
        print(f"[{done:>{len(str(total))}}/{total}] {STATUS_MARK[record.status]:<5} {record.property} "
              f"[{record.backend}] {record.time_s:.2f}s{ratio}{reason}", flush=True)

    document = run(plan, options, jsonl=jsonl_path, progress=progress, workers=args.workers,
                   argv=["nnspec", *sys.argv[1:]], pool=pool)
    for warning in document.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    document.environment["unavailable_targets"] = unavailable
    if document.status != "complete":
        # A second Ctrl-C must not cut the outputs short: they take well under a second.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            _write_outputs(document, json_path, args)
        finally:
            signal.signal(signal.SIGINT, previous)
        print(f"\n{document.status}: {len(document.results)} of {len(plan.pairs())} results kept in "
              f"{json_path} (and {jsonl_path})", file=sys.stderr)
        return exit_status(document)
    if not args.no_claims and catalogue.claims:
        from nnspec.claims import check_all

        document.claims = check_all(catalogue)
    _write_outputs(document, json_path, args)
    for record in document.results:
        if record.status in ("fail", "error"):
            _print_failure(record, catalogue.property(record.property))
    counts = document.counts()
    print("\n" + ", ".join(f"{counts[s]} {s}" for s in ("pass", "fail", "error", "skip", "xfail", "xpass")),
          f"in {sum(r.time_s for r in document.results):.1f} s of checking")
    for line in summarise_skips(document.results):
        print(line)
    print("outputs:", *output_lines({"results": json_path, "records": jsonl_path, "report": args.html,
                                     "junit": args.junitxml}), sep="\n")
    if args.require_targets:
        from nnspec.gpu import unexercised_required

        problems = unexercised_required(args.require_targets, document)
        if problems:
            print("\n".join(["nnspec run: required targets checked nothing:", *problems]), file=sys.stderr)
            return 2
    broken = failed_must(document)
    if broken:
        print(f"{len(broken)} MUST propert{'y' if len(broken) == 1 else 'ies'} failed or errored", file=sys.stderr)
    return exit_status(document)


def _command_list(args: argparse.Namespace) -> int:
    from nnspec.spec_loader import load_catalogue

    catalogue = load_catalogue(args.spec)
    chosen = _select(catalogue, None, args.topic)
    routes: dict[str, list[str]] = {}
    if args.reaches:
        routes = _reaching(chosen, args.reaches)
        chosen = [p for p in chosen if p.id in routes]
    if args.format == "json":
        print(json.dumps([p.metadata() | ({"reaches": routes[p.id]} if routes else {}) for p in chosen], indent=1))
        return 0
    width = max((len(p.id) for p in chosen), default=10)
    for prop in chosen:
        source = prop.source[0]
        print(f"{prop.id:<{width}}  {prop.level:<6}  {prop.title}")
        print(f"{'':<{width}}          from: {source.document} / {source.question}"
              + (f" (+{len(prop.source) - 1} more)" if len(prop.source) > 1 else ""))
        if routes:
            print(f"{'':<{width}}          reaches {args.reaches}: {'; '.join(routes[prop.id])}")
    print(f"\n{len(chosen)} properties in {len({p.topic for p in chosen})} topics"
          + (f" reach {args.reaches}" if args.reaches else ""))
    return 0


def _reaching(properties: list[Any], primitive: str) -> dict[str, list[str]]:
    """For each property that calls ``primitive``, how: directly or through a composite.

    What a property calls is its checker's ``requires`` and its spec's ``requires:``; a composite
    (``multi_head_attention``) reaches the lower primitives it is composed from
    (:data:`nnspec.backends.base.COMPOSITES`) on every backend that does not fuse it.
    """
    import difflib

    from nnspec import registry
    from nnspec.backends.base import COMPOSITES, PRIMITIVES

    if primitive not in PRIMITIVES:
        near = difflib.get_close_matches(primitive, PRIMITIVES, n=1)
        raise NnspecError(f"--reaches: not a backend primitive{f' (did you mean {near[0]!r}?)' if near else ''}; "
                          f"the primitives are {', '.join(PRIMITIVES)}. Received: {primitive!r}")
    routes: dict[str, list[str]] = {}
    for prop in properties:
        called = dict.fromkeys((*registry.get(prop.check).requires, *prop.requires))
        found = ["directly"] if primitive in called else []
        found += [f"through {name} (unless fused)" for name in called if primitive in COMPOSITES.get(name, ())]
        if found:
            routes[prop.id] = found
    return routes


def _command_lint(args: argparse.Namespace) -> int:
    """Check every spec file and report every error found (exit 2), not only the first."""
    from nnspec.spec_loader import check_catalogue

    catalogue, errors, files = check_catalogue(args.paths or None)
    for error in errors:
        print(f"nnspec lint: error: {error}", file=sys.stderr)
    if errors:
        broken = len({error.path for error in errors})
        print(f"{len(errors)} error{'s' * (len(errors) != 1)} in {broken} of {len(files)} spec file(s)",
              file=sys.stderr)
        return 2
    print(f"ok: {len(catalogue.properties)} properties and {len(catalogue.claims)} claims "
          f"in {len(catalogue.topics)} topics ({len(files)} files)")
    return 0


def _command_backends(args: argparse.Namespace) -> int:
    from nnspec.backends.base import PRIMITIVES, Unavailable
    from nnspec.backends.discovery import discover

    classes: dict[type[Backend], list[str]] = {}
    for target in discover():
        backend_class = target.backend_class
        if backend_class is not None:
            classes.setdefault(backend_class, []).append(target.target)
        note = "" if backend_class is None or backend_class.in_default_run else (
            f" (not in the default run; select with -b {target.selector.partition(':')[0]})")
        if not target.is_available:
            print(f"{target.target:<24} unavailable{note}: {target.reason}")
            continue
        try:
            backend = target.instantiate()
        except Unavailable as error:  # available() said yes, the constructor says why not
            print(f"{target.target:<24} unavailable{note}: {error}")
            continue
        have = [name for name in PRIMITIVES if backend.supports(name)]
        missing = [name for name in PRIMITIVES if not backend.supports(name)]
        print(f"{target.target:<24} available{note}; dtypes {', '.join(backend.dtypes)}")
        print(f"{'':<24} primitives: {', '.join(have)}")
        if missing:
            print(f"{'':<24} missing (their properties are not applicable): {', '.join(missing)}")
    if args.detail:
        for backend_class, names in classes.items():
            print("\n" + "\n".join(_class_detail(backend_class, names)))
    return 0


def _class_detail(backend_class: type[Backend], targets: list[str]) -> list[str]:
    """What one backend class implements itself, inherits (and from which class), leaves as stubs."""
    from nnspec import divergences
    from nnspec.backends.base import COMPOSITES, PRIMITIVES

    def name(klass: type) -> str:
        return f"{klass.__module__}.{klass.__qualname__}"

    own, inherited, stubs = [], [], []
    for primitive in PRIMITIVES:
        owner = backend_class.implemented_by(primitive)
        if owner is None:
            stubs.append(primitive)
        elif owner is backend_class:
            own.append(primitive)
        else:
            inherited.append(f"{primitive} from {owner.__qualname__}")
    lines = [f"{name(backend_class)} (targets {', '.join(targets)})",
             f"  own:       {', '.join(own) or 'none'}",
             f"  inherited: {', '.join(inherited) or 'none'}",
             f"  stubs (their properties are not applicable): {', '.join(stubs) or 'none'}"]
    composed = [f"{composite} from {', '.join(parts)}" for composite, parts in COMPOSITES.items()
                if composite not in backend_class.fused and composite not in stubs]
    lines.append(f"  composed from its own primitives: {'; '.join(composed) or 'none'}")
    lines.append(f"  fused (a kernel of its own): {', '.join(sorted(backend_class.fused)) or 'none'}")
    if backend_class.variant_primitives:
        in_play = backend_class.variant_primitives_in_play()
        lines.append(f"  on variant targets: {', '.join(p for p in PRIMITIVES if p in in_play) or 'no variant targets'}")
    try:
        entries = divergences.for_backend(backend_class)
        lines.append(f"  known divergences: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
                     + ("" if backend_class.inherit_divergences else " (its own file only)"))
    except NnspecError as error:
        lines.append(f"  known divergences: unreadable: {error}")
    return lines


def _command_report(args: argparse.Namespace) -> int:
    from nnspec.reports.html import write_report
    from nnspec.reports.results import load, merge

    if args.history:
        from nnspec.reports.history import load_history

        latest, history = load_history(args.inputs)
        write_report(latest, args.output, history=history)
        print(f"history of {len(args.inputs)} runs ({len(history.changed)} pairs changed status): {args.output}")
        return 0
    document = merge([load(path) for path in args.inputs])
    for warning in document.warnings:
        if warning.startswith("conflict:"):
            print(f"nnspec report: {warning}", file=sys.stderr)
    write_report(document, args.output)
    if args.json:
        document.write(args.json)
    print(f"{len(document.results)} results from {len(args.inputs)} file(s): {args.output}")
    return 0


def _command_diff(args: argparse.Namespace) -> int:
    from nnspec.reports.diff import diff, render_diff_html
    from nnspec.reports.results import load

    changes = diff(load(args.old), load(args.new))
    print(changes.to_text())
    if args.html:
        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(render_diff_html(changes), encoding="utf-8")
    return 1 if args.fail_on_regression and changes.has_regressions else 0


def _command_claims(args: argparse.Namespace) -> int:
    from nnspec.claims import main as claims_main
    from nnspec.spec_loader import load_catalogue

    return claims_main(args, load_catalogue(args.spec))


def _command_gpu_check(args: argparse.Namespace) -> int:
    from nnspec.gpu import gpu_check

    return gpu_check(args.out, install=args.install, max_examples=args.max_examples)


def _command_coverage(args: argparse.Namespace) -> int:
    from nnspec.coverage import main as coverage_main

    return coverage_main(args)


COMMANDS = {
    "run": _command_run, "list": _command_list, "lint": _command_lint, "backends": _command_backends,
    "report": _command_report, "diff": _command_diff, "claims": _command_claims, "coverage": _command_coverage,
    "gpu-check": _command_gpu_check,
}


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a backend's message may hold any string, lone surrogates too
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            reconfigure(errors="backslashreplace")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except NnspecError as error:
        print(f"nnspec {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
