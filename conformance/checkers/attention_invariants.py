"""Checkers for more of scaled dot-product attention, softmax and linear attention.

The output lies in the convex hull of the admissible values, cross-attention answers each query
on its own, a shared Q/K projection gives symmetric scores (but not symmetric weights), softmax's
temperature limits, the saturation of softmax's Jacobian, and linear attention's recurrent form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnspec import oracles
from nnspec.case import Case
from nnspec.checkers._draw import qkv
from nnspec.oracles import magnitude as _magnitude
from nnspec.registry import Param, checker
from nnspec.strategies import cast


def _within(case: Case, what: str, actual: np.ndarray, low: np.ndarray, high: np.ndarray,
            magnitude: float | None = None) -> None:
    """Fail unless every element of ``actual`` lies in ``[low, high]`` within the property's tolerance."""
    actual = np.asarray(actual, dtype=np.float64)
    finite = bool(np.all(np.isfinite(actual)))
    case.require(finite, f"{what}: the backend returned a non-finite value")
    case.close(f"{what}: distance outside [lower, upper]", actual, np.clip(actual, low, high), magnitude=magnitude)


# -- attention ------------------------------------------------------------------------------------


@checker("attention_output_in_value_hull", requires=("attention",))
def attention_output_in_value_hull(case: Case) -> None:
    """Each output coordinate lies between the smallest and largest admissible value in that coordinate."""
    q, k, v = qkv(case)
    kind, mask = case.mask(q.shape[0], q.shape[2], k.shape[2])
    out = case.call("attention", q, k, v, mask=mask)
    batch, heads, q_len, k_len = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    allowed = np.ones((batch, heads, q_len, k_len), dtype=bool)
    if mask is not None:
        allowed = np.broadcast_to(mask, allowed.shape)
    values = v.astype(np.float64)[:, :, None, :, :]  # (B, H, 1, S, Dv)
    admissible = allowed[..., None]
    low = np.min(np.where(admissible, values, np.inf), axis=-2)
    high = np.max(np.where(admissible, values, -np.inf), axis=-2)
    _within(case, f"attention output against the range of the admissible values (mask {kind})", out, low, high,
            magnitude=_magnitude(v))


@checker("cross_attention_output_follows_queries", requires=("attention",))
def cross_attention_output_follows_queries(case: Case) -> None:
    """With L queries and S keys the output has L rows of width Dv, and each row depends on its query alone.

    Splitting the queries into two groups and attending with each group separately gives the same
    rows as one call: the key/value sequence fixes what can be retrieved, the queries how many answers.
    """
    q, k, v = qkv(case)
    batch, heads, q_len = q.shape[:3]
    out = case.call("attention", q, k, v)
    expected_shape = (batch, heads, q_len, v.shape[-1])
    case.require(out.shape == expected_shape,
                 f"cross-attention output shape: expected (B, H, L, Dv) = {expected_shape} for "
                 f"{q_len} queries and {k.shape[2]} keys. Received: {out.shape}")
    split = case.size("split", (1, max(q_len - 1, 1)))
    split = min(split, q_len - 1)
    if split < 1:
        return
    first = case.call("attention", q[:, :, :split], k, v)
    second = case.call("attention", q[:, :, split:], k, v)
    case.close(f"attention on queries [0, {split}) and [{split}, {q_len}) separately against one call",
               np.concatenate([first, second], axis=2), out.astype(np.float64), magnitude=_magnitude(v))


