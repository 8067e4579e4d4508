"""Running properties against backend targets, one result record per (property, target)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import shlex
import signal
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase
from hypothesis.errors import FailedHealthCheck, Unsatisfiable, UnsatisfiedAssumption

from nnspec import divergences, registry
from nnspec.backends.base import Backend
from nnspec.backends.discovery import BackendTarget
from nnspec.backends.numpy import NumpyBackend
from nnspec.errors import NnspecError
from nnspec.reports.results import Record, RunDocument, append_jsonl
from nnspec.spec_loader import Catalogue, Property
from nnspec.strategies import BackendRaised, Case, CheckFailure, Worst

#: Examples per property, per profile. Every profile is deterministic: each property's draws are
#: seeded from the run seed and the property id (Hypothesis's own ``derandomize`` would drop the
#: example database, which nnspec keeps so that a found failure replays first on the next run).
#: ``ci`` runs more examples than ``default``; like every profile it is the same run for the same seed.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"max_examples": 10},
    "default": {"max_examples": 40},
    "thorough": {"max_examples": 400},
    "ci": {"max_examples": 60},
}
#: Statistical checks draw thousands of samples per example; they run fewer examples.
STATISTICAL_EXAMPLES = {"quick": 2, "default": 5, "thorough": 20, "ci": 5}
DEFAULT_TIMEOUT = 300.0


class PropertyTimeout(BaseException):
    """Raised inside a hanging backend call; a BaseException so Hypothesis does not shrink it."""


def database_path() -> Path:
    return Path(os.environ.get("NNSPEC_DATABASE", ".hypothesis/nnspec"))


def property_seed(run_seed: int, property_id: str) -> int:
    """The seed of one property: every backend target sees the same examples in one run."""
    return zlib.crc32(f"{run_seed}:{property_id}".encode())


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Interrupt the body after ``seconds`` (main thread on POSIX only; elsewhere no limit)."""
    if not seconds or not hasattr(signal, "setitimer") or not _in_main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise PropertyTimeout(f"no result after {seconds:g} s: the backend hangs or is far too slow")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def reproduce_command(selector: str, property_id: str, seed: int, profile: str) -> str:
    return shlex.join(["nnspec", "run", "--backend", selector, "--property", property_id,
                       "--seed", str(seed), "--profile", profile])


@dataclass
class RunOptions:
    profile: str = "default"
    seed: int = 0
    timeout: float | None = DEFAULT_TIMEOUT
    database: ExampleDatabase | None = None
    max_examples: int | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise NnspecError(f"unknown profile; expected one of {sorted(PROFILES)}. Received: {self.profile!r}")


def _settings(prop: Property, options: RunOptions, statistical: bool) -> settings:
    profile = PROFILES[options.profile]
    if options.max_examples:
        examples = options.max_examples
    elif statistical:
        examples = STATISTICAL_EXAMPLES[options.profile]
    elif prop.examples:  # a property's own count is stated for the default profile
        examples = max(1, round(prop.examples * profile["max_examples"] / PROFILES["default"]["max_examples"]))
    else:
        examples = profile["max_examples"]
    database = options.database
    if database is None:
        database = DirectoryBasedExampleDatabase(str(database_path()))
    return settings(
        max_examples=examples,
        deadline=None,
        database=database,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        print_blob=False,
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    )


