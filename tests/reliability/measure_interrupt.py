"""Time from Ctrl-C (SIGINT) to exit of ``nnspec run --workers 2`` in the middle of a run.

A measurement, not a test: ``python -m tests.reliability.measure_interrupt [TRIES]`` prints each
try and the median. Each try is the interrupt row of ``test_runs.py`` (two slow pairs finished,
workers busy), and checks what that row checks: exit status 3 and an ``interrupted`` document.
"""

from __future__ import annotations

import signal
import statistics
import sys
import tempfile
from pathlib import Path

from tests.reliability.test_runs import _interrupt


def main(tries: int = 5) -> None:
    seconds = []
    for attempt in range(tries):
        with tempfile.TemporaryDirectory() as folder:
            elapsed, outcome = _interrupt(Path(folder), signal.SIGINT, 2)
        assert outcome.code == 3 and outcome.document is not None, outcome.out
        assert outcome.document["status"] == "interrupted"
        seconds.append(elapsed)
        print(f"try {attempt + 1}: {elapsed:.2f} s from SIGINT to exit")
    print(f"median of {tries}: {statistics.median(seconds):.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
