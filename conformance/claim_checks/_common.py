"""Small float64 building blocks the claim checks share, and the optional torch import."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from nnspec import oracles


def _self_attention(x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray) -> np.ndarray:
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    return oracles.softmax(q @ k.T / math.sqrt(q.shape[-1])) @ v


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _torch() -> Any:
    """torch, or None where it is not installed (its facts then stay uncomputed: *unchecked*)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _z(false_alarm: float) -> float:
    """The two-sided normal quantile for a test whose false-alarm rate is ``false_alarm``."""
    return NormalDist().inv_cdf(1 - false_alarm / 2)
