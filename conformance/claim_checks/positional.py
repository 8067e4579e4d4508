"""Claim checks about sinusoidal and rotary positional encodings."""

from __future__ import annotations

import numpy as np

from nnspec import oracles
from nnspec.claim_checks._common import _rng
from nnspec.claims import Measurement, claim_check


@claim_check("sinusoidal_shift_is_linear")
def sinusoidal_shift_is_linear(d_model: int, offsets: list[int], positions: int = 100) -> Measurement:
    """PE(pos + k) = M_k PE(pos) for one matrix M_k per offset: fitted by least squares over many positions."""
    rows = np.arange(positions)
    residuals = {}
    for k in offsets:
        source, target = oracles.sinusoidal(rows, d_model), oracles.sinusoidal(rows + k, d_model)
        fitted, *_ = np.linalg.lstsq(source, target, rcond=None)
        residuals[str(k)] = float(np.max(np.abs(source @ fitted - target)))
    # a control that is not a linear function of PE(pos): the square of the shifted encoding
    source = oracles.sinusoidal(rows, d_model)
    control, *_ = np.linalg.lstsq(source, oracles.sinusoidal(rows + offsets[0], d_model) ** 2, rcond=None)
    control_residual = float(np.max(np.abs(source @ control - oracles.sinusoidal(rows + offsets[0], d_model) ** 2)))
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
    encoding = oracles.sinusoidal(np.arange(sample), d_model)
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
