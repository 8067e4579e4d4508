"""The registered claim checks: each computes a quantity a document makes a claim about.

Every function takes only the spec's ``check.params`` (never the claimed value: the registry
refuses a check with a ``claimed`` parameter) and returns a :class:`nnspec.claims.Measurement`:
named quantities and facts, computed from real arrays in float64 NumPy, from real framework objects
where the claim is about a framework (imported inside the check; absent, the fact is ``None`` and
the claim *unchecked*), from sampled statistics with a stated false-alarm rate, or from
operation counts and memory peaks measured over a size sweep. :func:`nnspec.claims.judge` holds
the claimed data against them. Random inputs come from fixed seeds, so a verdict never changes
between runs.
"""

from __future__ import annotations

import math
import tracemalloc
import warnings
from collections.abc import Callable, Iterator, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from nnspec.claims import Condition, Measurement, claim_check

# --- small float64 building blocks ------------------------------------------------------------------


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


# --- measuring growth: counted operations and traced memory over a size sweep --------------------------


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
        i, f, o = _sigmoid(z[:hidden]), _sigmoid(z[hidden:2 * hidden]), _sigmoid(z[3 * hidden:])
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
        weights = _softmax(q @ k.T / math.sqrt(d))
        return _counted(lambda c: c.matmul(weights, v))
    if computation == "attention_memory":
        q, k, v = _qkv(n, d)
        return _peak_bytes(lambda: _softmax(q @ k.T / math.sqrt(d)) @ v)
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


@claim_check("measured_exponent")
def measured_exponent(computation: str, variables: list[str], fixed: dict[str, int] | None = None,
                      held_constant: list[str] | None = None) -> Measurement:
    """The growth exponent of a real computation's counted operations or traced memory in each size.

    Each variable is swept (the others held at ``fixed``); the exponent is fitted with
    :func:`fit_exponent`, and the claim is judged within the fit's uncertainty. ``held_constant``
    names sizes a claim may be read as treating as constants (a condition the text leaves out).
    """
    sizes = {**_FIXED, **(fixed or {})}
    values: dict[str, Any] = {}
    tolerance: dict[str, float] = {}
    sweeps: dict[str, Any] = {}
    for variable in variables:
        grid = _SWEEP_OVERRIDES.get(computation, {}).get(variable, _SWEEPS[variable])
        costs = [_growth_cost(computation, **{**sizes, variable: g}) for g in grid]
        values[variable], tolerance[variable] = fit_exponent(grid, costs)
        sweeps[variable] = {"sizes": grid, "costs": costs}
    what = "traced peak bytes" if computation.endswith("memory") else "counted operations"
    shown = ", ".join(f"{v}^{values[v]:g} (+-{tolerance[v]:.2g})" for v in variables)
    under: tuple[Condition, ...] = ()
    if held_constant:
        under = (Condition(f"with {', '.join(held_constant)} held constant", dict.fromkeys(held_constant, 0.0)),)
    return Measurement({**values, "sweeps": sweeps}, f"{computation}: {what} over a size sweep grow as {shown}.",
                       tolerance=tolerance, under=under)