@checker("shared_query_key_projection", requires=("attention_weights",))
def shared_query_key_projection(case: Case) -> None:
    """With W_Q = W_K the scores are symmetric, the weights satisfy detailed balance, and are not symmetric.

    Symmetric scores ``s_ij = s_ji`` and row normalisers ``Z_i`` give ``w_ij Z_i = w_ji Z_j``, i.e.
    ``log(w_ij / w_ji) = c_j - c_i`` with ``c = log Z``: checked as ``log(w_ij / w_ji) = a_0j - a_0i``
    where ``a_ij = log(w_ij / w_ji)``, which needs neither the scale nor Z. For inputs in general
    position and L >= 3 the weights themselves are not symmetric, because the ``Z_i`` differ.
    """
    batch, heads = case.size("batch", (1, 2)), case.size("heads", (1, 2))
    length = case.size("q_len", (3, 8), minimum=3)
    model, dim = case.size("d_model", (2, 8)), case.size("dim", (2, 8))
    regime = case.regime()
    x = case.array("x", (batch, heads, length, model), regime)
    w_qk = case.array("w_qk", (model, dim), "normal", scale=1.0 / np.sqrt(model))
    projected = cast(x.astype(np.float64) @ w_qk.astype(np.float64), case.dtype())  # x W_Q = x W_K
    weights = case.call("attention_weights", projected, projected).astype(np.float64)
    finite = bool(np.all(np.isfinite(weights)) and np.all(weights > 0))
    case.require(finite, "attention weights with q = k must be finite and positive for these inputs")
    log_weights = np.log(weights)
    antisymmetric = log_weights - np.swapaxes(log_weights, -1, -2)
    first_row = antisymmetric[..., 0, :]
    potential = first_row[..., None, :] - first_row[..., :, None]
    p64 = projected.astype(np.float64)
    # Rounding in log w grows with the logits' size: judge relative to the largest score.
    logit_size = 1.0 + float(np.max(np.abs(p64 @ np.swapaxes(p64, -1, -2)))) / np.sqrt(dim)
    case.close("log(w_ij / w_ji) against log(Z_j / Z_i) (detailed balance of symmetric scores)",
               antisymmetric, potential, magnitude=logit_size)
    asymmetry = float(np.max(np.abs(weights - np.swapaxes(weights, -1, -2))))
    floor = 1e3 * case.epsilon()
    case.require(asymmetry > floor,
                 f"with W_Q = W_K the attention weights came out symmetric (largest |w_ij - w_ji| = {asymmetry:.3g}): "
                 "softmax normalises each query's row separately, so only the scores are symmetric",
                 error=floor, tolerance=max(asymmetry, 1e-300))


# -- softmax ----------------------------------------------------------------------------------------


def _separated_logits(case: Case, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, float]:
    """Logits in the example's dtype whose maximum exceeds the runner-up by a drawn gap (per row)."""
    x = case.array("x", shape, case.regime()).astype(np.float64)
    gap = float(case.choice("gap", [0.5, 1.0, 2.0, 4.0]))
    top = np.argmax(x, axis=-1)
    runner_up = np.sort(x, axis=-1)[..., -2] if shape[-1] > 1 else x[..., 0] - gap
    np.put_along_axis(x, top[..., None], (runner_up + gap)[..., None], axis=-1)
    x = case.keep("x", cast(x, case.dtype()))
    return x, top, gap


@checker("softmax_temperature_limits", requires=("softmax",))
def softmax_temperature_limits(case: Case) -> None:
    """softmax(x / T) tends to the argmax one-hot as T -> 0 and to uniform as T -> inf, within exact bounds.

    Cold (T small): each non-maximal p_j <= exp((x_j - x_max) / T), so the L1 distance to the
    one-hot is at most 2 S / (1 + S) with S = sum_{j != max} exp((x_j - x_max) / T), which goes to 0.
    Hot (T large): with R the range of x / T, every p_i lies in [1 / (1 + (n-1) e^R), 1 / (1 + (n-1) e^-R)],
    an interval that shrinks to 1/n.
    """
    shape = (case.size("batch", (1, 3)), case.size("length", (2, 16), minimum=2))
    x, top, gap = _separated_logits(case, shape)
    x64 = x.astype(np.float64)
    limit = case.choice("limit", ["cold", "hot"])
    if limit == "cold":
        sharpness = float(case.choice("sharpness", [5.0, 20.0, 100.0, 1e3, 1e5]))
        temperature = gap / sharpness
    else:
        spread = float(np.max(np.ptp(x64, axis=-1)))
        temperature = max(spread, 1.0) * float(case.choice("flatness", [10.0, 1e2, 1e4, 1e8]))
    scaled = case.keep("x_over_t", cast(x64 / temperature, case.dtype()))
    out = case.call("softmax", scaled, axis=-1).astype(np.float64)
    s64 = scaled.astype(np.float64)
    n = shape[-1]
    if limit == "cold":
        peak = np.take_along_axis(s64, top[..., None], axis=-1)
        others = np.exp(s64 - peak)
        np.put_along_axis(others, top[..., None], 0.0, axis=-1)
        total = others.sum(axis=-1)
        one_hot = np.zeros_like(out)
        np.put_along_axis(one_hot, top[..., None], 1.0, axis=-1)
        distance = np.abs(out - one_hot).sum(axis=-1)
        _within(case, f"L1 distance of softmax(x / {temperature:.3g}) to the argmax one-hot", distance,
                np.zeros_like(distance), 2.0 * total / (1.0 + total))
    else:
        spread = np.ptp(s64, axis=-1, keepdims=True)
        low = 1.0 / (1.0 + (n - 1) * np.exp(spread))
        high = 1.0 / (1.0 + (n - 1) * np.exp(-spread))
        _within(case, f"softmax(x / {temperature:.3g}) against the uniform 1/{n} band", out,
                np.broadcast_to(low, out.shape), np.broadcast_to(high, out.shape))


