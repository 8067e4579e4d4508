"""Running properties against backend targets, one result record per (property, target)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import platform
import shlex
import signal
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterator, Sequence
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
from hypothesis.errors import FailedHealthCheck, FlakyFailure, Unsatisfiable, UnsatisfiedAssumption

from nnspec import divergences, registry
from nnspec.backends.base import Backend
from nnspec.backends.discovery import BackendTarget
from nnspec.backends.numpy import NumpyBackend
from nnspec.case import BackendRaised, Case, CheckFailure, Worst
from nnspec.errors import BackendError, NnspecError
from nnspec.reports.results import Record, RunDocument, append_jsonl
from nnspec.spec_loader import Catalogue, Property

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


def reproduce_command(target: str, property_id: str, options: RunOptions) -> str:
    """The command that reruns exactly one pair: the exact target, spec files, profile, examples, seed."""
    words = ["nnspec", "run", "--backend", target, "--property", property_id,
             "--seed", str(options.seed), "--profile", options.profile]
    if options.max_examples:
        words += ["--max-examples", str(options.max_examples)]
    for path in options.spec_paths or []:
        words += ["--spec", path]
    for path in options.divergence_files:
        words += ["--divergences", path]
    for dtype in options.dtypes:
        words += ["--dtype", dtype]
    return shlex.join(words)


@dataclass
class RunOptions:
    profile: str = "default"
    seed: int = 0
    timeout: float | None = DEFAULT_TIMEOUT
    database: ExampleDatabase | None = None
    max_examples: int | None = None
    #: Resident memory one worker may use (None: the supervisor's default, a share of physical memory).
    memory_limit_mb: int | None = None
    #: The spec files or folders of the run (None: the shipped specs), for reproduce lines.
    spec_paths: list[str] | None = None
    #: Divergence files given to the run (``--divergences``), on top of each backend's own.
    divergence_files: tuple[str, ...] = ()
    #: Only these dtypes are drawn (``--dtype``); empty: every dtype of a property's domain.
    dtypes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise NnspecError(f"unknown profile; expected one of {sorted(PROFILES)}. Received: {self.profile!r}")


def examples_for(prop: Property, options: RunOptions, statistical: bool) -> int:
    """How many examples Hypothesis runs for ``prop`` under ``options`` (the profile's, or the override)."""
    profile = PROFILES[options.profile]
    if options.max_examples:
        return options.max_examples
    if statistical:
        return STATISTICAL_EXAMPLES[options.profile]
    if prop.examples:  # a property's own count is stated for the default profile
        return max(1, round(prop.examples * profile["max_examples"] / PROFILES["default"]["max_examples"]))
    return int(profile["max_examples"])


def _settings(prop: Property, options: RunOptions, statistical: bool) -> settings:
    examples = examples_for(prop, options, statistical)
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


@dataclass
class PairPlan:
    """What the execute stage runs for one pair: the property narrowed to the dtypes it checks."""

    prop: Property
    original: Property
    record: Record
    left_out: str = ""
    divergent_dtypes: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """What the execute stage saw: the exception Hypothesis ended with (if any) and the measures."""

    error: BaseException | None
    examples: int
    worst: Worst
    case: Case | None
    time_s: float
    compile_s: float | None
    determinism: Determinism | None = None


def error_record(prop: Property, target: BackendTarget, options: RunOptions, message: str) -> Record:
    """The record of a pair that ended in an error outside the checks (a dead or killed worker)."""
    return Record(property=prop.id, backend=target.target, status="error", level=prop.level, topic=prop.topic,
                  seed=options.seed, message=message,
                  reproduce=reproduce_command(target.selector or target.target, prop.id, options))


def plan_pair(prop: Property, backend: Backend, options: RunOptions, selector: str | None,
              known: list[divergences.Divergence]) -> PairPlan | Record:
    """Stage 1, plan: the final record when the pair is not applicable, else what to execute."""
    checker = registry.get(prop.check)
    record = Record(property=prop.id, backend=backend.target, status="pass", level=prop.level,
                    topic=prop.topic, seed=options.seed)
    record.reproduce = reproduce_command(selector or backend.target, prop.id, options)
    missing = [name for name in (*checker.requires, *prop.requires) if not backend.supports(name)]
    if missing:
        record.status, record.message = "skip", f"not applicable: the backend has no {', '.join(missing)}"
        return record
    wanted = prop.inputs.get("dtypes", ["float64"])
    plan = PairPlan(prop=prop, original=prop, record=record)
    if options.dtypes:
        selected = [dtype for dtype in wanted if dtype in options.dtypes]
        if not selected:
            record.status = "skip"
            record.message = (f"not applicable: --dtype {','.join(options.dtypes)} selects none of the "
                              f"property's dtypes {wanted}")
            return record
        if selected != wanted:
            plan.prop = dataclasses.replace(prop, inputs={**prop.inputs, "dtypes": selected})
        wanted = selected
    excluded = divergences.excluded_dtypes(known, prop.id, backend.target)
    if excluded:
        kept = [dtype for dtype in wanted if dtype not in excluded]
        plan.divergent_dtypes = [dtype for dtype in wanted if dtype in excluded and backend.supports_dtype(dtype)]
        reasons = "; ".join(f"{dtype}: {reason}" for dtype, reason in excluded.items() if dtype in wanted)
        if not kept:
            record.status, record.message = "xfail", f"known divergence in every dtype of the domain ({reasons})"
            return record
        if reasons:
            plan.left_out = (f"not checked in {', '.join(d for d in excluded if d in wanted)} "
                             f"(known divergence: {reasons}). ")
        plan.prop = dataclasses.replace(prop, inputs={**prop.inputs, "dtypes": kept})
        wanted = kept
    if not any(backend.supports_dtype(dtype) for dtype in wanted):
        record.status = "skip"
        record.message = f"not applicable: the backend computes in none of {wanted}"
        return record
    return plan


class Determinism:
    """Each primitive result of a run, keyed by its primitive and input, to tell a backend that gives
    different results for the same input (what Hypothesis reports as a flaky failure) from a checker bug."""

    #: Results kept per run; past this, new inputs are not remembered (the check is best effort).
    KEPT = 512

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        #: The first difference seen: (primitive, max abs difference or None when the shapes differ).
        self.difference: tuple[str, float | None] | None = None

    @staticmethod
    def _key(primitive: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        digest = hashlib.sha1(primitive.encode())
        for value in (*args, *sorted(kwargs.items(), key=lambda item: item[0])):
            Determinism._feed(digest, value)
        return digest.hexdigest()

    @staticmethod
    def _feed(digest: Any, value: Any) -> None:
        if isinstance(value, np.ndarray):
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, (tuple, list)):
            for item in value:
                Determinism._feed(digest, item)
        elif isinstance(value, dict):
            for key in sorted(value):
                digest.update(str(key).encode())
                Determinism._feed(digest, value[key])
        else:
            digest.update(repr(value).encode())

    def observe(self, primitive: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        key = self._key(primitive, args, kwargs)
        if key not in self.results:
            if len(self.results) < self.KEPT:
                self.results[key] = result
            return
        if self.difference is None:
            difference = _max_difference(self.results[key], result)
            if difference != 0.0:
                self.difference = (primitive, difference)

    def describe(self) -> str | None:
        if self.difference is None:
            return None
        primitive, difference = self.difference
        if difference is None:
            return f"non-deterministic: two calls of {primitive} on the same input return different shapes"
        return f"non-deterministic: two calls of {primitive} on the same input differ by {difference:.3g}"


def _max_difference(first: Any, second: Any) -> float | None:
    """The largest absolute difference of two results (arrays or tuples of them); None if shapes differ.

    A NaN on one side only counts as an infinite difference.
    """
    if isinstance(first, tuple) or isinstance(second, tuple):
        if not (isinstance(first, tuple) and isinstance(second, tuple)) or len(first) != len(second):
            return None
        parts = [_max_difference(a, b) for a, b in zip(first, second, strict=True)]
        if any(part is None for part in parts):
            return None
        return max((part for part in parts if part is not None), default=0.0)
    a, b = (np.asarray(x) for x in (first, second))
    if a.shape != b.shape:
        return None
    a, b = (x.astype(np.complex128 if x.dtype.kind == "c" else np.float64) for x in (a, b))
    differs = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    if not differs.any():
        return 0.0
    gaps = np.abs(a - b)[differs]
    return float(np.max(np.where(np.isnan(gaps), np.inf, gaps)))


class _WatchedCase(Case):
    """A case whose primitive calls are shown to a :class:`Determinism` watch."""

    def __init__(self, *args: Any, determinism: Determinism, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.determinism = determinism

    def call(self, primitive: str, *args: Any, **kwargs: Any) -> Any:
        result = super().call(primitive, *args, **kwargs)
        self.determinism.observe(primitive, args, kwargs, result)
        return result


def execute(prop: Property, backend: Backend, options: RunOptions) -> Outcome:
    """Stage 2, execute: run Hypothesis over the property on the backend (in this process)."""
    checker = registry.get(prop.check)
    reference = NumpyBackend()
    worst = Worst()
    state: dict[str, Any] = {"examples": 0, "case": None}
    determinism = Determinism()
    run_settings = _settings(prop, options, checker.statistical)
    false_alarm_rate = float(prop.statistical.get("false_alarm_rate", 1e-9))
    alpha = false_alarm_rate / max(run_settings.max_examples, 1)

    def example(data: st.DataObject) -> None:
        case = _WatchedCase(data, prop, backend, reference, worst, alpha=alpha, determinism=determinism)
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
    # The settings go on last: @seed alone would switch the example database off (it sets database=None),
    # and the database is what replays a found failure first on the next run.
    test = run_settings(hypothesis_seed(property_seed(options.seed, prop.id))(given(st.data())(example)))
    compile_clock = getattr(backend, "compile_seconds", None)
    compile_before = float(compile_clock()) if callable(compile_clock) else 0.0
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        # Overflow in a value regime is judged by the checks themselves, not reported as a warning.
        with _deadline(options.timeout), np.errstate(all="ignore"):
            test()
    except (Exception, PropertyTimeout) as raised:
        error = raised
    compile_s = round(float(compile_clock()) - compile_before, 4) if callable(compile_clock) else None
    return Outcome(error, state["examples"], worst, state["case"], round(time.perf_counter() - started, 4), compile_s,
                   determinism)


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    return "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)


def classify(outcome: Outcome, record: Record, check: str) -> Record:
    """Stage 3, classify the outcome: whose fault it is (the backend's or nnspec's) and the status."""
    error = outcome.error
    failure_measure: tuple[float, float] | None = None
    if isinstance(error, FlakyFailure):  # the same input failed once and then passed
        inner = [e for e in error.exceptions if not isinstance(e, FlakyFailure)]
        first = inner[0] if inner else error
        seen = outcome.determinism.describe() if outcome.determinism is not None else None
        error = CheckFailure(f"{seen or 'non-deterministic: the backend gave different results on the same input'} "
                             f"(a failure did not reproduce when Hypothesis ran the same input again). "
                             f"The first failure: {first}",
                             error=getattr(first, "error", None), tolerance=getattr(first, "tolerance", None))
    if error is None:
        pass
    elif isinstance(error, CheckFailure):
        record.status = "fail"
        record.message = error.message
        if error.error is not None and error.tolerance is not None:
            failure_measure = (error.error, error.tolerance)
    elif isinstance(error, (Unsatisfiable, FailedHealthCheck)):
        reason = outcome.case.drawn.get("refused", "") if outcome.case is not None else ""
        record.status = "skip"
        record.message = f"not applicable: the backend refused every drawn input ({reason})"
    elif isinstance(error, PropertyTimeout):
        record.status, record.message = "error", str(error)
    elif isinstance(error, NnspecError):  # the spec or the engine is at fault, not the backend
        record.status, record.message = "error", f"{type(error).__name__}: {error}"
    elif isinstance(error, BackendRaised):
        record.status = "error"
        record.message = f"the backend raised {error} ({_where(error.error)})"
    else:  # the checker itself crashed: a bug in nnspec or in the spec
        record.status = "error"
        record.message = f"the checker {check!r} raised {type(error).__name__}: {error} ({_where(error)})"
    record.time_s = outcome.time_s
    record.examples = outcome.examples
    record.compile_s = outcome.compile_s
    if outcome.worst.error is not None:
        record.worst_error, record.tolerance = outcome.worst.error, outcome.worst.tolerance
    if failure_measure is not None:  # a failure reports the error of its minimal example
        record.worst_error, record.tolerance = failure_measure
    if record.status in ("fail", "error") and outcome.case is not None:
        record.counterexample = outcome.case.counterexample()
    if record.status == "pass" and outcome.worst.notes:
        record.message = "; ".join(outcome.worst.notes)
    return record


def apply_divergences(plan: PairPlan, record: Record, backend: Backend, options: RunOptions,
                      known: list[divergences.Divergence]) -> Record:
    """Stage 4, apply divergences: a listed divergence turns fail/error into xfail and pass into xpass."""
    if plan.left_out:
        record.message = plan.left_out + record.message
        if record.status == "pass" and plan.divergent_dtypes:
            # Look for the divergence briefly, so an entry fixed upstream gets noticed. Not finding
            # it in a few examples does not prove it gone (some occur only on some draws), so that
            # is said in the message rather than turned into an xpass.
            narrowed = dataclasses.replace(plan.original, inputs={**plan.original.inputs,
                                                                  "dtypes": plan.divergent_dtypes})
            confirm = run_property(narrowed, backend, dataclasses.replace(options, max_examples=10))
            dtypes = ", ".join(plan.divergent_dtypes)
            if confirm.status == "pass":
                record.message = record.message.rstrip() + (
                    f" The divergence in {dtypes} did not show in {confirm.examples} examples: the entry may be stale.")
            else:
                record.message = record.message.rstrip() + f" Divergence in {dtypes} confirmed: {confirm.message[:200]}"
    divergence = divergences.find(known, plan.prop.id, backend.target)
    if divergence is not None:
        if record.status in ("fail", "error"):
            record.status, record.message = "xfail", f"known divergence: {divergence.reason}. {record.message}"
        elif record.status == "pass":
            record.status = "xpass"
            record.message = f"listed as a known divergence ({divergence.reason}) but it passed: the entry is stale"
    return record


def run_property(
    prop: Property,
    backend: Backend,
    options: RunOptions,
    selector: str | None = None,
    known: list[divergences.Divergence] | None = None,
) -> Record:
    """Check one property on one backend target in this process and return its record.

    The stages plan, execute, classify and apply divergences, in order; it never raises for a
    backend's fault that Python can catch. :func:`run` calls it inside supervised workers, which
    also survive the faults Python cannot catch.
    """
    plan = plan_pair(prop, backend, options, selector, known or [])
    if isinstance(plan, Record):
        return plan
    outcome = execute(plan.prop, backend, options)
    record = classify(outcome, plan.record, prop.check)
    return apply_divergences(plan, record, backend, options, known or [])


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
    #: Only these (property id, target) pairs, e.g. one shard's (:mod:`nnspec.sharding`); None: all.
    selected: set[tuple[str, str]] | None = None

    def pairs(self) -> list[tuple[Property, str, BackendTarget]]:
        chosen = self.properties or self.catalogue.properties
        pairs = [(prop, selector, target) for prop in sorted(chosen, key=lambda p: p.id)
                 for selector, target in sorted(self.targets, key=lambda t: t[1].target)]
        if self.selected is None:
            return pairs
        return [pair for pair in pairs if (pair[0].id, pair[2].target) in self.selected]


class BackendPool:
    """One backend instance per target, each with its known divergences, made on first use."""

    def __init__(self, divergence_files: Sequence[str] = ()) -> None:
        self.instances: dict[str, Backend] = {}
        self.known: dict[str, list[divergences.Divergence]] = {}
        self.divergence_files = list(divergence_files)

    def get(self, target: BackendTarget) -> Backend:
        if target.target not in self.instances:
            backend = target.instantiate()
            self.instances[target.target] = backend
            self.known[target.target] = divergences.for_backend(type(backend), self.divergence_files)
        return self.instances[target.target]


class RunInterrupted(BaseException):
    """Ctrl-C or SIGTERM during a run: the records so far are kept and the run is marked interrupted."""


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM ends a run the way Ctrl-C does (main thread only)."""
    if not _in_main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise RunInterrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def select_targets(selectors: list[str] | None) -> tuple[list[tuple[str, BackendTarget]], dict[str, str]]:
    """The targets of the ``--backend`` values, and the unavailable ones with their reasons.

    A named backend none of whose targets can run here (not importable, no such class, no
    targets, its framework missing) is a usage error; targets of it that cannot run here while
    another can (``torch:cuda`` on a machine without a GPU, under ``-b torch``) are reported, not run.
    With no selectors, every backend found is used and those that cannot run are reported.
    """
    from nnspec.backends.discovery import discover, resolve

    targets: list[tuple[str, BackendTarget]] = []
    unavailable: dict[str, str] = {}
    if not selectors:
        for target in discover(default_run=True):
            if target.is_available:
                targets.append((target.target.split(":")[0], target))
            else:
                unavailable[target.target] = target.reason
        if not targets:
            raise BackendError(f"no backend can run here: {unavailable}")
        return targets, unavailable
    for selector in selectors:
        found = resolve(selector)
        usable = [target for target in found if target.is_available]
        if not usable:
            reasons = "; ".join(f"{t.target}: {t.reason}" for t in found)
            raise BackendError(f"backend {selector!r} cannot run here ({reasons})")
        targets.extend((selector, target) for target in usable)
        unavailable.update({t.target: t.reason for t in found if not t.is_available})
    return targets, unavailable


#: The dtypes a spec's domain may name (conformance/schema/spec-v1.json), for ``--dtype``.
DTYPES: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")


def check_dtypes(dtypes: Sequence[str], backends: dict[str, Backend]) -> None:
    """Refuse a ``--dtype`` that no selected target computes in (it would check nothing): exit 2."""
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise NnspecError(f"--dtype: expected one of {', '.join(DTYPES)}. Received: {dtype!r}")
        if not any(backend.supports_dtype(dtype) for backend in backends.values()):
            computed = "; ".join(f"{name}: {', '.join(b.dtypes)}" for name, b in sorted(backends.items()))
            raise NnspecError(f"--dtype {dtype}: no selected target computes in it ({computed}). Received: {dtype!r}")


def prepare(plan: RunPlan, divergence_files: Sequence[str] = ()) -> BackendPool:
    """The plan stage of a run: every target must be one that can run, and names must not collide.

    Raises :class:`BackendError` (exit status 2) for a target that is unavailable or whose
    constructor raises, and for two different backend classes claiming one target name.
    """
    seen: dict[str, tuple[str, BackendTarget]] = {}
    unique: list[tuple[str, BackendTarget]] = []
    for selector, target in plan.targets:
        if target.target in seen:
            other_selector, other = seen[target.target]
            if other.backend_class is target.backend_class:
                continue  # the same target named twice is one target
            raise BackendError(
                f"two backends give the target name {target.target!r}: {other_selector!r} "
                f"({_class_name(other)}) and {selector!r} ({_class_name(target)}); a subclass must set its "
                "own 'name' (e.g. name = 'mykernel') so its records are kept apart from its parent's")
        seen[target.target] = (selector, target)
        unique.append((selector, target))
    plan.targets = unique
    pool = BackendPool(divergence_files)
    for selector, target in plan.targets:
        if not target.is_available:
            raise BackendError(f"backend {selector!r}: target {target.target!r} cannot run here: {target.reason}")
        try:
            pool.get(target)
        except Exception as error:
            raise BackendError(f"backend {selector!r}: constructing target {target.target!r} raised "
                             f"{type(error).__name__}: {error}") from None
    return pool


def _class_name(target: BackendTarget) -> str:
    cls = target.backend_class
    return f"{cls.__module__}.{cls.__qualname__}" if cls is not None else "?"


def unsupported_requirements(plan: RunPlan, pool: BackendPool) -> list[str]:
    """Warnings for properties that no selected backend can run (a ``requires:`` typo, or a gap)."""
    warnings = []
    backends = list(pool.instances.values())
    for prop in plan.properties or plan.catalogue.properties:
        names = (*registry.get(prop.check).requires, *prop.requires)
        missing = sorted({name for name in names if not any(b.supports(name) for b in backends)})
        if missing and backends:
            warnings.append(f"{prop.id}: requires {', '.join(missing)}, which no selected backend "
                            f"({', '.join(sorted(pool.instances))}) provides; it is skipped on every target")
    return warnings


def run(
    plan: RunPlan,
    options: RunOptions,
    jsonl: Path | None = None,
    progress: Callable[[Record, int, int], None] | None = None,
    argv: list[str] | None = None,
    workers: int = 1,
    pool: BackendPool | None = None,
) -> RunDocument:
    """Run every (property, target) pair, appending each record to ``jsonl`` as it finishes.

    The stages: :func:`prepare` (plan), then each pair on a supervised worker process
    (:class:`~nnspec.supervisor.Supervisor`; ``workers`` of them, at least one) which runs
    :func:`run_property`, then the record stage here (``jsonl``, ``progress``, the document).
    ``workers=0`` runs the pairs in this process, unsupervised (for library use and tests only).
    Ctrl-C or SIGTERM stop the run within about a second: the document then has status
    ``interrupted`` and every record finished so far.
    """
    from nnspec.supervisor import Supervisor

    if pool is None:
        pool = prepare(plan, options.divergence_files)
    document = RunDocument(
        environment=environment(options, list(pool.instances.values()), argv),
        properties={prop.id: prop.metadata() for prop in plan.catalogue.properties},
    )
    document.warnings = unsupported_requirements(plan, pool)
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

    status = "complete"
    runnable = []
    for index, (prop, selector, target) in enumerate(pairs):
        if prop.id in plan.catalogue.not_run:  # a dependency that is in no spec file loaded
            finish(index, error_record(prop, target, options, plan.catalogue.not_run[prop.id]))
        else:
            runnable.append((index, (prop, selector, target)))
    try:
        with _interruptible():
            if workers <= 0:
                for index, (prop, selector, target) in runnable:
                    finish(index, run_property(prop, pool.get(target), options, target.selector or selector,
                                               pool.known[target.target]))
            else:
                supervisor = Supervisor(workers, options)
                try:
                    supervisor.run(runnable, finish)
                finally:
                    supervisor.close()
    except (KeyboardInterrupt, RunInterrupted):
        status = "interrupted"
    if status == "complete" and len(done) < len(pairs):
        status = "incomplete"
    document.status = status
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


#: The exit status of a run, shared by the CLI and the pytest plugin (README, "Exit status").
EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3


def exit_status(document: RunDocument) -> int:
    """0 every MUST passed; 1 a MUST failed or errored; 3 the run was interrupted or is incomplete.

    (2, a usage or spec error, is raised before a run starts.) MAY and SHOULD failures are reported
    but never change the status. An interrupted run is 3 even when a MUST already failed.
    """
    if document.status != "complete":
        return EXIT_INCOMPLETE
    return EXIT_FAILED if failed_must(document) else EXIT_PASSED


def failed_must(document: RunDocument) -> list[Record]:
    """MUST properties that failed or errored: any makes the run's exit status non-zero."""
    return [r for r in document.results if r.level == "MUST" and r.status in ("fail", "error")]