def _elu_plus_one(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


# --- softmax -------------------------------------------------------------------------------------------


@claim_check("softmax_values")
def softmax_values(logits: list[float]) -> Measurement:
    """softmax(logits) in float64."""
    weights = _softmax(logits)
    return Measurement({"weights": weights}, f"softmax({logits}) = {np.round(weights, 4).tolist()}.",
                       primary="weights")


@claim_check("softmax_near_one_hot")
def softmax_near_one_hot(logits: list[float], tolerance: float) -> Measurement:
    """softmax(logits), judged within ``tolerance`` (what "essentially" allows)."""
    weights = _softmax(logits)
    return Measurement({"weights": weights}, f"softmax({logits}) = {weights.tolist()}.", primary="weights",
                       tolerance={"weights": tolerance})


@claim_check("exponentials")
def exponentials(values: list[float]) -> Measurement:
    """exp of each value."""
    computed = np.exp(np.asarray(values, dtype=np.float64))
    return Measurement({"exponentials": computed}, f"exp({values}) = {np.round(computed, 4).tolist()}.",
                       primary="exponentials")


@claim_check("exponential_sum")
def exponential_sum(values: list[float]) -> Measurement:
    """The softmax denominator: sum of exp(values); also the sum of the exponentials rounded to 2 decimals."""
    exact = float(np.exp(np.asarray(values, dtype=np.float64)).sum())
    rounded = float(np.round(np.exp(values), 2).sum())
    return Measurement({"sum": exact, "sum_of_rounded": rounded},
                       f"sum of exp({values}) = {exact:.4f}; of the exponentials rounded to two decimals {rounded:.2f}.",
                       primary="sum")


@claim_check("softmax_self_derivative")
def softmax_self_derivative(logits: list[float], positions: list[int]) -> Measurement:
    """d softmax_i / d z_i at the given positions, by central differences of the softmax itself."""
    eps = 1e-6
    derivatives = []
    for i in positions:
        step = np.zeros(len(logits))
        step[i] = eps
        derivatives.append(float((_softmax(np.add(logits, step))[i] - _softmax(np.subtract(logits, step))[i]) / (2 * eps)))
    weights = _softmax(logits)
    return Measurement({"derivatives": derivatives, "weights": weights},
                       f"at softmax({logits}) = {np.round(weights, 4).tolist()}, d p_i / d z_i at positions {positions} "
                       f"is {np.round(derivatives, 4).tolist()} (= p(1 - p)).", primary="derivatives", band=0.02)


@claim_check("softmax_saturation")
def softmax_saturation(d_k: int, length: int = 16, rows: int = 4000, seed: int = 0) -> Measurement:
    """Mean Frobenius norm of the softmax Jacobian for unit-variance q, k: raw q.k versus q.k / sqrt(d_k)."""
    rng = _rng(seed)
    q = rng.standard_normal((rows, 1, d_k))
    k = rng.standard_normal((rows, length, d_k))
    raw = np.einsum("rid,rjd->rj", q, k)

    def mean_jacobian_norm(scores: np.ndarray) -> float:
        p = _softmax(scores)
        jacobians = p[:, :, None] * np.eye(length)[None] - p[:, :, None] * p[:, None, :]
        return float(np.linalg.norm(jacobians, axis=(1, 2)).mean())

    unscaled, scaled = mean_jacobian_norm(raw), mean_jacobian_norm(raw / math.sqrt(d_k))
    return Measurement({"jacobian_norm_unscaled": unscaled, "jacobian_norm_scaled": scaled},
                       f"with d_k = {d_k} and {length} keys, the softmax Jacobian's mean norm is {unscaled:.3g} on raw "
                       f"scores and {scaled:.3g} after dividing by sqrt(d_k).")


# --- dot-product statistics -----------------------------------------------------------------------------


def _dot_products(d_k: int, samples: int, seed: int, unit_norm: bool = False) -> np.ndarray:
    rng = _rng(seed)
    chunks = []
    for _ in range(samples // 10_000):
        q, k = rng.standard_normal((10_000, d_k)), rng.standard_normal((10_000, d_k))
        if unit_norm:
            q, k = q / np.linalg.norm(q, axis=1, keepdims=True), k / np.linalg.norm(k, axis=1, keepdims=True)
        chunks.append(np.einsum("nd,nd->n", q, k))
    return np.concatenate(chunks)


def _variance_test(s: np.ndarray, false_alarm: float) -> tuple[float, float]:
    """Sample variance and the half-width of its two-sided test band at the false-alarm rate."""
    centred = s - s.mean()
    variance = float(np.mean(centred**2))
    standard_error = float(np.sqrt(np.var(centred**2) / len(s)))
    return variance, _z(false_alarm) * standard_error


@claim_check("dot_product_variance")
def dot_product_variance(d_k: int, scaled: bool = False, samples: int = 200_000, seed: int = 0,
                         false_alarm: float = 1e-3) -> Measurement:
    """Sampled Var(q.k) (or of q.k / sqrt(d_k)) for independent N(0, 1) entries, with a test band."""
    s = _dot_products(d_k, samples, seed) / (math.sqrt(d_k) if scaled else 1.0)
    variance, band = _variance_test(s, false_alarm)
    return Measurement({"variance": variance, "samples": len(s), "test_half_width": band},
                       f"{len(s):,} sampled dot products of {d_k}-dimensional N(0, I) vectors"
                       f"{' divided by sqrt(d_k)' if scaled else ''} have variance {variance:.4g}; a claim within "
                       f"+-{band:.3g} of it passes a test with false-alarm rate {false_alarm:g}.",
                       primary="variance", tolerance={"variance": band})


@claim_check("normalised_dot_product_variance")
def normalised_dot_product_variance(d_k: int, samples: int = 200_000, seed: int = 0,
                                    false_alarm: float = 1e-3) -> Measurement:
    """Sampled Var(q.k / sqrt(d_k)) for unit-norm q, k, and for unit-variance entries."""
    unit_norm = _dot_products(d_k, samples, seed, unit_norm=True) / math.sqrt(d_k)
    unit_variance = _dot_products(d_k, samples, seed + 1) / math.sqrt(d_k)
    v_norm, band_norm = _variance_test(unit_norm, false_alarm)
    v_var, band_var = _variance_test(unit_variance, false_alarm)
    return Measurement({"scaled_variance": v_norm, "scaled_variance_unit_variance_entries": v_var},
                       f"q.k / sqrt({d_k}) has variance {v_norm:.3g} (1/d_k^2 = {1 / d_k**2:.3g}) for unit-norm q, k and "
                       f"{v_var:.4g} for unit-variance entries (test bands +-{band_norm:.2g}, +-{band_var:.2g} at false-alarm "
                       f"rate {false_alarm:g}).",
                       tolerance={"scaled_variance": band_norm},
                       under=(Condition("if 'normalised' means unit-variance entries rather than unit-norm vectors",
                                        {"scaled_variance": v_var}, {"scaled_variance": band_var}),))


@claim_check("dot_product_spread")
def dot_product_spread(d_k: int, sigmas: float = 3, scaled: bool = False, samples: int = 200_000, seed: int = 0,
                       false_alarm: float = 1e-3) -> Measurement:
    """The +-sigmas standard-deviation range of sampled q.k (or q.k / sqrt(d_k)), and the share inside it."""
    s = _dot_products(d_k, samples, seed) / (math.sqrt(d_k) if scaled else 1.0)
    variance, band = _variance_test(s, false_alarm)
    std = math.sqrt(variance)
    bound = sigmas * std
    inside = float(np.mean(np.abs(s) <= bound))
    half_width = sigmas * band / (2 * std)  # delta method: d sqrt(v) = dv / (2 sqrt(v))
    return Measurement({"range": [-bound, bound], "share_inside": inside},
                       f"{len(s):,} sampled dot products have standard deviation {std:.4g}, so {sigmas:g} of them span "
                       f"+-{bound:.4g} (test band +-{half_width:.2g}); {inside:.2%} fall inside.",
                       primary="range", tolerance={"range": half_width})


@claim_check("dot_product_magnitude")
def dot_product_magnitude(d_k: int, samples: int = 50_000, seed: int = 0, false_alarm: float = 1e-3) -> Measurement:
    """How large raw and scaled dot products typically get (three sampled standard deviations)."""
    s = _dot_products(d_k, samples, seed)
    variance, band = _variance_test(s, false_alarm)
    std = math.sqrt(variance)
    largest = float(np.abs(s).max())
    return Measurement({"typical_raw_extent": 3 * std, "typical_scaled_extent": 3 * std / math.sqrt(d_k),
                        "largest_of_samples": largest},
                       f"with unit-variance entries q.k has standard deviation {std:.1f}: typically within +-{3 * std:.0f} "
                       f"(+-{3 * std / math.sqrt(d_k):.1f} after dividing by sqrt({d_k})); the largest of {len(s):,} "
                       f"samples is {largest:.0f}. Figures of +-200 and +-10 would need entries of variance about 3.",
                       tolerance={"typical_raw_extent": 3 * band / (2 * std),
                                  "typical_scaled_extent": 3 * band / (2 * std) / math.sqrt(d_k)})


@claim_check("square_root")
def square_root(value: float) -> Measurement:
    """sqrt(value), by Newton's iteration from value itself."""
    root = float(value)
    for _ in range(100):
        root = (root + value / root) / 2
    return Measurement({"root": root}, f"sqrt({value:g}) = {root:.4f}.", primary="root")


# --- counting attention work ---------------------------------------------------------------------------


@claim_check("attention_scores")
def attention_scores(n: int, heads: int = 1, layers: int = 1, bytes_per_score: int | None = None,
                     seconds_per_score: float | None = None, unit_seconds: float = 1.0) -> Measurement:
    """n^2 scores per head per layer (one per query-key pair), times heads and layers; optionally bytes or seconds.

    """
    scores = float(n) ** 2 * heads * layers
    factors = f"{n:,}^2" + (f" x {heads} heads" if heads > 1 else "") + (f" x {layers} layers" if layers > 1 else "")
    computed, what = scores, f"{factors} = {scores:.4g} scores"
    if bytes_per_score is not None:
        computed = scores * bytes_per_score
        what += f", x {bytes_per_score} bytes = {computed:.4g} bytes"
    if seconds_per_score is not None:
        computed = scores * seconds_per_score / unit_seconds
        what += f", x {seconds_per_score:g} s = {computed:.4g} x {unit_seconds:g} s"
    return Measurement({"value": computed, "scores": scores}, f"{what}.", primary="value")


@claim_check("attention_scores_ratio")
def attention_scores_ratio(n_from: int, n_to: int) -> Measurement:
    """How many times more scores n_to tokens need than n_from: (n_to / n_from)^2."""
    ratio = (n_to / n_from) ** 2
    return Measurement({"ratio": ratio}, f"({n_to:,} / {n_from:,})^2 = {ratio:g}.", primary="ratio")


@claim_check("window_attention")
def window_attention(n: int, window: int, measure: str = "scores", bytes_per_score: int = 4) -> Measurement:
    """Local attention keeps n x window scores: the count, the reduction n^2 / (n window), or the bytes."""
    values = {"scores": float(n) * window, "reduction": n / window, "bytes": float(n) * window * bytes_per_score}
    return Measurement({"value": values[measure], **values},
                       f"{n:,} tokens x {window} keys each: {measure} = {values[measure]:.4g}; with the token itself as "
                       f"well ({window + 1} keys) the reduction is {n / (window + 1):.1f}.", primary="value")


@claim_check("attention_bottleneck")
def attention_bottleneck(d_model: int = 64, lengths: list[int] | None = None) -> Measurement:
    """Counted operations of a real transformer layer (projections, attention, feed-forward) over lengths."""
    lengths = lengths or [16, 32, 64, 128, 256, 512, 1024, 2048]
    rng = _rng(0)
    d = d_model
    w = {name: rng.standard_normal(shape) / math.sqrt(shape[0]) for name, shape in
         {"q": (d, d), "k": (d, d), "v": (d, d), "o": (d, d), "up": (d, 4 * d), "down": (4 * d, d)}.items()}
    shares = []
    for n in lengths:
        x = rng.standard_normal((n, d))
        linear, attention = OperationCounter(), OperationCounter()
        q, k, v = linear.matmul(x, w["q"]), linear.matmul(x, w["k"]), linear.matmul(x, w["v"])
        mixed = _attention_core(attention, q, k, v)
        hidden = linear.elementwise(np.maximum(linear.matmul(linear.matmul(mixed, w["o"]) + x, w["up"]), 0))
        linear.matmul(hidden, w["down"])
        shares.append(attention.operations / (attention.operations + linear.operations))
    crossover = next((n for n, share in zip(lengths, shares, strict=True) if share > 0.5), None)
    return Measurement({"attention_share_at_longest": shares[-1], "attention_share_at_shortest": shares[0],
                        "shares": dict(zip(map(str, lengths), shares, strict=True)), "crossover_tokens": crossover},
                       f"counting a layer's operations with d_model = {d}: attention's share is {shares[0]:.0%} at "
                       f"{lengths[0]} tokens and {shares[-1]:.0%} at {lengths[-1]}; it passes half from "
                       f"{crossover} tokens (about {crossover / d if crossover else float('nan'):.0f} d_model).")


@claim_check("kv_cache_total")
def kv_cache_total(tokens: int, d: int = 8, seed: int = 0) -> Measurement:
    """Generate ``tokens`` steps of causal self-attention with and without a K, V cache, counting operations."""
    rng = _rng(seed)
    w_q, w_k, w_v = (rng.standard_normal((d, d)) / math.sqrt(d) for _ in range(3))
    x = rng.standard_normal((tokens, d))
    with_cache, without = OperationCounter(), OperationCounter()
    keys: list[np.ndarray] = []
    values: list[np.ndarray] = []
    gap = 0.0
    for t in range(1, tokens + 1):
        keys.append(with_cache.matmul(x[t - 1:t], w_k))
        values.append(with_cache.matmul(x[t - 1:t], w_v))
        cached = _attention_core(with_cache, with_cache.matmul(x[t - 1:t], w_q), np.vstack(keys), np.vstack(values))
        prefix = x[:t]
        q, k, v = without.matmul(prefix, w_q), without.matmul(prefix, w_k), without.matmul(prefix, w_v)
        scores = without.matmul(q, k.T) / math.sqrt(d) + np.triu(np.full((t, t), -np.inf), 1)
        recomputed = without.matmul(without.softmax(scores), v)[-1]
        gap = max(gap, float(np.max(np.abs(recomputed - cached[0]))))
    ratio = without.operations / with_cache.operations
    return Measurement({"operations_without_cache": float(without.operations),
                        "operations_with_cache": float(with_cache.operations), "ratio": ratio, "output_gap": gap},
                       f"generating {tokens} tokens (d = {d}) costs {without.operations:.4g} counted operations "
                       f"recomputing every step and {with_cache.operations:.4g} with a cache ({ratio:.0f}x fewer); "
                       f"the outputs agree to {gap:.1e}.")


@claim_check("padding_speedup")
def padding_speedup(lengths: list[int], d: int = 16, seed: int = 0) -> Measurement:
    """Batching padded sequences against one at a time: counted operations and forward calls of real attention."""
    rng = _rng(seed)
    longest = max(lengths)
    one_by_one, batched = OperationCounter(), OperationCounter()
    sequences = [rng.standard_normal((n, d)) for n in lengths]
    for x in sequences:
        _attention_core(one_by_one, x, x, x)
    batch = np.stack([np.pad(x, ((0, longest - len(x)), (0, 0))) for x in sequences])
    mask = np.arange(longest)[None, None, :] < np.asarray(lengths)[:, None, None]
    scores = batched.elementwise(batched.matmul(batch, np.swapaxes(batch, 1, 2)) / math.sqrt(d))
    batched.matmul(batched.softmax(np.where(mask, scores, -np.inf)), batch)
    by_operations = one_by_one.operations / batched.operations
    by_calls = len(lengths) / 1
    return Measurement({"speedup": by_operations, "calls_one_by_one": len(lengths), "calls_batched": 1,
                        "padding_share": 1 - sum(lengths) / (len(lengths) * longest)},
                       f"with lengths {lengths} padded to {longest}, batching does {batched.operations:,} counted operations "
                       f"against {one_by_one.operations:,} one by one ({by_operations:.2f}x as fast by work); it makes "
                       f"1 forward call instead of {len(lengths)}, which is {by_calls:.0f}x only if a call costs the same "
                       f"whatever its size.",
                       primary="speedup",
                       under=(Condition("if a forward call costs the same whatever its size (a launch-bound device)",
                                        {"speedup": by_calls}),))


# --- memory for training ---------------------------------------------------------------------------------


def _adam_state_bytes_per_parameter() -> float | None:
    """Bytes of optimizer state torch.optim.Adam keeps per parameter, measured after one step."""
    torch = _torch()
    if torch is None:
        return None
    model = torch.nn.Linear(32, 16)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(4, 32)).sum().backward()
    optimizer.step()
    count = sum(p.numel() for p in model.parameters())
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                if torch.is_tensor(t) and t.numel() > 1)
    return float(state / count)