@checker("softmax_jacobian_saturates", requires=("softmax", "vjp"))
def softmax_jacobian_saturates(case: Case) -> None:
    """The softmax Jacobian, taken through the backend's vjp, shrinks when unscaled logits grow.

    At x with a maximum separated by a gap g, |J(x)|_F >= p_max (1 - p_max) (its largest diagonal
    entry), while at c x, |J(c x)|_F <= 2 (1 - sum p^2) <= 4 (n - 1) e^(-c g). The factor c is
    chosen so the second bound is half the first: the norm at c x must come out smaller. Both
    Jacobians are also compared with diag(p) - p p^T.
    """
    length = case.size("length", (2, 12), minimum=2)
    x, _, gap = _separated_logits(case, (length,))
    probabilities = oracles.softmax(x.astype(np.float64))
    p_max = float(np.max(probabilities))
    lower = p_max * (1.0 - p_max)
    factor = max(2.0, float(np.log(8.0 * (length - 1) / lower) / gap))
    grown = case.keep("c_x", cast(factor * x.astype(np.float64), case.dtype()))

    def softmax(backend: Any, logits: Any) -> Any:
        return backend.softmax(logits, axis=-1)

    norms = []
    for label, logits in (("x", x), (f"{factor:.3g} x", grown)):
        jacobian = case.jacobian(softmax, logits)
        p = oracles.softmax(logits.astype(np.float64))
        case.close(f"softmax Jacobian at {label} against diag(p) - p p^T", jacobian, np.diag(p) - np.outer(p, p))
        norms.append(float(np.linalg.norm(jacobian)))
    case.require(norms[1] < norms[0],
                 f"the softmax Jacobian did not shrink when the logits grew by {factor:.3g}: "
                 f"|J(x)|_F = {norms[0]:.3g}, |J(c x)|_F = {norms[1]:.3g}",
                 error=norms[1], tolerance=norms[0])


# -- linear attention -------------------------------------------------------------------------------


def _elu_plus_one(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def recurrent_linear_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, is_causal: bool) -> np.ndarray:
    """Linear attention in its O(n) recurrent form, float64: running S = sum phi(k) v^T, z = sum phi(k)."""
    q_features = _elu_plus_one(np.asarray(q, np.float64))
    k_features = _elu_plus_one(np.asarray(k, np.float64))
    values = np.asarray(v, np.float64)
    state = np.zeros((*q.shape[:-2], q.shape[-1], v.shape[-1]))
    normaliser = np.zeros((*q.shape[:-2], q.shape[-1]))
    if not is_causal:
        state = np.einsum("...sd,...se->...de", k_features, values)
        normaliser = k_features.sum(axis=-2)
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for position in range(q.shape[-2]):
        if is_causal:
            state = state + np.einsum("...d,...e->...de", k_features[..., position, :], values[..., position, :])
            normaliser = normaliser + k_features[..., position, :]
        query = q_features[..., position, :]
        numerator = np.einsum("...d,...de->...e", query, state)
        out[..., position, :] = numerator / np.einsum("...d,...d->...", query, normaliser)[..., None]
    return out


@checker("linear_attention_matches_recurrence", requires=("linear_attention",), params={"causal": Param(bool, default=False)})
def linear_attention_matches_recurrence(case: Case) -> None:
    """The parallel elu+1 linear attention equals its recurrent form, computed step by step in float64."""
    q, k, v = qkv(case, self_attention=True)
    is_causal = bool(case.params.get("causal", False))
    out = case.call("linear_attention", q, k, v, is_causal=is_causal)
    case.close(f"linear attention (causal={is_causal}) against its recurrent form", out,
               recurrent_linear_attention(q, k, v, is_causal), magnitude=_magnitude(v))
