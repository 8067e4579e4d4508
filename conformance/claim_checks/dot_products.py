"""Claim checks about the statistics of dot products of random vectors (why attention scales by 1/sqrt(d))."""

from __future__ import annotations

import math

import numpy as np

from nnspec.claim_checks._common import _rng, _z
from nnspec.claims import Condition, Measurement, claim_check


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