def run_property(
    prop: Property,
    backend: Backend,
    options: RunOptions,
    selector: str | None = None,
    known: list[divergences.Divergence] | None = None,
) -> Record:
    """Check one property on one backend target and return its record (never raises for a backend's fault)."""
    checker = registry.get(prop.check)
    seed = property_seed(options.seed, prop.id)
    record = Record(property=prop.id, backend=backend.target, status="pass", level=prop.level,
                    topic=prop.topic, seed=options.seed)
    record.reproduce = reproduce_command(selector or backend.target, prop.id, options.seed, options.profile)
    missing = [name for name in (*checker.requires, *prop.requires) if not backend.supports(name)]
    if missing:
        record.status, record.message = "skip", f"not applicable: the backend has no {', '.join(missing)}"
        return record
    wanted = prop.inputs.get("dtypes", ["float64"])
    excluded = divergences.excluded_dtypes(known or [], prop.id, backend.target)
    left_out = ""
    divergent_dtypes: list[str] = []
    original = prop
    if excluded:
        kept = [dtype for dtype in wanted if dtype not in excluded]
        divergent_dtypes = [dtype for dtype in wanted if dtype in excluded and backend.supports_dtype(dtype)]
        reasons = "; ".join(f"{dtype}: {reason}" for dtype, reason in excluded.items() if dtype in wanted)
        if not kept:
            record.status, record.message = "xfail", f"known divergence in every dtype of the domain ({reasons})"
            return record
        if reasons:
            left_out = f"not checked in {', '.join(d for d in excluded if d in wanted)} (known divergence: {reasons}). "
        prop = dataclasses.replace(prop, inputs={**prop.inputs, "dtypes": kept})
        wanted = kept
    if not any(backend.supports_dtype(dtype) for dtype in wanted):
        record.status = "skip"
        record.message = f"not applicable: the backend computes in none of {wanted}"
        return record

    reference = NumpyBackend()
    worst = Worst()
    state: dict[str, Any] = {"examples": 0, "case": None}
    run_settings = _settings(prop, options, checker.statistical)
    false_alarm_rate = float(prop.statistical.get("false_alarm_rate", 1e-9))
    alpha = false_alarm_rate / max(run_settings.max_examples, 1)

    def example(data: st.DataObject) -> None:
        case = Case(data, prop, backend, reference, worst, alpha=alpha)
        state["case"] = case
        try:
            checker.function(case)
        except UnsatisfiedAssumption:  # a discarded draw is not an example run
            raise
        except Exception:
            state["examples"] += 1
            raise
        state["examples"] += 1

    example._hypothesis_internal_add_digest = f"{prop.id}[{backend.target}]".encode()  # type: ignore[attr-defined]
    test = hypothesis_seed(seed)(run_settings(given(st.data())(example)))
    failure_measure: tuple[float, float] | None = None
    compile_clock = getattr(backend, "compile_seconds", None)
    compile_before = float(compile_clock()) if callable(compile_clock) else 0.0
    started = time.perf_counter()
    try:
        # Overflow in a value regime is judged by the checks themselves, not reported as a warning.
        with _deadline(options.timeout), np.errstate(all="ignore"):
            test()
    except CheckFailure as failure:
        record.status = "fail"
        record.message = failure.message
        if failure.error is not None and failure.tolerance is not None:
            failure_measure = (failure.error, failure.tolerance)
    except (Unsatisfiable, FailedHealthCheck):
        reason = state["case"].drawn.get("refused", "") if state["case"] is not None else ""
        record.status = "skip"
        record.message = f"not applicable: the backend refused every drawn input ({reason})"
    except PropertyTimeout as timeout:
        record.status, record.message = "error", str(timeout)
    except NnspecError as error:  # the spec or the engine is at fault, not the backend
        record.status, record.message = "error", f"{type(error).__name__}: {error}"
    except BackendRaised as raised:
        record.status = "error"
        frames = traceback.extract_tb(raised.error.__traceback__)[-3:]
        where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
        record.message = f"the backend raised {raised} ({where})"
    except Exception as error:  # the checker itself crashed: a bug in nnspec or in the spec
        record.status = "error"
        frames = traceback.extract_tb(error.__traceback__)[-3:]
        where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
        record.message = f"the checker {prop.check!r} raised {type(error).__name__}: {error} ({where})"
    record.time_s = round(time.perf_counter() - started, 4)
    record.examples = state["examples"]
    if worst.error is not None:
        record.worst_error, record.tolerance = worst.error, worst.tolerance
    if failure_measure is not None:  # a failure reports the error of its minimal example
        record.worst_error, record.tolerance = failure_measure
    if record.status in ("fail", "error") and state["case"] is not None:
        record.counterexample = state["case"].counterexample()
    if record.status == "pass" and worst.notes:
        record.message = "; ".join(worst.notes)
    if left_out:
        record.message = left_out + record.message
        if record.status == "pass" and divergent_dtypes:
            # Look for the divergence briefly, so an entry fixed upstream gets noticed. Not finding
            # it in a few examples does not prove it gone (some occur only on some draws), so that
            # is said in the message rather than turned into an xpass.
            narrowed = dataclasses.replace(original, inputs={**original.inputs, "dtypes": divergent_dtypes})
            confirm = run_property(narrowed, backend, dataclasses.replace(options, max_examples=10), selector)
            dtypes = ", ".join(divergent_dtypes)
            if confirm.status == "pass":
                record.message = record.message.rstrip() + (
                    f" The divergence in {dtypes} did not show in {confirm.examples} examples: the entry may be stale.")
            else:
                record.message = record.message.rstrip() + f" Divergence in {dtypes} confirmed: {confirm.message[:200]}"
    if callable(compile_clock):
        record.compile_s = round(float(compile_clock()) - compile_before, 4)
    divergence = divergences.find(known or [], prop.id, backend.target)
    if divergence is not None:
        if record.status in ("fail", "error"):
            record.status, record.message = "xfail", f"known divergence: {divergence.reason}. {record.message}"
        elif record.status == "pass":
            record.status = "xpass"
            record.message = f"listed as a known divergence ({divergence.reason}) but it passed: the entry is stale"
    return record