@claim_check("training_memory")
def training_memory(parameters: float, parts: list[str], shards: int = 1, text_adam_bytes: float | None = None) -> Measurement:
    """Bytes of the named training state for ``parameters`` parameters, over ``shards`` devices.

    Parts: ``weights_fp16``, ``gradients_fp16`` (numpy's float16 item size), ``adam_states`` (what
    torch.optim.Adam actually keeps per parameter), ``master_weights_fp32``.
    """
    adam = _adam_state_bytes_per_parameter() if "adam_states" in parts else 0.0
    sizes = {"weights_fp16": float(np.dtype(np.float16).itemsize), "gradients_fp16": float(np.dtype(np.float16).itemsize),
             "master_weights_fp32": float(np.dtype(np.float32).itemsize), "adam_states": adam}
    unknown = set(parts) - set(sizes)
    if unknown:
        raise KeyError(f"unknown training-state parts {sorted(unknown)}; known: {sorted(sizes)}")
    if any(sizes[p] is None for p in parts):
        return Measurement({"bytes": None}, "torch is not installed, so Adam's state per parameter is not measured.",
                           primary="bytes")
    per_parameter = sum(float(sizes[p] or 0.0) for p in parts)
    total = parameters * per_parameter / shards
    under: tuple[Condition, ...] = ()
    if text_adam_bytes is not None and "adam_states" in parts:
        assumed = per_parameter - float(adam or 0.0) + text_adam_bytes
        under = (Condition(f"with Adam's states at {text_adam_bytes:g} bytes per parameter (16-bit moments, not "
                           f"torch.optim.Adam's {adam:g})", {"bytes": parameters * assumed / shards}),)
    return Measurement({"bytes": total, "bytes_per_parameter": per_parameter},
                       f"{' + '.join(parts)} take {per_parameter:g} bytes per parameter"
                       + (f" (Adam: {adam:g}, measured on torch.optim.Adam)" if "adam_states" in parts else "")
                       + f"; x {parameters:.4g}" + (f" / {shards}" if shards > 1 else "") + f" = {total:.4g} bytes.",
                       primary="bytes", under=under)


def _ring_allreduce(workers: int, chunk: int = 2, seed: int = 0) -> tuple[float, float]:
    """Run a ring all-reduce over ``workers`` simulated workers; elements each one sends, as a share of the
    gradient, and the largest error of the reduced result."""
    rng = _rng(seed)
    data = rng.standard_normal((workers, workers, chunk))  # worker, chunk index, elements
    expected = data.sum(axis=0)
    sent = 0
    ring = np.arange(workers)
    for step in range(workers - 1):                       # reduce-scatter
        index = (ring - step) % workers
        incoming = data[ring, index].copy()
        data[(ring + 1) % workers, index] += incoming
        sent += chunk
    for step in range(workers - 1):                       # all-gather
        index = (ring + 1 - step) % workers
        data[(ring + 1) % workers, index] = data[ring, index]
        sent += chunk
    error = float(np.max(np.abs(data - expected[None])))
    return sent / (workers * chunk), error


@claim_check("allreduce_traffic")
def allreduce_traffic(parameters: float, bytes_per_gradient: float, workers: int) -> Measurement:
    """Bytes of gradient one ring all-reduce sends per worker, from a simulated ring of ``workers`` workers."""
    share, error = _ring_allreduce(workers)
    gradient = parameters * bytes_per_gradient
    per_worker = share * gradient
    return Measurement({"bytes_per_worker": per_worker, "gradient_bytes": gradient, "share_of_gradient_sent": share,
                        "reduction_error": error},
                       f"a simulated ring all-reduce over {workers} workers sends {share:.4g} x the gradient per worker "
                       f"(and reduces it exactly, error {error:.1e}); the gradient is {gradient:.4g} bytes, so each GPU "
                       f"sends {per_worker:.4g} bytes.", primary="bytes_per_worker")


# --- parameter counts -------------------------------------------------------------------------------------


