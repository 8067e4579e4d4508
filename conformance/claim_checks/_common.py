"""Small float64 building blocks the claim checks share, and the optional torch import."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np


def _softmax(x: Any, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _self_attention(x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray) -> np.ndarray:
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    return _softmax(q @ k.T / math.sqrt(q.shape[-1])) @ v


def _sinusoidal(positions: np.ndarray, d_model: int) -> np.ndarray:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    frequencies = 1.0 / 10000.0 ** (np.arange(0, d_model, 2) / d_model)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * frequencies[None, :]
    encoding = np.empty((len(positions), d_model))
    encoding[:, 0::2], encoding[:, 1::2] = np.sin(angles), np.cos(angles)
    return encoding


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


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
