"""The execute stage: backend code runs in supervised worker processes.

A worker is a long-lived child process that keeps its backend instances between pairs. The
supervisor hands it one (property, target) pair at a time and waits for the record. Whatever the
backend does to its process -- segfault, ``os._exit``, ``sys.exit``, a hang in native code, runaway
memory ending in the kernel's kill -- costs only that pair: the supervisor records it as an
``error`` naming the pair and the exit code or signal, starts a fresh worker, and goes on.
``--timeout`` is enforced twice: inside the worker (an alarm, which ends a hang in Python code
with a clean record) and from outside (the supervisor kills a worker that is still silent
``KILL_GRACE`` seconds later, which ends a hang in native code).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from nnspec.backends.discovery import BackendTarget
from nnspec.reports.results import Record
from nnspec.spec_loader import Property

#: Seconds past ``--timeout`` before the supervisor kills a silent worker.
KILL_GRACE = 5.0

Pair = tuple[Property, str, BackendTarget]


def _worker_main(connection: Connection, options: Any) -> None:
    """A worker's loop: run each pair it is sent and send back its record, until told to stop."""
    # Ctrl-C and SIGTERM are the supervisor's to handle; it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from nnspec.runner import BackendPool, error_record, run_property

    pool = BackendPool(options.divergence_files)
    while True:
        try:
            task = connection.recv()
        except EOFError:
            return
        if task is None:
            return
        prop, selector, target = task
        try:
            backend = pool.get(target)
            record = run_property(prop, backend, options, target.selector or selector, pool.known[target.target])
        except BaseException as error:  # a worker reports every fault as its pair's record
            record = error_record(prop, target, options,
                                  f"the pair raised {type(error).__name__}: {error} outside any check")
        connection.send(record.to_json())


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}"
    return f"exited with code {exitcode}"


@dataclass
class _Slot:
    process: Any
    connection: Connection
    index: int | None = None  # the pair it is running
    started: float = 0.0


class Supervisor:
    """Runs pairs on ``workers`` long-lived worker processes, restarting any that dies."""

    def __init__(self, workers: int, options: Any) -> None:
        self.workers = max(1, workers)
        self.options = options
        self.context = multiprocessing.get_context("spawn")
        self.slots: list[_Slot] = []
        self.restarts = 0

    def _start(self) -> _Slot:
        parent, child = self.context.Pipe(duplex=True)
        process = self.context.Process(target=_worker_main, args=(child, self.options), daemon=True,
                                       name="nnspec-worker")
        process.start()
        child.close()
        return _Slot(process, parent)

    def _limit(self) -> float | None:
        timeout = self.options.timeout
        return None if not timeout else float(timeout) + KILL_GRACE

    def run(self, pairs: list[tuple[int, Pair]], finish: Callable[[int, Record], None]) -> None:
        """Run every pair, calling ``finish(index, record)`` as each ends (in completion order).

        The workers stay up for the next call (the pytest plugin sends one pair per call); call
        :meth:`close` when done.
        """
        from nnspec.runner import error_record

        queue = list(reversed(pairs))
        tasks = dict(pairs)
        limit = self._limit()
        self.slots = [slot for slot in self.slots if slot.process.is_alive()]
        while len(self.slots) < min(self.workers, len(pairs)):
            self.slots.append(self._start())
        try:
            while queue or any(slot.index is not None for slot in self.slots):
                for slot in self.slots:
                    if slot.index is None and queue:
                        index, pair = queue.pop()
                        slot.index, slot.started = index, time.monotonic()
                        slot.connection.send(pair)
                busy = [slot for slot in self.slots if slot.index is not None]
                waits: list[Any] = [slot.connection for slot in busy] + [slot.process.sentinel for slot in busy]
                wait_for = None
                if limit is not None:
                    wait_for = max(0.0, min(slot.started + limit for slot in busy) - time.monotonic())
                ready = wait(waits, timeout=wait_for)
                now = time.monotonic()
                for position, slot in enumerate(self.slots):
                    if slot.index is None:
                        continue
                    prop, _, target = tasks[slot.index]
                    message = None
                    if slot.connection in ready:
                        try:
                            record = Record.from_json(slot.connection.recv())
                        except (EOFError, OSError):
                            slot.process.join(1.0)
                            message = (f"the worker process running this pair {describe_exit(slot.process.exitcode)} "
                                       "(a crash or exit in the backend)")
                        else:
                            finish(slot.index, record)
                            slot.index = None
                            continue
                    elif slot.process.sentinel in ready:
                        slot.process.join(1.0)
                        message = (f"the worker process running this pair {describe_exit(slot.process.exitcode)} "
                                   "(a crash or exit in the backend)")
                    elif limit is not None and now - slot.started >= limit:
                        message = (f"no result after {now - slot.started:.0f} s (--timeout {self.options.timeout:g}): "
                                   "the supervisor killed the worker process (a hang in native code?)")
                    if message is None:
                        continue
                    finish(slot.index, error_record(prop, target, self.options,
                                                    f"{prop.id} [{target.target}]: {message}"))
                    self._stop(slot, kill=True)
                    self.restarts += 1
                    if queue:
                        self.slots[position] = self._start()
        except BaseException:
            self.close()  # interrupted: busy workers are killed, idle ones stopped
            raise

    def run_one(self, pair: Pair) -> Record:
        """Run one pair on a worker and return its record."""
        records: list[Record] = []
        self.run([(0, pair)], lambda index, record: records.append(record))
        return records[0]

    def _stop(self, slot: _Slot, kill: bool = False) -> None:
        process = slot.process
        if process.is_alive():
            if not kill:
                with contextlib.suppress(OSError, BrokenPipeError):
                    slot.connection.send(None)
                process.join(0.5)
            if process.is_alive():
                process.kill()
            process.join(2.0)
        with contextlib.suppress(OSError):
            slot.connection.close()
        slot.index = None

    def close(self) -> None:
        """Stop every worker: idle ones are asked to stop, busy ones are killed (at most ~1 s)."""
        for slot in self.slots:
            if slot.process.is_alive():
                if slot.index is None:
                    with contextlib.suppress(OSError, BrokenPipeError):
                        slot.connection.send(None)
                else:
                    slot.process.kill()
        deadline = time.monotonic() + 1.0
        for slot in self.slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(1.0)
            with contextlib.suppress(OSError):
                slot.connection.close()
        self.slots = []
