"""The execute stage: backend code runs in supervised worker processes.

A worker is a long-lived child process that keeps its backend instances between pairs. The
supervisor hands it one (property, target) pair at a time and waits for the record. Whatever the
backend does to its process -- segfault, ``os._exit``, ``sys.exit``, a hang in native code, runaway
memory -- costs only that pair: the supervisor records it as an ``error`` naming the pair and the
exit code or signal, starts a fresh worker, and goes on.

``--timeout`` is enforced twice: inside the worker (an alarm, which ends a hang in Python code
with a clean record) and from outside (the supervisor kills a worker that is still silent
``KILL_GRACE`` seconds later, which ends a hang in native code). ``--memory-limit`` is enforced
from outside: the supervisor reads each worker's resident memory from ``/proc`` every
``POLL_SECONDS`` and kills a worker past the limit (Linux only; elsewhere there is no limit).

A worker says when it is ready (its imports done) and, for each pair, when its target is loaded
(the backend module imported and its class constructed). A worker that dies before it is ready
``MAX_FAILED_STARTS`` times ends the run: the pairs not yet run become errors. A worker that dies
while loading one target ``MAX_FAILED_LOADS`` times makes that target's remaining pairs errors;
the other targets go on. So a crash on start-up never makes the supervisor restart forever.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from nnspec.backends.discovery import BackendTarget
from nnspec.reports.results import Record
from nnspec.spec_loader import Property

#: Seconds past ``--timeout`` before the supervisor kills a silent worker.
KILL_GRACE = 5.0
#: Seconds between two reads of the workers' memory.
POLL_SECONDS = 0.1
#: Seconds a new worker may take to import nnspec and say it is ready.
READY_SECONDS = 120.0
#: Workers that die before they are ready, in one run, before the run gives up.
MAX_FAILED_STARTS = 3
#: Workers that die while loading one target before that target's remaining pairs are given up.
MAX_FAILED_LOADS = 2

Pair = tuple[Property, str, BackendTarget]


def _worker_main(connection: Connection, options: Any) -> None:
    """A worker's loop: run each pair it is sent and send back its record, until told to stop.

    It sends ``("ready", None)`` once its imports are done, ``("loaded", None)`` once a pair's
    target is constructed, then ``("record", record)``.
    """
    # Ctrl-C and SIGTERM are the supervisor's to handle; it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from nnspec.runner import BackendPool, error_record, run_property

    pool = BackendPool(options.divergence_files)
    connection.send(("ready", None))
    while True:
        try:
            task = connection.recv()  # unpickling the pair imports the target's backend module
        except EOFError:
            return
        if task is None:
            return
        prop, selector, target = task
        try:
            backend = pool.get(target)
        except BaseException as error:  # a worker reports every fault as its pair's record
            record = error_record(prop, target, options, f"constructing target {target.target!r} raised "
                                  f"{type(error).__name__}: {error}")
            connection.send(("record", record.to_json()))
            continue
        connection.send(("loaded", None))
        try:
            record = run_property(prop, backend, options, target.selector or selector, pool.known[target.target])
        except BaseException as error:
            record = error_record(prop, target, options,
                                  f"the pair raised {type(error).__name__}: {error} outside any check")
        connection.send(("record", record.to_json()))


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


def physical_memory_mb() -> int | None:
    """This machine's physical memory in MB, where the platform says."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)
    except (AttributeError, ValueError, OSError):
        return None