def environment(options: RunOptions, backends: list[Backend], argv: list[str] | None = None) -> dict[str, Any]:
    """What a run records about where it ran: versions, devices, seed, profile, command line."""
    versions: dict[str, str] = {}
    for package in ("nnspec", "numpy", "hypothesis", "torch", "jax", "jaxlib", "scipy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    details: dict[str, Any] = {}
    for backend in backends:
        # A backend whose record cannot be read still gets one: the error, so it is never dropped.
        try:
            details[backend.target] = backend.environment()
        except Exception as error:
            details[backend.target] = {"environment_error": f"{type(error).__name__}: {error}"}
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nnspec_version": versions.get("nnspec", "unknown"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "backends": details,
        "profile": options.profile,
        "seed": options.seed,
        "command": shlex.join(argv if argv is not None else ["nnspec", *sys.argv[1:]]),
    }


@dataclass
class RunPlan:
    """What one run checks: properties x targets, in a deterministic order."""

    catalogue: Catalogue
    targets: list[tuple[str, BackendTarget]]  # (selector the user gave, target)
    properties: list[Property] = field(default_factory=list)
    spec_paths: list[str] | None = None  # where the catalogue came from, for worker processes

    def pairs(self) -> list[tuple[Property, str, BackendTarget]]:
        chosen = self.properties or self.catalogue.properties
        return [(prop, selector, target) for prop in sorted(chosen, key=lambda p: p.id)
                for selector, target in sorted(self.targets, key=lambda t: t[1].target)]


class BackendPool:
    """One backend instance per target, each with its known divergences, made on first use."""

    def __init__(self) -> None:
        self.instances: dict[str, Backend] = {}
        self.known: dict[str, list[divergences.Divergence]] = {}

    def get(self, target: BackendTarget) -> Backend:
        if target.target not in self.instances:
            backend = target.instantiate()
            self.instances[target.target] = backend
            self.known[target.target] = divergences.for_backend(backend.name)
        return self.instances[target.target]


# -- worker processes: each loads the catalogue and its backends once ---------------------------

_worker: dict[str, Any] = {}


def _worker_start(spec_paths: list[str] | None, options: RunOptions) -> None:
    from nnspec.spec_loader import load_catalogue

    _worker.update(catalogue=load_catalogue(spec_paths), options=options, pool=BackendPool())


