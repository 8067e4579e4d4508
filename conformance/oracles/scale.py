"""The scale a result's rounding error is relative to."""

from __future__ import annotations

import numpy as np


def magnitude(values: np.ndarray) -> float:
    """``max |values|`` in float64 (0 for an empty array): the scale of the quantities a result is
    computed from, as :meth:`nnspec.case.Case.close` takes it."""
    return float(np.max(np.abs(np.asarray(values, np.float64)), initial=0.0))
