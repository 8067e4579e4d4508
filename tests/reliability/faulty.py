"""Fault-injecting backends for the reliability table: each breaks its process or its contract.

Each is named by ``tests.reliability.faulty:ClassName`` on the command line; each sets its own
``name`` (so its records are kept apart from the reference), except :class:`SameNameKernel`,
which keeps its parent's name on purpose.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from typing import Any

import numpy as np

from nnspec.backends.numpy import NumpyBackend


class Segfault(NumpyBackend):
    name = "segfault"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        os.kill(os.getpid(), signal.SIGSEGV)
        return super().softmax(x, axis)


class OsExit(NumpyBackend):
    name = "osexit"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        os._exit(0)


class SysExit(NumpyBackend):
    name = "sysexit"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        sys.exit(0)


class RaisesKeyboardInterrupt(NumpyBackend):
    name = "raiseskbi"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        raise KeyboardInterrupt


class RaisesGeneratorExit(NumpyBackend):
    name = "raisesgenexit"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        raise GeneratorExit


class RaisesSystemExit(NumpyBackend):
    name = "raisessysexit"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        raise SystemExit(3)


class NativeHang(NumpyBackend):
    """Hangs where no alarm reaches it, as native code does: SIGALRM is blocked first."""

    name = "nativehang"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)
        return super().softmax(x, axis)


class Slow(NumpyBackend):
    """Correct but slow: for interrupting a run part-way."""

    name = "slow"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        time.sleep(0.3)
        return super().softmax(x, axis)


class WrongShape(NumpyBackend):
    name = "wrongshape"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        return super().softmax(x, axis)[..., :1]


class ReturnsString(NumpyBackend):
    name = "returnsstring"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        return "softmax"


class ReturnsNone(NumpyBackend):
    name = "returnsnone"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        return None


class NonDeterministic(NumpyBackend):
    """Right on every other call, off by 1e-3 on the rest: the same input gives different results."""

    name = "nondeterministic"
    calls = 0

    def softmax(self, x: Any, axis: int = -1) -> Any:
        type(self).calls += 1
        result = super().softmax(x, axis)
        return result + 1e-3 if type(self).calls % 2 else result


class WrongOnce(NumpyBackend):
    """Off by 1e-3 on its first call only: the failure does not reproduce when Hypothesis replays it."""

    name = "wrongonce"
    wrong = True

    def softmax(self, x: Any, axis: int = -1) -> Any:
        result = super().softmax(x, axis)
        if type(self).wrong:
            type(self).wrong = False
            return result + 1e-3
        return result


class NaNSoftmax(NumpyBackend):
    name = "nansoftmax"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        return np.full_like(super().softmax(x, axis), np.nan)


class HostileMessage(NumpyBackend):
    name = "hostile"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        raise RuntimeError("bad \x00 \x1b[31m \x07 \udcff bytes")


class SameNameKernel(NumpyBackend):
    """Keeps NumpyBackend's ``name`` (the collision case) and drops the 1/sqrt(d_k) scaling."""

    def attention(self, q: Any, k: Any, v: Any, mask: Any = None, is_causal: bool = False,
                  scale: float | None = None) -> Any:
        return super().attention(q, k, v, mask=mask, is_causal=is_causal, scale=1.0)


class NoTargets(NumpyBackend):
    name = "notargets"

    @classmethod
    def targets(cls) -> list[str]:
        return []


class ConstructorRaises(NumpyBackend):
    name = "ctorraises"

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        raise RuntimeError("no licence for this kernel")


class DiesWhenLoaded(NumpyBackend):
    """Constructs in the run's own process (so the run starts) but kills every worker that loads it."""

    name = "dieswhenloaded"

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        if multiprocessing.parent_process() is not None:
            os._exit(7)
        super().__init__(device, variant)


class MemoryHog(NumpyBackend):
    """Allocates (and touches) 10 MB every 10 ms without bound; at 3 GB it gives up with MemoryError,
    so a missing limit shows as a wrong message rather than as a machine out of memory."""

    name = "memoryhog"

    def softmax(self, x: Any, axis: int = -1) -> Any:
        chunks = []
        for _ in range(300):
            chunks.append(np.ones(10 * 2**20 // 8))
            time.sleep(0.01)
        raise MemoryError(f"allocated {len(chunks) * 10} MB and no limit stopped it")


class NotABackend:
    name = "notabackend"
