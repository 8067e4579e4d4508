"""Checkers for the 1/sqrt(d_k) scaling: the scale applied, and the variance of the logits.

The logits are recovered from the backend's weights: with one query and two keys,
``log(w_1 / w_0) = scale * q . (k_1 - k_0)``. Given ``q``, and for ``k`` with independent unit
normal entries, ``q . (k_1 - k_0)`` is exactly normal with variance ``2 |q|^2``; its mean over
``q`` is ``2 d_k``. So ``u = log(w_1 / w_0) / (scale * sqrt(2) |q|)`` is an exact standard normal
sample and ``sum(u^2)`` follows a chi-squared law with ``n`` degrees of freedom: a test with an
exact false-alarm rate, not a hand-picked threshold.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from nnspec.case import Case
from nnspec.registry import Param, checker


def _logit_pairs(case: Case, samples: int, scale: float | None) -> tuple[np.ndarray, np.ndarray, int]:
    dim = case.size("dim", (2, 64))
    q = case.array("q", (samples, 1, 1, dim), "normal")
    k = case.array("k", (samples, 1, 2, dim), "normal")
    weights = case.call("attention_weights", q, k, scale=scale).astype(np.float64)[:, 0, 0]
    logits = np.log(weights[:, 1]) - np.log(weights[:, 0])
    q_norm = np.linalg.norm(q[:, 0, 0].astype(np.float64), axis=-1)
    return logits, q_norm, dim


def _chi_squared(case: Case, what: str, standardised: np.ndarray) -> None:
    n = standardised.size
    statistic = float(np.sum(standardised**2))
    p_value = 2.0 * min(float(stats.chi2.cdf(statistic, n)), float(stats.chi2.sf(statistic, n)))
    case.significance(f"{what}: sample variance {statistic / n:.4g} (expected 1, n = {n})", p_value, statistic / n)


@checker("unscaled_logit_variance", requires=("attention_weights",), statistical=True)
def unscaled_logit_variance(case: Case) -> None:
    """With ``scale=1``, logits ``q . k`` of unit-variance entries have variance ``d_k`` (given q: ``|q|^2``)."""
    samples = int(case.prop.statistical.get("samples", 2000))
    logits, q_norm, dim = _logit_pairs(case, samples, scale=1.0)
    _chi_squared(case, f"unscaled logits / |q| (d_k = {dim})", logits / (np.sqrt(2.0) * q_norm))


@checker("scaled_logit_variance", requires=("attention_weights",), statistical=True)
def scaled_logit_variance(case: Case) -> None:
    """With the default scale, logits ``q . k / sqrt(d_k)`` have unit variance."""
    samples = int(case.prop.statistical.get("samples", 2000))
    logits, q_norm, dim = _logit_pairs(case, samples, scale=None)
    _chi_squared(case, f"scaled logits * sqrt(d_k) / |q| (d_k = {dim})", logits * np.sqrt(dim) / (np.sqrt(2.0) * q_norm))


@checker("default_scale_is_inverse_sqrt_dk", requires=("attention_weights",), params={"explicit": Param(bool, default=None)})
def default_scale_is_inverse_sqrt_dk(case: Case) -> None:
    """The scale a backend applies by default, recovered from its weights, is ``1 / sqrt(d_k)``.

    When ``scale`` is passed explicitly (``params.explicit``), the backend honours that value instead.
    """
    dim = case.size("dim", (2, 64))
    explicit = None
    if case.params.get("explicit"):
        low, high = case.prop.inputs.get("scale", [0.05, 4.0])
        explicit = float(case.choice("scale", [low, 1.0, high, 0.5 * (low + high)]))
    q = case.array("q", (32, 1, 1, dim), "normal")
    k = case.array("k", (32, 1, 2, dim), "normal")
    weights = case.call("attention_weights", q, k, scale=explicit).astype(np.float64)[:, 0, 0]
    q64, k64 = q[:, 0, 0].astype(np.float64), k[:, 0].astype(np.float64)
    dots = np.einsum("nd,nd->n", q64, k64[:, 1] - k64[:, 0])
    expected = 1.0 / np.sqrt(dim) if explicit is None else explicit
    # Read the scale from the sample whose logit is nearest 2: large enough that rounding of the
    # weights is small against it, small enough that neither weight underflows.
    best = int(np.argmin(np.abs(np.abs(expected * dots) - 2.0)))
    logit = np.log(weights[best, 1]) - np.log(weights[best, 0])
    recovered = logit / dots[best]
    # The backend's logit difference carries the rounding of a d_k-term dot product, about eps
    # times sum_d |q_d (k1_d - k0_d)|, so the recovered scale's error is relative to |scale| times
    # that sum's condition number sum |q_d dk_d| / |q . dk| (up to about 100 for the sample read);
    # a wrong scale is off by a factor, far beyond it.
    condition = float(np.sum(np.abs(q64[best] * (k64[best, 1] - k64[best, 0])))) / max(abs(float(dots[best])), 1e-300)
    case.close(f"scale recovered from the weights (d_k = {dim})", np.array([recovered]), np.array([expected]),
               magnitude=abs(expected) * max(1.0, condition))
