"""Measuring growth: counted operations and traced memory over a size sweep, and the computations swept."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from nnspec import oracles
from nnspec.claim_checks._common import _rng


class OperationCounter:
    """Runs NumPy computations and counts their operations from the shapes they actually get.

    A matrix product counts one multiply-add per output element per inner index; an elementwise
    operation or reduction one operation per element it reads.
    """

    def __init__(self) -> None:
        self.operations = 0

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = a @ b
        self.operations += int(out.size) * int(a.shape[-1])
        return out

    def elementwise(self, out: np.ndarray, reads: int = 1) -> np.ndarray:
        self.operations += int(out.size) * reads
        return out

    def softmax(self, x: np.ndarray) -> np.ndarray:
        e = self.elementwise(np.exp(x - x.max(axis=-1, keepdims=True)), reads=3)  # max, subtract, exp
        return self.elementwise(e / self.elementwise(e.sum(axis=-1, keepdims=True), reads=x.shape[-1]))


def _counted(run: Callable[[OperationCounter], Any]) -> float:
    counter = OperationCounter()
    run(counter)
    return float(counter.operations)


def _peak_bytes(run: Callable[[], Any]) -> float:
    """Peak bytes that ``run`` allocates beyond what was live when it started (tracemalloc)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        run()
        return float(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()


def fit_exponent(sizes: Sequence[float], costs: Sequence[float]) -> tuple[float, float]:
    """The growth exponent of ``costs`` in ``sizes`` and its uncertainty.

    The exponent is the log-log slope over the upper half of the sweep (where lower-order terms
    matter least); the uncertainty is the larger of the fit's standard error, how far the local
    slopes of that half still move (a sweep not yet asymptotic), and 0.05.
    """
    x, y = np.log(np.asarray(sizes, dtype=np.float64)), np.log(np.maximum(costs, 1.0))
    upper = slice(len(x) // 2 - 1 if len(x) > 3 else 0, None)
    xu, yu = x[upper], y[upper]
    slope, intercept = np.polyfit(xu, yu, 1)
    residual = yu - (slope * xu + intercept)
    spread = float(np.sqrt(np.sum(residual**2) / max(len(xu) - 2, 1) / np.sum((xu - xu.mean()) ** 2)))
    local = np.diff(y) / np.diff(x)
    drift = float(np.ptp(local[-(len(xu) - 1):])) if len(local) > 1 else 0.0
    return float(round(slope, 3)) + 0.0, max(spread, drift, 0.05)


def _attention_core(c: OperationCounter, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    scores = c.elementwise(c.matmul(q, k.T) / math.sqrt(q.shape[-1]))
    return c.matmul(c.softmax(scores), v)


def _tiled_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, block_k: int, block_q: int,
                     traffic: list[int] | None = None) -> np.ndarray:
    """FlashAttention's forward (Dao et al. 2022, Algorithm 1): K, V blocks outside, Q blocks inside,
    running row maxima and sums; ``traffic`` counts elements read from and written to the full arrays."""
    n, d = q.shape
    out, row_max, row_sum = np.zeros((n, d)), np.full(n, -np.inf), np.zeros(n)
    moved = 0
    for j in range(0, n, block_k):
        k_j, v_j = k[j:j + block_k], v[j:j + block_k]
        moved += k_j.size + v_j.size
        for i in range(0, n, block_q):
            q_i, o_i, m_i, l_i = q[i:i + block_q], out[i:i + block_q], row_max[i:i + block_q], row_sum[i:i + block_q]
            moved += q_i.size + o_i.size + m_i.size + l_i.size
            s = q_i @ k_j.T / math.sqrt(d)
            m_new = np.maximum(m_i, s.max(axis=1))
            p = np.exp(s - m_new[:, None])
            scale = np.exp(m_i - m_new)
            l_new = scale * l_i + p.sum(axis=1)
            out[i:i + block_q] = (o_i * (scale * l_i)[:, None] + p @ v_j) / l_new[:, None]
            row_max[i:i + block_q], row_sum[i:i + block_q] = m_new, l_new
            moved += o_i.size + m_i.size + l_i.size
    if traffic is not None:
        traffic.append(moved)
    return out


def _qkv(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = _rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n, d)), rng.standard_normal((n, d))


def _lstm_stream(hidden: int, tokens: int, seed: int = 0) -> np.ndarray:
    """An LSTM reading ``tokens`` inputs one at a time from a generator, keeping only h and C."""
    rng = _rng(seed)
    w = rng.standard_normal((4 * hidden, 2 * hidden)) / math.sqrt(2 * hidden)

    def stream() -> Iterator[np.ndarray]:
        source = _rng(seed + 1)
        for _ in range(tokens):
            yield source.standard_normal(hidden)

    h, c = np.zeros(hidden), np.zeros(hidden)
    for x in stream():
        z = w @ np.concatenate([h, x])
        i, f, o = oracles.sigmoid(z[:hidden]), oracles.sigmoid(z[hidden:2 * hidden]), oracles.sigmoid(z[3 * hidden:])
        c = f * c + i * np.tanh(z[2 * hidden:3 * hidden])
        h = o * np.tanh(c)
    return h


def _strided_keys(n: int) -> list[np.ndarray]:
    """Sparse Transformer's strided pattern: the previous sqrt(n) tokens and every sqrt(n)-th token."""
    stride = max(1, round(math.sqrt(n)))
    keys = []
    for i in range(n):
        local = np.arange(max(0, i - stride + 1), i + 1)
        strided = np.arange(i % stride, i + 1, stride)
        keys.append(np.union1d(local, strided))
    return keys


def _window_attention(c: OperationCounter, q: np.ndarray, k: np.ndarray, v: np.ndarray, window: int) -> np.ndarray:
    n, d = q.shape
    half = window // 2
    padded_k, padded_v = np.pad(k, ((half, half), (0, 0))), np.pad(v, ((half, half), (0, 0)))
    k_windows = np.lib.stride_tricks.sliding_window_view(padded_k, (window, d))[:n, 0]   # (n, window, d)
    v_windows = np.lib.stride_tricks.sliding_window_view(padded_v, (window, d))[:n, 0]
    scores = c.matmul(q[:, None, :], np.swapaxes(k_windows, 1, 2))                        # (n, 1, window)
    return c.matmul(c.softmax(scores / math.sqrt(d)), v_windows)[:, 0]


def _growth_cost(computation: str, n: int, d: int) -> float:
    """The measured cost of one real computation at sizes n (sequence) and d (width)."""
    if computation == "attention_time":
        q, k, v = _qkv(n, d)
        return _counted(lambda c: _attention_core(c, q, k, v))
    if computation == "scores_time":
        q, k, _ = _qkv(n, d)
        return _counted(lambda c: c.matmul(q, k.T))
    if computation == "softmax_time":
        q, k, _ = _qkv(n, d)
        scores = q @ k.T
        return _counted(lambda c: c.softmax(scores))
    if computation == "weighted_sum_time":
        q, k, v = _qkv(n, d)
        weights = oracles.softmax(q @ k.T / math.sqrt(d))
        return _counted(lambda c: c.matmul(weights, v))
    if computation == "attention_memory":
        q, k, v = _qkv(n, d)
        return _peak_bytes(lambda: oracles.softmax(q @ k.T / math.sqrt(d)) @ v)
    if computation == "rnn_time":
        rng = _rng(0)
        w_hh, w_xh, xs = rng.standard_normal((d, d)) / math.sqrt(d), rng.standard_normal((d, d)), rng.standard_normal((n, d))

        def rnn(c: OperationCounter) -> None:
            h = np.zeros(d)
            for x in xs:
                h = c.elementwise(np.tanh(c.elementwise(c.matmul(w_hh, h) + c.matmul(w_xh, x))))
        return _counted(rnn)
    if computation == "lstm_stream_memory":
        return _peak_bytes(lambda: _lstm_stream(d, n))
    if computation == "embedding_time":
        table, ids = _rng(0).standard_normal((1000, d)), _rng(1).integers(0, 1000, n)
        return _counted(lambda c: c.elementwise(table[ids]))
    if computation == "ffn_time":
        rng = _rng(0)
        x, w1, w2 = rng.standard_normal((n, d)), rng.standard_normal((d, 4 * d)), rng.standard_normal((4 * d, d))
        return _counted(lambda c: c.matmul(c.elementwise(np.maximum(c.matmul(x, w1), 0)), w2))
    if computation == "window_attention_time":
        q, k, v = _qkv(n, d)
        return _counted(lambda c: _window_attention(c, q, k, v, window=32))
    if computation == "strided_attention_time":
        q, k, v = _qkv(n, d)

        def strided(c: OperationCounter) -> None:
            for i, keys in enumerate(_strided_keys(n)):
                c.matmul(c.softmax(c.matmul(q[i:i + 1], k[keys].T) / math.sqrt(d)), v[keys])
        return _counted(strided)
    if computation == "score_per_pair":
        q, k, _ = _qkv(n, d)
        return _counted(lambda c: c.matmul(q, k.T)) / (n * n)
    if computation == "decode_step_with_cache":
        q, k, v = _qkv(n, d)                       # k, v: the cache; one new query
        return _counted(lambda c: _attention_core(c, q[-1:], k, v))
    if computation == "decode_step_without_cache":
        rng = _rng(0)
        x, w_q, w_k, w_v = rng.standard_normal((n, d)), *(rng.standard_normal((d, d)) for _ in range(3))

        def recompute(c: OperationCounter) -> None:  # every position's projections and causal attention again
            q, k, v = c.matmul(x, w_q), c.matmul(x, w_k), c.matmul(x, w_v)
            scores = c.matmul(q, k.T) / math.sqrt(d) + np.triu(np.full((n, n), -np.inf), 1)
            c.matmul(c.softmax(scores), v)
        return _counted(recompute)
    if computation == "flash_memory":
        q, k, v = _qkv(n, d)
        # key/value blocks of 128 against all queries at once: tiles of n x 128, never n x n
        return _peak_bytes(lambda: _tiled_attention(q, k, v, block_k=128, block_q=n))
    if computation == "linear_attention_time":
        q, k, v = _qkv(n, d)

        def linear(c: OperationCounter) -> None:
            phi_q, phi_k = _elu_plus_one(q), _elu_plus_one(k)
            c.matmul(phi_q, c.matmul(phi_k.T, v))
        return _counted(linear)
    raise KeyError(computation)


_SWEEPS = {"n": [64, 128, 256, 512, 1024], "d": [16, 32, 64, 128, 256]}
_FIXED = {"n": 256, "d": 32}
_SWEEP_OVERRIDES: dict[str, dict[str, list[int]]] = {
    "rnn_time": {"n": [16, 32, 64, 128, 256]},
    "lstm_stream_memory": {"n": [100, 200, 400, 800, 1600]},
    "flash_memory": {"n": [512, 1024, 2048, 4096]},
    "strided_attention_time": {"n": [256, 1024, 4096, 16384]},
    "decode_step_without_cache": {"n": [128, 256, 512, 1024, 2048]},
    "window_attention_time": {"n": [256, 512, 1024, 2048, 4096]},
}


def _elu_plus_one(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))
