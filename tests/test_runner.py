"""The runner: statuses, records on disk as they finish, broken and hanging backends contained."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis.database import InMemoryExampleDatabase

from nnspec.backends.discovery import BackendTarget
from nnspec.backends.numpy import NumpyBackend
from nnspec.errors import BackendError
from nnspec.reports.results import load
from nnspec.runner import RunOptions, RunPlan, failed_must, prepare, property_seed, run, run_property
from nnspec.spec_loader import Catalogue
from tests.conftest import quick_options


class CrashingSoftmax(NumpyBackend):
    """Raises inside softmax."""

    name = "crashing"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        raise RuntimeError("kernel launch failed")


class HangingSoftmax(NumpyBackend):
    """Never returns from softmax."""

    name = "hanging"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        time.sleep(60)
        return super().softmax(x, axis)


class NoSoftmax(NumpyBackend):
    name = "partial"
    softmax = None  # type: ignore[assignment]


def test_reference_passes_with_worst_error_recorded(catalogue: Catalogue) -> None:
    record = run_property(catalogue.property("softmax.rows.sum_to_one"), NumpyBackend(), quick_options())
    assert record.status == "pass" and record.examples >= 10
    assert record.worst_error is not None and record.ratio is not None and record.ratio <= 1.0


def test_crash_is_an_error_with_the_exception(catalogue: Catalogue) -> None:
    record = run_property(catalogue.property("softmax.rows.sum_to_one"), CrashingSoftmax(), quick_options())
    assert record.status == "error"
    assert "RuntimeError: kernel launch failed" in record.message
    assert record.counterexample is not None


def test_hang_is_an_error_after_the_timeout(catalogue: Catalogue) -> None:
    options = quick_options()
    options.timeout = 0.5
    started = time.perf_counter()
    record = run_property(catalogue.property("softmax.rows.sum_to_one"), HangingSoftmax(), options)
    assert time.perf_counter() - started < 10
    assert record.status == "error" and "no result after 0.5 s" in record.message


def test_missing_primitive_is_not_applicable(catalogue: Catalogue) -> None:
    backend = NoSoftmax()
    assert not backend.supports("softmax")
    record = run_property(catalogue.property("softmax.rows.sum_to_one"), backend, quick_options())
    assert record.status == "skip" and "not applicable" in record.message and "softmax" in record.message


def test_failure_has_a_minimal_counterexample_and_reproduction(catalogue: Catalogue) -> None:
    from tests.mutants.reference_mutants import CausalMaskOffByOne

    record = run_property(catalogue.property("masking.causal.first_position_self_only"),
                          CausalMaskOffByOne(), quick_options(seed=3))
    assert record.status == "fail"
    example = record.counterexample
    assert example["draws"]["q_len"] == 2  # shrunk to the smallest length that shows the bug
    assert example["shapes"]["v"][2] == 2 and isinstance(example["arrays"]["v"], list)
    assert record.reproduce.startswith("nnspec run --backend ") and "--seed 3" in record.reproduce


def test_same_seed_same_examples(catalogue: Catalogue) -> None:
    prop = catalogue.property("attention.sdpa.matches_formula")
    first = run_property(prop, NumpyBackend(), quick_options(seed=7))
    second = run_property(prop, NumpyBackend(), quick_options(seed=7))
    other = run_property(prop, NumpyBackend(), quick_options(seed=8))
    assert first.worst_error == second.worst_error
    assert first.worst_error != other.worst_error
    assert property_seed(7, prop.id) != property_seed(8, prop.id)


def test_records_reach_disk_as_they_finish(catalogue: Catalogue, tmp_path: Path) -> None:
    target = BackendTarget("numpy:cpu", NumpyBackend, "cpu", None)
    broken = BackendTarget("crashing:cpu", CrashingSoftmax, "cpu", None)
    missing = BackendTarget("absent:cpu", None, "cpu", None, reason="framework not installed")
    chosen = [catalogue.property("softmax.rows.sum_to_one"), catalogue.property("softmax.formula.matches")]
    with pytest.raises(BackendError, match=r"'absent'.*framework not installed"):
        prepare(RunPlan(catalogue, [("numpy", target), ("absent", missing)], chosen))
    plan = RunPlan(catalogue, [("numpy", target), ("crashing", broken)], chosen)
    jsonl = tmp_path / "run.jsonl"
    seen: list[int] = []

    def progress(record: Any, done: int, total: int) -> None:
        seen.append(len(jsonl.read_text().splitlines()))  # the record is on disk before progress

    document = run(plan, quick_options(), jsonl=jsonl, progress=progress)
    assert seen == [1, 2, 3, 4]
    assert document.status == "complete"
    statuses = {(r.property, r.backend): r.status for r in document.results}
    assert statuses[("softmax.rows.sum_to_one", "crashing:cpu")] == "error"
    assert statuses[("softmax.rows.sum_to_one", "numpy:cpu")] == "pass"
    assert [r.property for r in load(jsonl).results] == [r.property for r in document.results]
    assert len(failed_must(document)) == 2


def test_interrupted_jsonl_keeps_every_whole_record(tmp_path: Path) -> None:
    line = json.dumps({"property": "a.b", "backend": "numpy:cpu", "status": "pass"})
    path = tmp_path / "cut.jsonl"
    path.write_text(line + "\n" + line.replace("a.b", "a.c") + "\n" + line[:20])
    assert [r.property for r in load(path).results] == ["a.b", "a.c"]


def test_parallel_workers_give_the_same_results(catalogue: Catalogue, tmp_path: Path) -> None:
    target = BackendTarget("numpy:cpu", NumpyBackend, "cpu", None)
    chosen = [p for p in catalogue.properties if p.topic == "softmax"]

    def once(workers: int) -> list[tuple[str, str, float | None]]:
        options = RunOptions(profile="ci", seed=1, database=InMemoryExampleDatabase())
        document = run(RunPlan(catalogue, [("numpy", target)], chosen), options, workers=workers)
        return [(r.property, r.status, r.worst_error) for r in document.results]

    serial, parallel, again = once(1), once(2), once(2)
    assert parallel == again  # the same draws in every worker process, run after run
    # Statuses and order match the serial run. Worst errors may not: Hypothesis mixes constants it
    # finds in locally imported modules into its draws, and this test process has imported more.
    assert [(p, s) for p, s, _ in serial] == [(p, s) for p, s, _ in parallel]
    assert all(status == "pass" for _, status, _ in parallel)


class RefusesMasks(NumpyBackend):
    """A kernel that takes no mask, as some fused attention kernels do."""

    name = "refuses-masks"

    def attention_weights(self, q: Any, k: Any, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Any:
        from nnspec.backends import InputNotSupported

        if mask is not None:
            raise InputNotSupported("this kernel takes no mask")
        return super().attention_weights(q, k, mask, is_causal, scale)


def test_refused_inputs_are_discarded_not_failed(catalogue: Catalogue) -> None:
    backend = RefusesMasks()
    some = run_property(catalogue.property("softmax.attention_weights.rows_sum_to_one"), backend, quick_options())
    assert some.status == "pass"  # the unmasked draws still ran
    every = run_property(catalogue.property("masking.keys.masked_weight_zero"), backend, quick_options())
    assert every.status == "skip" and "this kernel takes no mask" in every.message


class Float32SoftmaxOff(NumpyBackend):
    """Softmax is 0.1% off in float32 only."""

    name = "float32-off"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        out = super().softmax(x, axis)
        return out * np.float32(1.001) if out.dtype == np.float32 else out


def test_divergences_mark_a_property_or_leave_out_a_dtype(catalogue: Catalogue) -> None:
    from nnspec import divergences
    from tests.mutants.reference_mutants import CausalMaskOffByOne

    entries = divergences.parse(
        "# the off-by-one kernel\n"
        "masking.causal.first_position_self_only  mutant-*  # whole property\n"
        "softmax.formula.matches  *  dtype=float16,float32  # low precision only\n",
        "test.txt",
    )
    assert entries[1].dtypes == ("float16", "float32")
    backend = CausalMaskOffByOne()
    marked = run_property(catalogue.property("masking.causal.first_position_self_only"), backend,
                          quick_options(), known=entries)
    assert marked.status == "xfail" and "whole property" in marked.message
    # The left-out dtypes are still run briefly: a divergence that did not show is pointed out.
    softmax = catalogue.property("softmax.formula.matches")
    stale_dtype = run_property(softmax, backend, quick_options(), known=entries)
    assert stale_dtype.status == "pass" and "did not show in 10 examples: the entry may be stale" in stale_dtype.message
    confirmed = run_property(softmax, Float32SoftmaxOff(), quick_options(), known=entries)
    assert confirmed.status == "pass" and "not checked in float16, float32" in confirmed.message
    assert "Divergence in float32, float16 confirmed" in confirmed.message
    stale = divergences.parse("softmax.formula.matches  mutant-*  # fixed upstream\n", "t.txt")
    assert run_property(softmax, backend, quick_options(), known=stale).status == "xpass"


def test_malformed_divergence_line_names_file_and_line() -> None:
    import pytest

    from nnspec import divergences
    from nnspec.errors import SpecError

    with pytest.raises(SpecError, match=r"torch\.txt:2.*Received: 'just-one-field'"):
        divergences.parse("# fine\njust-one-field\n", "torch.txt")


def test_a_crashing_checker_is_not_blamed_on_the_backend(catalogue: Catalogue) -> None:
    import dataclasses

    from nnspec.registry import checker

    @checker("test_only_crashing_checker", requires=("softmax",))
    def crashing(case: Any) -> None:
        case.call("softmax", case.array("x", (2, 3), "normal"))
        raise ZeroDivisionError("a bug in the checker")

    prop = dataclasses.replace(catalogue.property("softmax.rows.sum_to_one"), check="test_only_crashing_checker")
    record = run_property(prop, NumpyBackend(), quick_options())
    assert record.status == "error"
    assert record.message.startswith("the checker 'test_only_crashing_checker' raised ZeroDivisionError")
    broken = run_property(catalogue.property("softmax.rows.sum_to_one"), CrashingSoftmax(), quick_options())
    assert broken.message.startswith("the backend raised RuntimeError: kernel launch failed")
