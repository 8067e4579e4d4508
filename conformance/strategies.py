"""Hypothesis strategies bound to a property's input domain (the :class:`nnspec.case.Case` draws through them).

Speed: drawing whole float arrays through ``hypothesis.extra.numpy.arrays`` costs milliseconds
per example, far more than a backend call on small inputs. So Hypothesis draws, and shrinks, the
*structure* of each example (sizes, dtype, value regime, mask kind, block sizes, a 32-bit seed),
and the bulk of every array comes from a NumPy generator seeded by that draw. Shrinking still
works: sizes shrink towards the domain's minimum, the regime towards the first listed, the seed
towards 0, and a failure replays from the example database because every array is a function of
what Hypothesis drew.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from hypothesis import strategies as st

from nnspec.model import Property
from nnspec.tolerances import cast, round_to_bfloat16

__all__ = ["cast", "pooled_size", "round_to_bfloat16", "structure_strategy"]


def _values(rng: np.random.Generator, shape: tuple[int, ...], regime: str) -> np.ndarray:
    if regime == "normal":
        return rng.standard_normal(shape)
    if regime == "uniform":
        return rng.uniform(-1.0, 1.0, shape)
    if regime == "wide":  # magnitudes spread over three decades, up to about 30
        return rng.standard_normal(shape) * 10.0 ** rng.uniform(-2.0, 1.0, shape)
    if regime == "tiny":
        return rng.standard_normal(shape) * 1e-4
    if regime == "large":
        return rng.standard_normal(shape) * 30.0
    if regime == "ties":
        return rng.integers(-1, 2, shape).astype(np.float64)
    if regime == "integers":
        return rng.integers(-3, 4, shape).astype(np.float64)
    raise ValueError(f"unknown value regime {regime!r}")


_STRUCTURES: dict[tuple[str, tuple[str, ...], int], st.SearchStrategy[dict[str, Any]]] = {}


def pooled_size(name: str, low: int, high: int, slot: int) -> int:
    """The size of ``name`` in pool slot ``slot``: the minimum in slot 0, else a fixed pseudo-random pick.

    The pick depends on the name, the range and the slot only, so properties with the same ranges
    share shapes (and a compiling backend's compiled code), run after run.
    """
    if slot == 0 or low == high:
        return low
    return int(np.random.default_rng(zlib.crc32(f"{name}:{low}:{high}:{slot}".encode())).integers(low, high + 1))


def structure_strategy(prop: Property, dtypes: tuple[str, ...], pool: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """One strategy for every structural choice of an example of ``prop``.

    Sizes come from the domain's ``[min, max]`` ranges, then the dtype (among those the backend
    computes in), the value regime, the mask kind, and the 32-bit seed that fills the arrays.
    Drawing them together costs one Hypothesis draw instead of one per choice.

    With ``pool`` > 0 (a backend that compiles once per input shape sets ``shape_pool``), the sizes
    are not drawn freely: Hypothesis draws one of ``pool`` fixed shapes, slot 0 being every size at
    its minimum, so shrinking still ends at the smallest shape and compilation stays bounded.
    """
    key = (prop.id, dtypes, pool)
    if key not in _STRUCTURES:
        ranges = {
            name: (int(bounds[0]), int(bounds[1]))
            for name, bounds in prop.inputs.items()
            if isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, int) for b in bounds)
        }
        parts: dict[str, st.SearchStrategy[Any]] = {
            "dtype": st.sampled_from(dtypes) if dtypes else st.just("float64"),
            "values": st.sampled_from(prop.inputs.get("values", ["normal"])),
            "mask": st.sampled_from(prop.inputs.get("masks", ["none"])),
            "seed": st.integers(0, 2**32 - 1),
        }
        if pool:
            def sizes(slot: int) -> dict[str, int]:
                return {name: pooled_size(name, low, high, slot) for name, (low, high) in ranges.items()}

            strategy = st.tuples(st.integers(0, pool - 1).map(sizes), st.fixed_dictionaries(parts)).map(
                lambda pair: {**pair[0], **pair[1]})
        else:
            strategy = st.fixed_dictionaries(
                {**{name: st.integers(low, high) for name, (low, high) in ranges.items()}, **parts})
        _STRUCTURES[key] = strategy
    return _STRUCTURES[key]