def default_memory_limit_mb(workers: int) -> int | None:
    """The default ``--memory-limit``: half the physical memory, shared among the workers."""
    physical = physical_memory_mb()
    return None if physical is None else max(256, physical // 2 // max(1, workers))


def resident_mb(pid: int) -> float | None:
    """A process's resident memory in MB from ``/proc`` (None where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as stream:
            resident_pages = int(stream.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class _Slot:
    process: Any
    connection: Connection
    index: int | None = None  # the pair it is running
    started: float = 0.0  # when it was started, then when its pair was sent
    ready: bool = False  # its imports are done
    loaded: bool = False  # its pair's target is constructed


class Supervisor:
    """Runs pairs on ``workers`` long-lived worker processes, restarting any that dies."""

    def __init__(self, workers: int, options: Any) -> None:
        self.workers = max(1, workers)
        self.options = options
        self.context = multiprocessing.get_context("spawn")
        self.slots: list[_Slot] = []
        self.restarts = 0
        self.failed_starts = 0
        self.failed_loads: dict[str, int] = {}
        limit = getattr(options, "memory_limit_mb", None)
        self.memory_limit_mb = limit if limit is not None else default_memory_limit_mb(self.workers)

    def _start(self) -> _Slot:
        parent, child = self.context.Pipe(duplex=True)
        process = self.context.Process(target=_worker_main, args=(child, self.options), daemon=True,
                                       name="nnspec-worker")
        process.start()
        child.close()
        return _Slot(process, parent, started=time.monotonic())

    def _limit(self) -> float | None:
        timeout = self.options.timeout
        return None if not timeout else float(timeout) + KILL_GRACE

    def _wait_seconds(self, now: float) -> float | None:
        """How long the supervisor may wait before it must look at a worker again."""
        limit = self._limit()
        deadlines = [slot.started + READY_SECONDS for slot in self.slots if not slot.ready]
        if limit is not None:
            deadlines += [slot.started + limit for slot in self.slots if slot.index is not None]
        wait_for = max(0.0, min(deadlines) - now) if deadlines else None
        if self.memory_limit_mb is not None:
            wait_for = POLL_SECONDS if wait_for is None else min(wait_for, POLL_SECONDS)
        return wait_for

    def _service(self, slot: _Slot, ready: list[Any], now: float, finish: Callable[[int, Record], None]) -> str | None:
        """Take in what the slot's worker sent; return what ended it or why it is to be killed, or
        None if it is well. A worker that ended by itself is said to have "died"."""
        if slot.connection in ready:
            try:
                while slot.connection.poll():
                    kind, payload = slot.connection.recv()
                    if kind == "ready":
                        slot.ready = True
                    elif kind == "loaded":
                        slot.loaded = True
                    elif slot.index is not None:
                        index, slot.index, slot.loaded = slot.index, None, False
                        finish(index, Record.from_json(payload))
            except (EOFError, OSError):
                pass  # it died: the sentinel says how, below
        if slot.process.sentinel in ready or not slot.process.is_alive():
            slot.process.join(1.0)
            return f"the worker process died ({describe_exit(slot.process.exitcode)})"
        if not slot.ready and now - slot.started >= READY_SECONDS:
            return f"the worker process was not ready after {READY_SECONDS:.0f} s and was killed"
        limit = self._limit()
        if slot.index is not None and limit is not None and now - slot.started >= limit:
            return (f"no result after {now - slot.started:.0f} s (--timeout {self.options.timeout:g}): "
                    "the supervisor killed the worker process (a hang in native code?)")
        if self.memory_limit_mb is not None:
            resident = resident_mb(slot.process.pid)
            if resident is not None and resident > self.memory_limit_mb:
                return (f"exceeded the memory limit of {self.memory_limit_mb:g} MB (--memory-limit): "
                        f"the worker process reached {resident:.0f} MB and the supervisor killed it")
        return None

    def run(self, pairs: list[tuple[int, Pair]], finish: Callable[[int, Record], None]) -> None:
        """Run every pair, calling ``finish(index, record)`` as each ends (in completion order).

        The workers stay up for the next call (the pytest plugin sends one pair per call); call
        :meth:`close` when done.
        """
        from nnspec.runner import error_record

        queue = deque(pairs)
        tasks = dict(pairs)

        def give_up(index: int, message: str) -> None:
            prop, _, target = tasks[index]
            finish(index, error_record(prop, target, self.options, f"{prop.id} [{target.target}]: {message}"))

        self.slots = [slot for slot in self.slots if slot.process.is_alive()]
        while len(self.slots) < min(self.workers, len(pairs)):
            self.slots.append(self._start())
        try:
            while self.slots and (queue or any(slot.index is not None for slot in self.slots)):
                for slot in self.slots:
                    if slot.ready and slot.index is None and queue:
                        index, pair = queue.popleft()
                        slot.index, slot.loaded, slot.started = index, False, time.monotonic()
                        slot.connection.send(pair)
                waits: list[Any] = [slot.connection for slot in self.slots] + [slot.process.sentinel
                                                                               for slot in self.slots]
                ready = wait(waits, timeout=self._wait_seconds(time.monotonic()))
                now = time.monotonic()
                kept: list[_Slot] = []
                for slot in self.slots:
                    problem = self._service(slot, ready, now, finish)
                    if problem is None:
                        kept.append(slot)
                        continue
                    self._stop(slot, kill=True)
                    self.restarts += 1
                    if not slot.ready:
                        self.failed_starts += 1
                        if self.failed_starts >= MAX_FAILED_STARTS:
                            while queue:
                                give_up(queue.popleft()[0], f"not run: {self.failed_starts} worker processes "
                                        f"died before they were ready (the last: {problem})")
                    elif slot.index is not None:
                        index, slot.index = slot.index, None
                        target = tasks[index][2].target
                        if slot.loaded:
                            died = problem.startswith("the worker process died")
                            give_up(index, f"{problem} while running this pair (a crash or exit in the backend)"
                                    if died else problem)
                        else:
                            self.failed_loads[target] = self.failed_loads.get(target, 0) + 1
                            give_up(index, f"{problem} while loading target {target!r} (importing its backend "
                                    "module or constructing it)")
                            if self.failed_loads[target] >= MAX_FAILED_LOADS:
                                for left in [entry for entry in queue if entry[1][2].target == target]:
                                    queue.remove(left)
                                    give_up(left[0], f"not run: the worker process died each of the "
                                            f"{self.failed_loads[target]} times it loaded target {target!r} "
                                            f"(the last: {problem})")
                    if queue:
                        kept.append(self._start())
                self.slots = kept
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

    def close(self) -> None:
        """Stop every worker: idle ones are asked to stop, busy ones are killed (at most ~1 s)."""
        for slot in self.slots:
            if slot.process.is_alive():
                if slot.index is None and slot.ready:
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
