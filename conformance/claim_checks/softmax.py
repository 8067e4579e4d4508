"""Claim checks about softmax values, sums, derivatives and saturation."""

from __future__ import annotations

import math

import numpy as np

from nnspec import oracles
from nnspec.claim_checks._common import _rng
from nnspec.claims import Measurement, claim_check


@claim_check("softmax_values")
def softmax_values(logits: list[float]) -> Measurement:
    """softmax(logits) in float64."""
    weights = oracles.softmax(logits)
    return Measurement({"weights": weights}, f"softmax({logits}) = {np.round(weights, 4).tolist()}.",
                       primary="weights")


@claim_check("softmax_near_one_hot")
def softmax_near_one_hot(logits: list[float], tolerance: float) -> Measurement:
    """softmax(logits), judged within ``tolerance`` (what "essentially" allows)."""
    weights = oracles.softmax(logits)
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
        derivatives.append(float((oracles.softmax(np.add(logits, step))[i] - oracles.softmax(np.subtract(logits, step))[i]) / (2 * eps)))
    weights = oracles.softmax(logits)
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
        p = oracles.softmax(scores)
        jacobians = p[:, :, None] * np.eye(length)[None] - p[:, :, None] * p[:, None, :]
        return float(np.linalg.norm(jacobians, axis=(1, 2)).mean())

    unscaled, scaled = mean_jacobian_norm(raw), mean_jacobian_norm(raw / math.sqrt(d_k))
    return Measurement({"jacobian_norm_unscaled": unscaled, "jacobian_norm_scaled": scaled},
                       f"with d_k = {d_k} and {length} keys, the softmax Jacobian's mean norm is {unscaled:.3g} on raw "
                       f"scores and {scaled:.3g} after dividing by sqrt(d_k).")