def _worker_run(property_id: str, selector: str, target: BackendTarget) -> dict[str, Any]:
    pool: BackendPool = _worker["pool"]
    backend = pool.get(target)
    prop = _worker["catalogue"].property(property_id)
    record = run_property(prop, backend, _worker["options"], selector, pool.known[target.target])
    return record.to_json()


def run(
    plan: RunPlan,
    options: RunOptions,
    jsonl: Path | None = None,
    progress: Callable[[Record, int, int], None] | None = None,
    argv: list[str] | None = None,
    workers: int = 1,
) -> RunDocument:
    """Run every (property, target) pair, appending each record to ``jsonl`` as it finishes.

    With ``workers > 1`` the pairs run in that many processes; records still reach ``jsonl`` as
    each finishes, and the document lists them in the deterministic plan order.
    """
    backends = BackendPool()
    for _, target in plan.targets:
        if target.is_available:
            try:
                backends.get(target)
            except Exception as error:  # a backend whose constructor fails is unavailable, not fatal
                target.reason = f"{type(error).__name__}: {error}"
    instances, known = backends.instances, backends.known
    document = RunDocument(
        environment=environment(options, list(instances.values()), argv),
        properties={prop.id: prop.metadata() for prop in plan.catalogue.properties},
    )
    pairs = plan.pairs()
    if jsonl is not None:
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        jsonl.write_text("")
    done: dict[int, Record] = {}

    def finish(index: int, record: Record) -> None:
        done[index] = record
        if jsonl is not None:
            append_jsonl(jsonl, record)
        if progress is not None:
            progress(record, len(done), len(pairs))

    pending = []
    for index, (prop, selector, target) in enumerate(pairs):
        if target.target not in instances:
            finish(index, Record(property=prop.id, backend=target.target, status="skip", level=prop.level,
                                 topic=prop.topic, seed=options.seed,
                                 message=f"backend unavailable: {target.reason}"))
        elif workers <= 1:
            finish(index, run_property(prop, instances[target.target], options, selector, known[target.target]))
        else:
            pending.append((index, prop, selector, target))
    if pending:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start,
                                 initargs=(plan.spec_paths, options)) as pool:
            futures = {pool.submit(_worker_run, prop.id, selector, target): (index, prop, target)
                       for index, prop, selector, target in pending}
            for future in as_completed(futures):
                index, prop, target = futures[future]
                try:
                    record = Record.from_json(future.result())
                except Exception as error:  # a worker that died takes only its own record with it
                    record = Record(property=prop.id, backend=target.target, status="error", level=prop.level,
                                    topic=prop.topic, seed=options.seed,
                                    message=f"the worker process failed: {type(error).__name__}: {error}")
                finish(index, record)
    document.results = [done[index] for index in sorted(done)]
    return document


def describe_failure(record: Record, statement: str) -> str:
    """A failure as a person reads it: the statement, the worst error, the minimal example, the repro."""
    import json
    import textwrap

    lines = [f"--- {record.status.upper()}: {record.property} [{record.backend}] ({record.level})",
             textwrap.fill(statement, width=100, initial_indent="    ", subsequent_indent="    "),
             f"    {record.message}"]
    if record.worst_error is not None and record.tolerance is not None:
        label = "error on the minimal example" if record.status == "fail" else "worst error"
        lines.append(f"    {label} {record.worst_error:.4g} against tolerance {record.tolerance:.4g}")
    example = record.counterexample
    if example:
        lines.append(f"    minimal example: dtype={example.get('dtype')} draws={example.get('draws')}")
        for name, shape in example.get("shapes", {}).items():
            values = example.get("arrays", {}).get(name)
            shown = json.dumps(values) if values is not None else ""
            lines.append(f"      {name} {tuple(shape)}: {shown if len(shown) <= 160 else shown[:157] + '...'}")
    lines.append(f"    reproduce: {record.reproduce}")
    return "\n".join(lines)


def failed_must(document: RunDocument) -> list[Record]:
    """MUST properties that failed or errored: any makes the run's exit status non-zero."""
    return [r for r in document.results if r.level == "MUST" and r.status in ("fail", "error")]
