"""The worked example of the README's "Writing a backend" section (tests/test_backend_plugins.py runs it).

A kernel author wants to know whether a base-2 softmax (the way flash-attention kernels
compute ``exp``) still honours every softmax property. Subclass the reference backend,
override the one primitive, and let nnspec check it; every other primitive is inherited,
so every other property re-checks the reference and only softmax tests new code.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from nnspec.backends import Unavailable
from nnspec.backends.numpy import NumpyBackend

LOG2_E = 1.4426950408889634


class Base2SoftmaxBackend(NumpyBackend):
    """The NumPy reference backend with a base-2 softmax."""

    name: ClassVar[str] = "base2-softmax"  # results name its targets "base2-softmax:cpu"

    def softmax(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        # exp(x - max) == 2 ** ((x - max) * log2(e)); computed in x's own dtype.
        shifted = (x - np.max(x, axis=axis, keepdims=True)) * np.asarray(LOG2_E, dtype=x.dtype)
        powers = np.exp2(shifted)
        return powers / np.sum(powers, axis=axis, keepdims=True)


class GpuOnlyBackend(Base2SoftmaxBackend):
    """A backend that can only run where its (here imaginary) GPU runtime imports."""

    name: ClassVar[str] = "gpu-only"

    @classmethod
    def targets(cls) -> list[str]:
        return ["gpu"]

    @classmethod
    def available(cls, device: str = "gpu") -> tuple[bool, str]:
        try:
            import my_gpu_runtime  # noqa: F401
        except ImportError:
            return False, "my_gpu_runtime is not installed: pip install my-gpu-runtime"
        return True, ""

    def __init__(self, device: str = "gpu", variant: str | None = None) -> None:
        ok, reason = self.available(device)
        if not ok:
            raise Unavailable(reason)
        super().__init__(device, variant)


def main() -> dict[str, object]:
    """Use the backend directly, the way nnspec's checkers do: NumPy in, NumPy out."""
    backend = Base2SoftmaxBackend()
    reference = NumpyBackend()
    logits = np.array([[3.0, 0.0, 0.0], [1000.0, 1000.0, -1000.0]])
    ours = backend.to_numpy(backend.softmax(backend.asarray(logits)))
    theirs = reference.to_numpy(reference.softmax(reference.asarray(logits)))
    return {
        "target": backend.target,
        "supports softmax": backend.supports("softmax"),
        "supports vjp": backend.supports("vjp"),  # inherited from the reference
        "max difference from the reference": float(np.max(np.abs(ours - theirs))),
        "gpu-only available here": GpuOnlyBackend.available("gpu"),
    }


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}: {value}")
