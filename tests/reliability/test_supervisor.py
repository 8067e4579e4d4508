"""The supervisor on its own: workers that cannot start end the run instead of restarting forever."""

from __future__ import annotations

import os
from typing import Any

from nnspec.backends.discovery import resolve
from nnspec.reports.results import Record
from nnspec.runner import RunOptions
from nnspec.spec_loader import load_catalogue
from nnspec.supervisor import MAX_FAILED_STARTS, Supervisor


class DiesOnArrival(RunOptions):
    """Options whose unpickling in a new worker ends that worker with exit code 9, before it is ready."""

    def __reduce__(self) -> Any:
        return (os._exit, (9,))


def test_workers_that_never_become_ready_end_the_run_with_every_pair_an_error() -> None:
    properties = [prop for prop in load_catalogue().properties if prop.id.startswith("softmax.")][:3]
    (target,) = resolve("numpy")
    options = DiesOnArrival(timeout=60)
    supervisor = Supervisor(2, options)
    finished: dict[int, Record] = {}
    try:
        supervisor.run([(index, (prop, "numpy", target)) for index, prop in enumerate(properties)],
                       lambda index, record: finished.__setitem__(index, record))
    finally:
        supervisor.close()
    assert sorted(finished) == [0, 1, 2]
    # Bounded: the run gave up at the limit (a second worker may die in the same moment).
    assert MAX_FAILED_STARTS <= supervisor.failed_starts <= MAX_FAILED_STARTS + 1
    for record in finished.values():
        assert record.status == "error"
        assert f"not run: {MAX_FAILED_STARTS} worker processes died before they were ready" in record.message
        assert "exited with code 9" in record.message
