"""Checkers for layer normalisation: the formula, per-token standardisation, and independence from
the rest of the batch (with batch normalisation computed alongside, for contrast)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume

from nnspec.case import Case
from nnspec.registry import Param, checker


def layer_norm_oracle(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """``gamma * (x - mu) / sqrt(sigma^2 + eps) + beta`` with ``mu = (1/d) sum x_i``,
    ``sigma^2 = (1/d) sum (x_i - mu)^2`` over the last axis, in float64."""
    x = np.asarray(x, np.float64)
    width = x.shape[-1]
    mu = x.sum(axis=-1, keepdims=True) / width
    sigma_squared = ((x - mu) ** 2).sum(axis=-1, keepdims=True) / width
    return np.asarray(weight, np.float64) * (x - mu) / np.sqrt(sigma_squared + eps) + np.asarray(bias, np.float64)


def batch_norm_oracle(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Training-mode batch normalisation of ``(B, T, M)``: statistics per feature over batch and time."""
    x = np.asarray(x, np.float64)
    mu = x.mean(axis=(0, 1), keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=(0, 1), keepdims=True) + eps)


def _tokens(case: Case, name: str = "x", regime: str | None = None) -> np.ndarray:
    batch, length, width = case.size("batch", (1, 3)), case.size("q_len", (1, 6)), case.size("d_model", (1, 16))
    return case.array(name, (batch, length, width), regime or case.regime())


@checker("layer_norm_matches_formula", requires=("layer_norm",), params={"offset": Param(float, default=0.0)})
def layer_norm_matches_formula(case: Case) -> None:
    """``layer_norm(x, gamma, beta)`` equals the documents' formula over the last axis, in float64.

    ``params.offset`` adds that constant to every input, so that each token's mean is large against
    its spread; the oracle sees the same rounded inputs.
    """
    x = _tokens(case)
    offset = float(case.params.get("offset", 0.0))
    if offset:
        x = case.keep("x", (x.astype(np.float64) + offset).astype(x.dtype))
    width = x.shape[-1]
    weight = case.array("weight", (width,), "normal")
    bias = case.array("bias", (width,), "normal")
    actual = case.call("layer_norm", x, weight, bias)
    magnitude = float(np.max(np.abs(weight.astype(np.float64)), initial=0.0))
    if offset:
        # Centring is ill-conditioned by |x| / sigma: a backward-stable (two-pass) computation errs by
        # about that many ulps, the one-pass mean(x^2) - mean(x)^2 by its square.
        x64 = x.astype(np.float64)
        spread = np.maximum(x64.std(axis=-1), np.finfo(np.float64).tiny)
        magnitude *= float(np.max(np.max(np.abs(x64), axis=-1) / spread))
    case.close("layer norm", actual, layer_norm_oracle(x, weight, bias), magnitude=magnitude)


@checker("layer_norm_standardises_each_token", requires=("layer_norm",))
def layer_norm_standardises_each_token(case: Case) -> None:
    """With ``gamma = 1, beta = 0`` each token has mean 0 and biased variance ``s^2 / (s^2 + eps)``.

    ``s^2`` is the token's own biased variance; the ratio is 1 up to ``eps``, and it is what the
    formula gives exactly, so tiny inputs check where ``eps`` enters as well.
    """
    x = _tokens(case)
    width = x.shape[-1]
    out = case.call("layer_norm", x, np.ones(width, x.dtype), np.zeros(width, x.dtype)).astype(np.float64)
    x64 = x.astype(np.float64)
    spread = x64.var(axis=-1)
    case.close("per-token mean after layer norm", out.mean(axis=-1), np.zeros(spread.shape))
    case.close("per-token biased variance after layer norm", out.var(axis=-1), spread / (spread + 1e-5))


@checker("layer_norm_batch_independent", requires=("layer_norm",))
def layer_norm_batch_independent(case: Case) -> None:
    """A token's output does not change when the other tokens, the batch size or the length change.

    The token is moved into a second, freshly drawn batch of another size and value scale. Batch
    normalisation, computed from its formula on both batches, does change for that token; an
    example where it would not is discarded as uninformative.
    """
    x = _tokens(case)
    batch, length, width = x.shape
    row, column = case.size("row", (0, batch - 1)), case.size("column", (0, length - 1))
    other_batch = case.size("other_batch", (1, 4))
    other_length = case.size("other_length", (2, 8))
    other = case.array("other", (other_batch, other_length, width), case.regime("other_values"), scale=3.0)
    other = (other + np.asarray(2.0, other.dtype)).astype(x.dtype)
    new_row, new_column = case.size("new_row", (0, other_batch - 1)), case.size("new_column", (0, other_length - 1))
    other[new_row, new_column] = x[row, column]
    case.keep("other", other)
    assume(np.max(np.abs(batch_norm_oracle(x)[row, column] - batch_norm_oracle(other)[new_row, new_column])) > 1e-3)
    weight, bias = case.array("weight", (width,), "normal"), case.array("bias", (width,), "normal")
    alone = case.call("layer_norm", x, weight, bias)[row, column]
    moved = case.call("layer_norm", other, weight, bias)[new_row, new_column]
    case.close(f"token ({row}, {column}) normalised inside another batch of shape {other.shape}",
               moved, alone.astype(np.float64),
               magnitude=float(np.max(np.abs(weight.astype(np.float64)), initial=0.0)))