@claim_check("transformer_parameters")
def transformer_parameters(models: list[dict[str, Any]]) -> Measurement:
    """Parameters of torch.nn.TransformerEncoderLayer stacks (built on the meta device) against 12 L d^2."""
    torch = _torch()
    if torch is None:
        return Measurement({m["name"]: None for m in models}, "torch is not installed.")
    totals, layers_only, detail = {}, {}, []
    for model in models:
        layers, d = model["layers"], model["d_model"]
        layer = torch.nn.TransformerEncoderLayer(d, model.get("heads", max(1, d // 64)), dim_feedforward=4 * d,
                                                 device="meta")
        per_layer = sum(p.numel() for p in layer.parameters())
        embeddings = sum(p.numel() for p in (torch.nn.Embedding(model["vocab"], d, device="meta").weight,
                                             torch.nn.Embedding(model["positions"], d, device="meta").weight))
        formula = 12 * layers * d * d
        totals[model["name"]] = (layers * per_layer + embeddings) / formula
        layers_only[model["name"]] = layers * per_layer / formula
        detail.append(f"{model['name']}: {layers * per_layer + embeddings:.4g} parameters, {totals[model['name']]:.3f} "
                      f"x 12 L d^2 ({layers_only[model['name']]:.3f} x without embeddings)")
    return Measurement(dict(totals), "; ".join(detail) + ".",
                       under=(Condition("counting the layers only, not the embeddings", layers_only),))


@claim_check("ratio")
def ratio(pairs: list[list[float]]) -> Measurement:
    """b / a for each (a, b) pair."""
    ratios = [b / a for a, b in pairs]
    return Measurement({"ratios": ratios}, f"{', '.join(f'{b:g} / {a:g} = {b / a:g}' for a, b in pairs)}.",
                       primary="ratios")


@claim_check("recurrent_parameter_saving")
def recurrent_parameter_saving(input_size: int, hidden: int) -> Measurement:
    """1 - parameters(torch.nn.GRU) / parameters(torch.nn.LSTM) at the same sizes."""
    torch = _torch()
    if torch is None:
        return Measurement({"saving": None}, "torch is not installed.", primary="saving")
    lstm = sum(p.numel() for p in torch.nn.LSTM(input_size, hidden).parameters())
    gru = sum(p.numel() for p in torch.nn.GRU(input_size, hidden).parameters())
    saving = 1 - gru / lstm
    return Measurement({"saving": saving, "lstm": lstm, "gru": gru},
                       f"torch.nn.LSTM({input_size}, {hidden}) has {lstm:,} parameters, torch.nn.GRU {gru:,}: "
                       f"{saving:.1%} fewer.", primary="saving")


def _multi_head_counts(d_model: int, heads: int, n: int) -> tuple[int | None, int, int]:
    """torch.nn.MultiheadAttention's parameter count, and counted operations of h-head attention."""
    torch = _torch()
    parameters = None
    if torch is not None:
        parameters = sum(p.numel() for p in torch.nn.MultiheadAttention(d_model, heads).parameters())
    rng = _rng(0)
    x, w = rng.standard_normal((n, d_model)), rng.standard_normal((d_model, 3 * d_model))
    counter = OperationCounter()
    q, k, v = np.split(counter.matmul(x, w), 3, axis=1)
    d_k = d_model // heads
    for head in range(heads):
        part = slice(head * d_k, (head + 1) * d_k)
        _attention_core(counter, q[:, part], k[:, part], v[:, part])
    matmul_only = OperationCounter()
    for head in range(heads):
        part = slice(head * d_k, (head + 1) * d_k)
        matmul_only.matmul(matmul_only.matmul(q[:, part], k[:, part].T), v[:, part])
    return parameters, counter.operations, matmul_only.operations


@claim_check("multi_head_parameters")
def multi_head_parameters(d_model: int, heads: list[int], n: int = 256) -> Measurement:
    """torch.nn.MultiheadAttention's parameters, and counted operations, for several head counts."""
    table = {h: _multi_head_counts(d_model, h, n) for h in heads}
    parameters = [row[0] for row in table.values()]
    operations = [row[1] for row in table.values()]
    products = [row[2] for row in table.values()]
    known = None not in parameters
    values = {
        "parameters_grow_with_heads": (parameters[-1] > parameters[0]) if known else None,  # type: ignore[operator]
        "parameters_independent_of_heads": (len(set(parameters)) == 1) if known else None,
        "operations_grow_with_heads": operations[-1] > operations[0],
        "matrix_products_grow_with_heads": products[-1] > products[0],
        "parameters": dict(zip(map(str, heads), parameters, strict=True)),
        "operations": dict(zip(map(str, heads), operations, strict=True)),
    }
    return Measurement(values, f"torch.nn.MultiheadAttention({d_model}, h) has {parameters} parameters for h = {heads}; "
                               f"at {n} tokens h-head attention counts {operations} operations, of which the QK^T and PV "
                               f"products are {products} (constant): only the softmax work, h n^2, grows with heads.")


@claim_check("head_dimension")
def head_dimension(d_model: int, heads: int) -> Measurement:
    """The last axis after reshaping a (tokens, d_model) projection into (tokens, heads, d_k)."""
    d_k = np.zeros((3, d_model)).reshape(3, heads, -1).shape[-1]
    return Measurement({"d_k": d_k}, f"a (tokens, {d_model}) array reshaped into {heads} heads has {d_k} columns each.",
                       primary="d_k")


@claim_check("qkv_head_split")
def qkv_head_split(d_model: int, heads: int, n: int = 7, seed: int = 0) -> Measurement:
    """One (d_model, d_model) projection reshaped to (n, h, d_k) against h separate (d_model, d_k) projections."""
    rng = _rng(seed)
    x, w = rng.standard_normal((n, d_model)), rng.standard_normal((d_model, d_model))
    d_k = d_model // heads
    split = (x @ w).reshape(n, heads, d_k)
    separate = np.stack([x @ w[:, i * d_k:(i + 1) * d_k] for i in range(heads)], axis=1)
    gap = float(np.max(np.abs(split - separate)))
    return Measurement({"split_equals_per_head_projections": gap < 1e-9, "max_difference": gap},
                       f"reshaping X W (d_model = {d_model}) into {heads} heads differs from per-head projections by {gap:.2g}.")


@claim_check("embedding_scale")
def embedding_scale(d_model: int, tokens: int = 2000, seed: int = 0) -> Measurement:
    """How many orders of magnitude sqrt(d_model) x a torch.nn.Embedding row is from the sinusoidal encoding."""
    torch = _torch()
    pe_norm = float(np.linalg.norm(_sinusoidal(np.arange(tokens), d_model), axis=1).mean())
    small = _rng(seed).standard_normal((tokens, d_model)) / math.sqrt(d_model)
    small_ratio = float(np.linalg.norm(math.sqrt(d_model) * small, axis=1).mean()) / pe_norm
    under = (Condition("for embeddings initialised N(0, 1/d_model)",
                       {"orders_of_magnitude_apart": abs(math.log10(small_ratio))}),)
    if torch is None:
        return Measurement({"orders_of_magnitude_apart": None}, "torch is not installed.", under=under)
    torch.manual_seed(seed)
    weight = torch.nn.Embedding(tokens, d_model).weight.detach().double().numpy()
    ratio_default = float(np.linalg.norm(math.sqrt(d_model) * weight, axis=1).mean()) / pe_norm
    return Measurement({"orders_of_magnitude_apart": abs(math.log10(ratio_default)), "pe_norm": pe_norm,
                        "scaled_embedding_over_pe": ratio_default, "scaled_small_init_over_pe": small_ratio},
                       f"|PE| = {pe_norm:.1f}; sqrt(d_model) x a torch.nn.Embedding row (default init N(0, 1)) is "
                       f"{ratio_default:.0f}x that, {small_ratio:.2f}x for rows drawn N(0, 1/d_model).", under=under)


# --- positional encodings -----------------------------------------------------------------------------------


@claim_check("sinusoidal_shift_is_linear")
def sinusoidal_shift_is_linear(d_model: int, offsets: list[int], positions: int = 100) -> Measurement:
    """PE(pos + k) = M_k PE(pos) for one matrix M_k per offset: fitted by least squares over many positions."""
    rows = np.arange(positions)
    residuals = {}
    for k in offsets:
        source, target = _sinusoidal(rows, d_model), _sinusoidal(rows + k, d_model)
        fitted, *_ = np.linalg.lstsq(source, target, rcond=None)
        residuals[str(k)] = float(np.max(np.abs(source @ fitted - target)))
    # a control that is not a linear function of PE(pos): the square of the shifted encoding
    source = _sinusoidal(rows, d_model)
    control, *_ = np.linalg.lstsq(source, _sinusoidal(rows + offsets[0], d_model) ** 2, rcond=None)
    control_residual = float(np.max(np.abs(source @ control - _sinusoidal(rows + offsets[0], d_model) ** 2)))
    return Measurement({"shift_is_linear": max(residuals.values()) < 1e-8, "least_squares_residual": residuals,
                        "nonlinear_control_residual": control_residual},
                       f"for offsets {offsets}, one fitted matrix per offset maps PE(pos) to PE(pos + k) over {positions} "
                       f"positions with largest residual {max(residuals.values()):.1e} (a non-linear target leaves "
                       f"{control_residual:.2f}).")


@claim_check("sinusoidal_unique")
def sinusoidal_unique(d_model: int, positions: int, sample: int = 256) -> Measurement:
    """Smallest distance between the encodings of two different positions in 0 .. positions - 1.

    |PE(p) - PE(q)|^2 depends on p - q only, so one distance per offset covers every pair; the first
    ``sample`` positions are also compared pair by pair.
    """
    frequencies = 1.0 / 10000.0 ** (np.arange(0, d_model, 2) / d_model)
    offsets = np.arange(1, positions)
    by_offset = np.sqrt(np.sum(2 - 2 * np.cos(np.outer(offsets, frequencies)), axis=1))
    encoding = _sinusoidal(np.arange(sample), d_model)
    gram = encoding @ encoding.T
    direct = np.sqrt(np.maximum(np.diag(gram)[:, None] + np.diag(gram)[None, :] - 2 * gram, 0.0))
    lag = np.abs(np.subtract.outer(np.arange(sample), np.arange(sample)))
    identity_gap = float(np.max(np.abs(direct[lag > 0] - by_offset[lag[lag > 0] - 1])))
    nearest = float(by_offset.min())
    return Measurement({"unique": nearest > 1e-6 and identity_gap < 1e-6, "min_distance": nearest,
                        "pairwise_check_gap": identity_gap},
                       f"among positions 0..{positions - 1} with d_model = {d_model}, the two closest encodings are "
                       f"{nearest:.3g} apart (offset {offsets[by_offset.argmin()]}); pair-by-pair distances agree with "
                       f"the per-offset formula to {identity_gap:.1e}.")


@claim_check("rope_relative")
def rope_relative(d: int, seed: int = 0) -> Measurement:
    """RoPE turns each pair of a vector as a complex number by m theta_i: norms kept, q_m . k_n a function of m - n."""
    rng = _rng(seed)
    theta = 1.0 / 10000.0 ** (np.arange(0, d, 2) / d)

    def rotate(vector: np.ndarray, position: int) -> np.ndarray:
        turned = (vector[0::2] + 1j * vector[1::2]) * np.exp(1j * position * theta)
        out = np.empty(d)
        out[0::2], out[1::2] = turned.real, turned.imag
        return out

    q, k = rng.standard_normal(d), rng.standard_normal(d)
    norm_gap = abs(np.linalg.norm(rotate(q, 37)) - np.linalg.norm(q))
    pairs = [(5, 2), (105, 102), (1005, 1002)]
    scores = [float(rotate(q, m) @ rotate(k, n)) for m, n in pairs]
    relative_gap = max(scores) - min(scores)
    return Measurement({"rotation_gives_relative_positions": bool(norm_gap < 1e-9 and relative_gap < 1e-9),
                        "norm_change": norm_gap, "scores_at_offset_3": scores},
                       f"rotation keeps the norm (change {norm_gap:.1e}); q_m . k_n at (m, n) = {pairs} is "
                       f"{np.round(scores, 9).tolist()}: the same for the same offset m - n.")


# --- attention as a function ----------------------------------------------------------------------------------


@claim_check("self_attention_permutation")
def self_attention_permutation(n: int = 6, d: int = 8, seed: int = 0) -> Measurement:
    """Permute the tokens of unmasked self-attention: do the outputs stay put (invariant) or move with them?"""
    rng = _rng(seed)
    x = rng.standard_normal((n, d))
    w_q, w_k, w_v = (rng.standard_normal((d, d)) for _ in range(3))
    order = rng.permutation(n)
    out, out_permuted = _self_attention(x, w_q, w_k, w_v), _self_attention(x[order], w_q, w_k, w_v)
    equivariance_gap = float(np.max(np.abs(out_permuted - out[order])))
    invariance_gap = float(np.max(np.abs(out_permuted - out)))
    pooled_gap = float(np.max(np.abs(out_permuted.mean(axis=0) - out.mean(axis=0))))
    return Measurement({"equivariant": equivariance_gap < 1e-9, "invariant": invariance_gap < 1e-9,
                        "equivariance_gap": equivariance_gap, "invariance_gap": invariance_gap,
                        "pooled_invariance_gap": pooled_gap},
                       f"permuting the {n} tokens permutes the outputs the same way (gap {equivariance_gap:.1e}) and "
                       f"changes them in place (gap {invariance_gap:.2f}); their mean over tokens is unchanged "
                       f"(gap {pooled_gap:.1e}).",
                       under=(Condition("of the output pooled over tokens (or one query over permuted key-value pairs)",
                                        {"invariant": pooled_gap < 1e-9}),))


@claim_check("shared_projection_symmetry")
def shared_projection_symmetry(n: int = 5, d: int = 8, seed: int = 0) -> Measurement:
    """With W_Q = W_K, is the pre-softmax score matrix symmetric, and is the softmax weight matrix?"""
    rng = _rng(seed)
    x, w = rng.standard_normal((n, d)), rng.standard_normal((d, d))
    scores = (x @ w) @ (x @ w).T / math.sqrt(d)
    weights = _softmax(scores)
    scores_gap, weights_gap = float(np.max(np.abs(scores - scores.T))), float(np.max(np.abs(weights - weights.T)))
    return Measurement({"scores_symmetric": scores_gap < 1e-9 * float(np.abs(scores).max()),
                        "weights_symmetric": weights_gap < 1e-9, "scores_asymmetry": scores_gap,
                        "weights_asymmetry": weights_gap},
                       f"with one shared matrix the scores X W (X W)^T are symmetric to rounding (asymmetry "
                       f"{scores_gap:.1e}); the row-wise softmax weights are not (asymmetry {weights_gap:.2f}). The "
                       f"document calls the pre-softmax logits 'scores' elsewhere too.")


@claim_check("stacked_attention_linearity")
def stacked_attention_linearity(layers: int = 2, n: int = 6, d: int = 8, seed: int = 0) -> Measurement:
    """Is a stack of self-attention layers (no feed-forward) a linear map of its input X? And of V for fixed weights?"""
    rng = _rng(seed)
    weights = [[rng.standard_normal((d, d)) / math.sqrt(d) for _ in range(3)] for _ in range(layers)]

    def stack(x: np.ndarray) -> np.ndarray:
        for w_q, w_k, w_v in weights:
            x = _self_attention(x, w_q, w_k, w_v)
        return x

    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    additivity = float(np.max(np.abs(stack(x + y) - stack(x) - stack(y))) / np.max(np.abs(stack(x + y))))
    homogeneity = float(np.max(np.abs(stack(3 * x) - 3 * stack(x))) / np.max(np.abs(stack(3 * x))))
    fixed = _softmax(rng.standard_normal((n, n)))
    v1, v2 = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    in_values = float(np.max(np.abs(fixed @ (v1 + v2) - fixed @ v1 - fixed @ v2)))
    return Measurement({"linear": additivity < 1e-9 and homogeneity < 1e-9, "additivity_error": additivity,
                        "homogeneity_error": homogeneity, "linear_in_values_for_fixed_weights": in_values},
                       f"{layers} stacked self-attention layers break additivity by {additivity:.0%} and homogeneity by "
                       f"{homogeneity:.0%} of the output: softmax(QK^T) depends on the input. Only with the weights held "
                       f"fixed is attention linear in V (error {in_values:.1e}).")


@claim_check("linear_attention")
def linear_attention(n: int = 12, d: int = 6, seed: int = 0) -> Measurement:
    """phi = elu + 1: phi(Q) phi(K)^T V equals phi(Q) (phi(K)^T V); the exponent in n of the latter's counted operations."""
    rng = _rng(seed)
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    weights = _elu_plus_one(q) @ _elu_plus_one(k).T
    quadratic = weights @ v / weights.sum(axis=1, keepdims=True)
    linear = _elu_plus_one(q) @ (_elu_plus_one(k).T @ v) / (_elu_plus_one(q) @ _elu_plus_one(k).sum(axis=0))[:, None]
    gap = float(np.max(np.abs(quadratic - linear)))
    grid = [256, 512, 1024, 2048, 4096]
    exponent, uncertainty = fit_exponent(grid, [_growth_cost("linear_attention_time", g, 32) for g in grid])
    return Measurement({"n": exponent, "same_output": gap < 1e-9, "positive_weights": bool(weights.min() > 0),
                        "max_difference": gap},
                       f"the two orders of multiplication agree to {gap:.1e}; counted operations of the right-to-left "
                       f"order grow as n^{exponent:g} (+-{uncertainty:.2g}); elu(x) + 1 > 0 keeps every weight positive.",
                       tolerance={"n": uncertainty})


@claim_check("path_length")
def path_length(n: int, source: int, target: int) -> Measurement:
    """Fewest steps from token ``source`` to token ``target`` (1-based) in an RNN chain and in one attention layer."""
    def shortest(adjacent: np.ndarray) -> int:
        reached, frontier, steps = {source - 1}, {source - 1}, 0
        while target - 1 not in reached:
            frontier = {int(j) for i in frontier for j in np.flatnonzero(adjacent[i])} - reached
            reached |= frontier
            steps += 1
        return steps

    chain = np.eye(n, k=1, dtype=bool)            # h_t feeds h_{t+1} only
    complete = ~np.eye(n, dtype=bool)             # every token attends to every token
    computed = {"rnn": shortest(chain), "attention": shortest(complete)}
    return Measurement(computed, f"from token {source} to token {target}: {computed['rnn']} recurrent steps, "
                                 f"{computed['attention']} attention step.")


@claim_check("causal_visibility")
def causal_visibility(length: int) -> Measurement:
    """Which keys each query may see under mask[i, j] = 0 if i >= j else -inf."""
    scores = np.where(np.arange(length)[:, None] >= np.arange(length)[None, :], 0.0, -np.inf)
    weights = _softmax(scores)
    visible = {str(i): np.flatnonzero(weights[i] > 0).tolist() for i in range(length)}
    return Measurement(visible, "; ".join(f"query {q} sees {keys}" for q, keys in visible.items()) +
                       " (a causal mask keeps the diagonal: each token attends to itself).")


@claim_check("gradient_clipping")
def gradient_clipping(threshold: float, dimension: int = 50, seed: int = 0) -> Measurement:
    """The rule g <- g threshold / |g| when |g| > threshold: norms capped at the threshold, directions kept."""
    rng = _rng(seed)
    gradients = rng.standard_normal((200, dimension)) * rng.uniform(0.01, 5.0, (200, 1)) * threshold / 3
    norms = np.linalg.norm(gradients, axis=1)
    clipped = np.where(norms[:, None] > threshold, gradients * (threshold / norms[:, None]), gradients)
    new_norms = np.linalg.norm(clipped, axis=1)
    cosines = np.sum(clipped * gradients, axis=1) / (new_norms * norms)
    ok = bool(new_norms.max() <= threshold * (1 + 1e-12) and cosines.min() > 1 - 1e-12 and
              np.allclose(clipped[norms <= threshold], gradients[norms <= threshold]))
    return Measurement({"caps_norm_keeps_direction": ok, "max_norm_after": float(new_norms.max()),
                        "min_cosine": float(cosines.min()), "clipped": int((norms > threshold).sum()), "of": len(norms)},
                       f"{int((norms > threshold).sum())} of {len(norms)} gradients exceeded {threshold:g}; after the rule "
                       f"the largest norm is {new_norms.max():.6g} and the smallest cosine to the original {cosines.min():.12f}.")


# --- recurrent cells -----------------------------------------------------------------------------------------------


@claim_check("lstm_cell_state_jacobian")
def lstm_cell_state_jacobian(hidden: int = 4, input_size: int = 3, seed: int = 0) -> Measurement:
    """dC_t / dC_(t-1) through a whole step (h_(t-1) = o tanh(C_(t-1)) also feeds the gates), and with the gates held."""
    rng = _rng(seed)
    w = rng.standard_normal((4 * hidden, hidden + input_size)) / math.sqrt(hidden + input_size)
    b = rng.standard_normal(4 * hidden) * 0.5
    x, c_previous = rng.standard_normal(input_size), rng.standard_normal(hidden)
    o_previous = _sigmoid(rng.standard_normal(hidden))

    def gates(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z = w @ np.concatenate([o_previous * np.tanh(c), x]) + b
        return _sigmoid(z[:hidden]), _sigmoid(z[hidden:2 * hidden]), np.tanh(z[2 * hidden:3 * hidden])

    def step(c: np.ndarray, held: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        i, f, g = held if held is not None else gates(c)
        return f * c + i * g

    eps = 1e-6
    held = gates(c_previous)

    def jacobian(hold: bool) -> np.ndarray:
        return np.stack([(step(c_previous + eps * e, held if hold else None) -
                          step(c_previous - eps * e, held if hold else None)) / (2 * eps) for e in np.eye(hidden)], axis=1)

    full, direct = jacobian(False), jacobian(True)
    forget = held[1]
    gap, direct_gap = float(np.max(np.abs(full - np.diag(forget)))), float(np.max(np.abs(direct - np.diag(forget))))
    return Measurement({"jacobian_is_diag_forget_gate": gap < 1e-6, "max_abs_J_minus_diag_f": gap,
                        "forget_gate": forget, "jacobian_diagonal": np.diag(full)},
                       f"the full Jacobian differs from diag(f_t) by up to {gap:.3f} (f_t, i_t and C~_t depend on "
                       f"h_(t-1) = o tanh(C_(t-1))); with the gates held fixed it is diag(f_t) to {direct_gap:.1e}.",
                       under=(Condition("along the direct (constant error carousel) path, with the gates held fixed",
                                        {"jacobian_is_diag_forget_gate": direct_gap < 1e-6}),))


@claim_check("lstm_hidden_bounded")
def lstm_hidden_bounded(hidden: int = 64, samples: int = 1000, seed: int = 0) -> Measurement:
    """h_t = o_t * tanh(C_t) with o_t in (0, 1): |h_t| < 1 and |h_t| <= |C_t|, whatever the size of C_t."""
    rng = _rng(seed)
    cell = rng.standard_normal((samples, hidden)) * rng.uniform(0.1, 50.0, (samples, 1))
    gate = _sigmoid(rng.standard_normal((samples, hidden)) * 3)
    h = gate * np.tanh(cell)
    computed = {"max_abs_h": float(np.abs(h).max()), "max_abs_c": float(np.abs(cell).max()),
                "max_h_over_c": float(np.max(np.abs(h) / np.abs(cell)))}
    return Measurement({"filtered": computed["max_abs_h"] < 1 and computed["max_h_over_c"] <= 1, **computed},
                       f"over {samples} draws with |C_t| up to {computed['max_abs_c']:.0f}, |h_t| stays below "
                       f"{computed['max_abs_h']:.4f} < 1 and never exceeds |C_t|: the cell state squashed and gated.")


def _rnn_jacobian_norm(w: np.ndarray, pre_activations: np.ndarray | None, inputs: np.ndarray | None,
                       linear: bool = False) -> float:
    """||dh_T / dh_0|| of h_t = tanh(W h_(t-1) + x_t), driven either by inputs or so as to hit given pre-activations."""
    hidden = w.shape[0]
    h, product = np.zeros(hidden), np.eye(hidden)
    steps = len(pre_activations) if pre_activations is not None else len(inputs)  # type: ignore[arg-type]
    for t in range(steps):
        x = pre_activations[t] - w @ h if pre_activations is not None else inputs[t]  # type: ignore[index]
        h = np.tanh(w @ h + x)
        product = (w if linear else (1 - h**2)[:, None] * w) @ product
    return float(np.linalg.norm(product, 2))


@claim_check("rnn_gradient_growth")
def rnn_gradient_growth(scales: list[float], hidden: int = 8, steps: int = 60, seed: int = 0) -> Measurement:
    """||dh_T / dh_0|| of tanh RNNs whose W_hh has every |eigenvalue| below or above 1, and of their linear versions.

    Below 1: W = scale x orthogonal, and a non-normal 2 x 2 W with both eigenvalue moduli 0.31 driven by
    inputs that make tanh' alternate between its coordinates. Above 1: W = scale x orthogonal.
    """
    rng = _rng(seed)
    orthogonal, _ = np.linalg.qr(rng.standard_normal((hidden, hidden)))
    inputs = rng.standard_normal((steps, hidden))
    modulus = 0.31
    t = math.sqrt(10 + modulus**2)
    skewed = np.array([[t, math.sqrt(10)], [-math.sqrt(10), -t]])       # W^2 = 0.31^2 I
    alternate = np.array([[0.0, 6.0] if s % 2 == 0 else [6.0, 0.0] for s in range(steps)])
    table: dict[str, dict[str, float]] = {}
    below: list[dict[str, float]] = []
    above: list[dict[str, float]] = []
    for scale in scales:
        w = scale * orthogonal
        row = {"tanh_rnn": _rnn_jacobian_norm(w, None, inputs), "linear_rnn": _rnn_jacobian_norm(w, None, inputs, True)}
        table[f"{scale} x orthogonal"] = row
        (below if scale < 1 else above).append(row)
    skew_row = {"tanh_rnn": _rnn_jacobian_norm(skewed, alternate, None),
                "linear_rnn": _rnn_jacobian_norm(skewed, alternate, None, True),
                "eigenvalue_moduli": float(np.abs(np.linalg.eigvals(skewed)).max()),
                "largest_singular_value": float(np.linalg.svd(skewed, compute_uv=False)[0])}
    table["non-normal, |eigenvalues| 0.31"] = skew_row
    below.append(skew_row)
    # vanishing: below 1e-2 of the start; exploding: above 1e2
    values = {"vanishes_below_one": all(r["tanh_rnn"] < 1e-2 for r in below),
              "explodes_above_one": all(r["tanh_rnn"] > 1e2 for r in above), "gradient_norms": table}
    linear = {"vanishes_below_one": all(r["linear_rnn"] < 1e-2 for r in below),
              "explodes_above_one": all(r["linear_rnn"] > 1e2 for r in above)}
    return Measurement(values, f"over {steps} steps, ||dh_T/dh_0||: " + "; ".join(
        f"{name}: tanh {row['tanh_rnn']:.3g}, linear {row['linear_rnn']:.3g}" for name, row in table.items()) +
        f". The non-normal W has |eigenvalues| {skew_row['eigenvalue_moduli']:.2f} but singular value "
        f"{skew_row['largest_singular_value']:.1f}: the Jacobians diag(tanh') W_hh, not W_hh's eigenvalues, govern "
        f"the product, and a saturated tanh stops the explosion above 1.",
        under=(Condition("for a linear RNN (no tanh), as t grows", linear),))


def _forget_gate_product(bias: float, steps: int, hidden: int = 32, seed: int = 0) -> float:
    """Mean over units of prod_t f_t (the cell state's direct gradient path) along a random LSTM run."""
    rng = _rng(seed)
    w = rng.standard_normal((4 * hidden, 2 * hidden)) * 0.1
    b = np.zeros(4 * hidden)
    b[hidden:2 * hidden] = bias
    h, c, kept = np.zeros(hidden), np.zeros(hidden), np.ones(hidden)
    for x in rng.standard_normal((steps, hidden)):
        z = w @ np.concatenate([h, x]) + b
        i, f, o = _sigmoid(z[:hidden]), _sigmoid(z[hidden:2 * hidden]), _sigmoid(z[3 * hidden:])
        c = f * c + i * np.tanh(z[2 * hidden:3 * hidden])
        h = o * np.tanh(c)
        kept *= f
    return float(kept.mean())


@claim_check("forget_bias_retention")
def forget_bias_retention(bias: float, steps: int) -> Measurement:
    """The cell-state gradient kept over ``steps`` steps of a random LSTM, with the forget bias at ``bias`` and at 0."""
    kept, default = _forget_gate_product(bias, steps), _forget_gate_product(0.0, steps)
    return Measurement({"kept_with_bias": kept, "kept_with_zero_bias": default, "ratio": kept / default},
                       f"over {steps} steps the product of forget gates keeps {kept:.3g} of the cell-state gradient with "
                       f"bias {bias:g} and {default:.3g} with bias 0 ({kept / default:.0f}x more).")


@claim_check("forget_bias_default")
def forget_bias_default(hidden: int = 64, input_size: int = 16, seed: int = 0) -> Measurement:
    """The forget-gate bias torch.nn.LSTM starts with (b_ih + b_hh, gate order i, f, g, o)."""
    torch = _torch()
    if torch is None:
        return Measurement({"pytorch_default_forget_bias_is_one": None}, "torch is not installed.")
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(input_size, hidden)
    forget = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().double().numpy()[hidden:2 * hidden]
    return Measurement({"pytorch_default_forget_bias_is_one": bool(abs(forget.mean() - 1) < 0.1),
                        "pytorch_forget_bias_mean": float(forget.mean()),
                        "pytorch_forget_bias_range": [float(forget.min()), float(forget.max())]},
                       f"a fresh torch.nn.LSTM({input_size}, {hidden}) has forget-gate biases with mean "
                       f"{forget.mean():.3f}, in [{forget.min():.3f}, {forget.max():.3f}] (uniform +-2/sqrt(H) summed): "
                       f"PyTorch does not start them at 1 (Keras does, with unit_forget_bias=True).")


# --- worked examples in words ----------------------------------------------------------------------------------


@claim_check("word_positions")
def word_positions(sentence: str) -> Measurement:
    """0-based positions of the words of a sentence split on spaces (each word's first occurrence)."""
    words = sentence.split()
    positions = {word: words.index(word) for word in words}
    return Measurement(positions, f"{words}: " + ", ".join(f"{w} at {p}" for w, p in positions.items()) + ".")


@claim_check("word_distance")
def word_distance(sentence: str, first: str, second: str) -> Measurement:
    """Word count of a sentence and how many positions apart two of its words are."""
    words = sentence.strip(".").split()
    computed = {"words": len(words), "distance": words.index(second) - words.index(first)}
    return Measurement(computed, f"the sentence has {computed['words']} words and {second!r} is "
                                 f"{computed['distance']} positions after {first!r}; subword tokenizers keep these "
                                 f"common words whole.")


@claim_check("masking_fractions")
def masking_fractions(tokens: int = 200_000, vocab: int = 30_000, seed: int = 0, false_alarm: float = 1e-3) -> Measurement:
    """Run Hugging Face's DataCollatorForLanguageModeling (its default settings) on ``tokens`` token ids and
    measure the share selected, and of those the shares turned into [MASK], a random token, or kept."""
    names = ("selected", "mask", "random", "unchanged")
    torch = _torch()
    try:
        from tokenizers import Tokenizer, models
        from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast
    except ImportError:
        return Measurement(dict.fromkeys(names), "transformers (with torch) is not installed, so BERT's masking "
                                                 "recipe as Hugging Face implements it is not run.")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    table = {token: index for index, token in enumerate(specials + [f"w{i}" for i in range(vocab - len(specials))])}
    fast_tokenizer: Any = PreTrainedTokenizerFast
    tokenizer = fast_tokenizer(tokenizer_object=Tokenizer(models.WordLevel(table, unk_token="[UNK]")),
                                        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                        mask_token="[MASK]")
    collator = DataCollatorForLanguageModeling(tokenizer)
    torch.manual_seed(seed)
    ids = torch.randint(len(specials), vocab, (tokens // 500, 500))
    batch = collator([{"input_ids": row} for row in ids])
    selected = batch["labels"] != -100
    out, original = batch["input_ids"][selected], ids[selected]
    count = int(selected.sum())
    shares = {"selected": count / ids.numel(), "mask": float((out == tokenizer.mask_token_id).float().mean()),
              "unchanged": float((out == original).float().mean())}
    shares["random"] = 1 - shares["mask"] - shares["unchanged"]
    bands = {name: _z(false_alarm) * math.sqrt(max(p, 1e-6) * (1 - p) / (ids.numel() if name == "selected" else count))
             for name, p in shares.items()}
    return Measurement(shares, f"DataCollatorForLanguageModeling selected {shares['selected']:.2%} of {ids.numel():,} "
                               f"tokens; of those {shares['mask']:.2%} became [MASK], {shares['random']:.2%} a random "
                               f"token, {shares['unchanged']:.2%} stayed (a random draw of the same token counts as "
                               f"kept); binomial test bands at false-alarm rate {false_alarm:g}.", tolerance=bands)


# --- FlashAttention ----------------------------------------------------------------------------------------------


def _flash_blocks(sram_elements: float, d: int) -> tuple[int, int]:
    block_k = math.ceil(sram_elements / (4 * d))   # B_c = ceil(M / 4d), Dao et al. 2022, Algorithm 1
    return block_k, min(block_k, d)                 # B_r = min(B_c, d)


@claim_check("flash_hbm_accesses")
def flash_hbm_accesses(n: int = 1024, d: int = 32, sram_elements: int = 8192) -> Measurement:
    """Growth exponents in n, d and the SRAM size M of the elements a real tiled forward pass moves to and from HBM."""
    def traffic(n_: int, d_: int, m_: int) -> float:
        q, k, v = _qkv(n_, d_)
        moved: list[int] = []
        block_k, block_q = _flash_blocks(m_, d_)
        out = _tiled_attention(q, k, v, block_k, block_q, moved)
        reference = _softmax(q @ k.T / math.sqrt(d_)) @ v
        if not np.allclose(out, reference, atol=1e-10):
            raise ArithmeticError("the tiled forward pass disagrees with plain attention")
        return float(moved[0])

    # each sweep far enough out that the K, V reads (2 n d, independent of M) are a small share
    grids = {"n": ([256, 512, 1024, 2048], {}), "d": ([16, 32, 64, 128], {"M": 2 * sram_elements}),
             "M": ([4096, 8192, 16384, 32768], {"n": 2 * n})}
    values: dict[str, Any] = {}
    tolerance: dict[str, float] = {}
    for variable, (grid, base) in grids.items():
        sizes = {"n": n, "d": d, "M": sram_elements, **base}
        costs = [traffic(**{"n_": sizes["n"], "d_": sizes["d"], "m_": sizes["M"],
                            {"n": "n_", "d": "d_", "M": "m_"}[variable]: g}) for g in grid]
        values[variable], tolerance[variable] = fit_exponent(grid, costs)
    return Measurement(values, f"counting the elements a tiled forward pass (B_c = M/4d, B_r = min(B_c, d), output "
                               f"checked against plain attention) reads and writes: n^{values['n']:g} d^{values['d']:g} "
                               f"M^{values['M']:g}, i.e. O(n^2 d^2 / M) as Dao et al. (2022) state.", tolerance=tolerance)


@claim_check("flash_block_size")
def flash_block_size(sram_bytes: int, head_dims: list[int], element_bytes: list[int]) -> Measurement:
    """FlashAttention's key/value block B_c = ceil(M / 4d) for an SRAM of ``sram_bytes``, per head size and precision.

    The first head size and precision listed is the measurement; the others are conditions.
    """
    table = {}
    for size in element_bytes:
        for d in head_dims:
            block_k, block_q = _flash_blocks(sram_bytes / size, d)
            table[f"{8 * size}-bit, d={d}"] = {"key_block": block_k, "query_block": block_q}
    first, *others = table
    return Measurement({"key_block": table[first]["key_block"], "blocks": table},
                       f"with {sram_bytes // 1024} KB of SRAM: " + "; ".join(
                           f"{name}: {row['key_block']} keys x {row['query_block']} queries" for name, row in table.items())
                       + f". The block depends on head size and precision; {first} is taken as the usual case.",
                       primary="key_block",
                       under=tuple(Condition(f"for {name}", {"key_block": table[name]["key_block"]}) for name in others))


# --- decoding -----------------------------------------------------------------------------------------------------


@claim_check("generation_passes")
def generation_passes(tokens: int, prompt: int = 5, d: int = 4, seed: int = 0) -> Measurement:
    """Run greedy generation of ``tokens`` tokens with and without a K, V cache and count the forward passes:
    full passes (over every position so far) and incremental ones (the new token only)."""
    rng = _rng(seed)
    w_q, w_k, w_v = (rng.standard_normal((d, d)) / math.sqrt(d) for _ in range(3))
    embed = rng.standard_normal((16, d))
    head = rng.standard_normal((d, 16))
    counts = {"full_without_cache": 0, "full_with_cache": 0, "incremental_with_cache": 0}

    # the model: one causal linear-attention layer (phi = elu + 1), so a full pass costs O(n d^2)
    # and a thousand of them stay cheap; what is counted is the passes, not their cost
    def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        phi_q, phi_k = _elu_plus_one(q), _elu_plus_one(k)
        state = np.cumsum(phi_k[:, :, None] * v[:, None, :], axis=0)         # prefix sums of phi(k) v^T
        normaliser = np.cumsum(phi_k, axis=0)
        return np.einsum("nd,nde->ne", phi_q, state) / np.sum(phi_q * normaliser, axis=1, keepdims=True)

    def full(ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = embed[ids]
        q, k, v = x @ w_q, x @ w_k, x @ w_v
        return attend(q, k, v)[-1], k, v

    ids = list(rng.integers(0, 16, prompt))
    for _ in range(tokens):                              # without a cache: every step runs over the whole sequence
        last, _, _ = full(ids)
        counts["full_without_cache"] += 1
        ids.append(int(np.argmax(last @ head)))
    uncached = ids[prompt:]
    ids = ids[:prompt]
    last, keys, values = full(ids)                       # with a cache: the prompt once, then the new token only
    counts["full_with_cache"] += 1
    for step in range(tokens):
        ids.append(int(np.argmax(last @ head)))
        if step == tokens - 1:
            break
        x = embed[ids[-1:]]
        keys, values = np.vstack([keys, x @ w_k]), np.vstack([values, x @ w_v])
        phi_q, phi_k = _elu_plus_one(x @ w_q), _elu_plus_one(keys)
        last = ((phi_q @ (phi_k.T @ values)) / (phi_q @ phi_k.sum(axis=0)))[0]
        counts["incremental_with_cache"] += 1
    same = ids[prompt:] == uncached  # exact token ids; the two orders of summation agree to rounding
    fed_back = {"incremental_with_cache": counts["incremental_with_cache"] + 1}
    return Measurement({**counts, "same_tokens": same}, under=(Condition(
                           "if the last generated token is also run through the model (to cache its K, V)", fed_back),),
                       explanation=
                       f"generating {tokens} tokens after a {prompt}-token prompt: {counts['full_without_cache']} full "
                       f"passes without a cache; with one, {counts['full_with_cache']} full pass over the prompt and "
                       f"{counts['incremental_with_cache']} incremental passes (the last token needs no further pass); "
                       f"both produce {'the same' if same else 'different'} tokens.")


def _beam_search(log_probs: Callable[..., np.ndarray], steps: int, beam: int) -> tuple[tuple[int, ...], float]:
    beams: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    for _ in range(steps):
        grown = [(prefix + (token,), score + float(lp)) for prefix, score in beams
                 for token, lp in enumerate(log_probs(prefix))]
        beams = sorted(grown, key=lambda item: -item[1])[:beam]
    return beams[0]


@claim_check("beam_search_likelihood")
def beam_search_likelihood(beam: int = 2, vocab: int = 3, steps: int = 4, models: int = 5000, seed: int = 0) -> Measurement:
    """Greedy decoding, beam search and exhaustive search on random autoregressive models (a fresh next-token
    distribution, of random sharpness, for every prefix): how often beam search finds a sequence less likely
    than greedy's."""
    rng = _rng(seed)
    worse = better = optimal = 0
    gaps = []
    for _ in range(models):
        table: dict[tuple[int, ...], np.ndarray] = {}
        def log_probs(prefix: tuple[int, ...], table: dict[tuple[int, ...], np.ndarray] = table) -> np.ndarray:
            if prefix not in table:
                table[prefix] = np.log(_softmax(rng.standard_normal(vocab) * rng.uniform(0.0, 5.0)))
            return table[prefix]

        _, greedy = _beam_search(log_probs, steps, 1)
        _, beamed = _beam_search(log_probs, steps, beam)
        _, best = _beam_search(log_probs, steps, vocab**steps)
        worse += beamed < greedy - 1e-12
        better += beamed > greedy + 1e-12
        optimal += beamed > best - 1e-12
        gaps.append(beamed - greedy)
    return Measurement({"beam_never_below_greedy": worse == 0, "beam_at_least_greedy_on_average": float(np.mean(gaps)) >= 0,
                        "beam_always_optimal": optimal == models, "share_beam_worse": worse / models,
                        "share_beam_better": better / models, "mean_log_likelihood_gain": float(np.mean(gaps))},
                       f"over {models} random models (vocabulary {vocab}, {steps} steps), beam search with k = {beam} found "
                       f"a more likely sequence than greedy in {better / models:.1%}, a less likely one in {worse / models:.1%}, "
                       f"the most likely one in {optimal / models:.1%}; mean log-likelihood gain {np.mean(gaps):.3f}.",
                       under=(Condition("on average, not as a guarantee",
                                        {"beam_never_below_greedy": float(np.mean(gaps)) >= 0}),))


@claim_check("torch_transformer_layers")
def torch_transformer_layers() -> Measurement:
    """Encoder and decoder layers of a default torch.nn.Transformer (the original paper's base configuration)."""
    torch = _torch()
    if torch is None:
        return Measurement({"encoder_layers": None, "decoder_layers": None}, "torch is not installed.")
    with warnings.catch_warnings():  # torch warns that nested tensors need batch_first; irrelevant here
        warnings.simplefilter("ignore", UserWarning)
        model = torch.nn.Transformer(device="meta")
    counts = {"encoder_layers": len(model.encoder.layers), "decoder_layers": len(model.decoder.layers),
              "d_model": model.encoder.layers[0].linear1.in_features,
              "heads": model.encoder.layers[0].self_attn.num_heads}
    return Measurement(counts, f"a default torch.nn.Transformer has {counts['encoder_layers']} encoder and "
                               f"{counts['decoder_layers']} decoder layers (d_model {counts['d_model']}, "
                               f"{counts['heads']} heads).")


@claim_check("weight_sharing")
def weight_sharing(layers: int = 4, d_model: int = 32, steps: list[int] | None = None) -> Measurement:
    """Does a torch.nn.TransformerEncoder's stack share parameters between layers, and does torch.nn.RNN share
    its weights across time steps (its parameter count and its weight tensors the same at every length)?"""
    torch = _torch()
    if torch is None:
        return Measurement({"transformer_layers_share_weights": None, "rnn_shares_weights_across_steps": None},
                           "torch is not installed.")
    steps = steps or [5, 50]
    layer = torch.nn.TransformerEncoderLayer(d_model, 4, dim_feedforward=2 * d_model)
    stack = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    storages = {p.data_ptr() for p in stack.parameters()}
    per_layer = len(list(layer.parameters()))
    rnn = torch.nn.RNN(d_model, d_model)
    grads = []
    for length in steps:                       # one W_hh receives the gradient of every step
        rnn.zero_grad()
        out, _ = rnn(torch.randn(length, 1, d_model))
        out.sum().backward()
        grads.append(len([p for p in rnn.parameters() if p.grad is not None]))
    rnn_count = sum(p.numel() for p in rnn.parameters())
    values = {"transformer_layers_share_weights": len(storages) < layers * per_layer,
              "rnn_shares_weights_across_steps": len(set(grads)) == 1 and grads[0] == len(list(rnn.parameters())),
              "distinct_parameter_tensors": len(storages), "tensors_per_layer": per_layer, "rnn_parameters": rnn_count}
    return Measurement(values, f"a {layers}-layer torch.nn.TransformerEncoder holds {len(storages)} distinct parameter "
                               f"tensors ({per_layer} per layer x {layers}: none shared); torch.nn.RNN has {rnn_count:,} "
                               f"parameters whatever the length, the same tensors receiving the gradient of {steps} steps.")


@claim_check("score_function_parameters")
def score_function_parameters(d: int = 64, d_attention: int = 64, n: int = 5, seed: int = 0) -> Measurement:
    """Trainable parameters of additive (Bahdanau) and multiplicative (Luong dot, general) score functions,
    each built and run on real arrays (the arrays a score needs are the ones counted)."""
    rng = _rng(seed)
    decoder, encoder = rng.standard_normal(d), rng.standard_normal((n, d))
    additive = {"W_1": rng.standard_normal((d_attention, d)), "W_2": rng.standard_normal((d_attention, d)),
                "v_a": rng.standard_normal(d_attention)}
    general = {"W": rng.standard_normal((d, d))}
    scores = {
        "additive": np.tanh(additive["W_1"] @ decoder + encoder @ additive["W_2"].T) @ additive["v_a"],
        "dot": encoder @ decoder,
        "general": encoder @ (general["W"].T @ decoder),
    }
    if any(s.shape != (n,) for s in scores.values()):
        raise ArithmeticError("a score function did not give one score per encoder state")
    counts = {"additive_parameters": sum(a.size for a in additive.values()), "dot_parameters": 0,
              "general_parameters": sum(a.size for a in general.values())}
    return Measurement(counts, f"with d = {d} and an attention width of {d_attention}: additive scoring "
                               f"v_a^T tanh(W_1 h_dec + W_2 h_enc) has {counts['additive_parameters']:,} parameters, "
                               f"the dot score none and the general score h_dec^T W h_enc {counts['general_parameters']:,}.")
