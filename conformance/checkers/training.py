"""Checkers for training mechanics: gradient clipping, truncated BPTT, the warm-up schedule."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnspec import oracles
from nnspec.case import Case
from nnspec.checkers.recurrent import _rnn_params
from nnspec.registry import checker

# -- gradient clipping ---------------------------------------------------------------------------


def _gradients(case: Case) -> tuple[list[np.ndarray], float, float]:
    """1 to 4 arrays whose global norm is ``ratio * max_norm``, ``ratio`` kept clear of 1 by 10%."""
    count = case.size("layers", (1, 4))
    shapes = [tuple(int(n) for n in case.rng.integers(1, 6, case.rng.integers(1, 3))) for _ in range(count)]
    raw = [case.array(f"raw{index}", shape, case.regime(), dtype="float64") for index, shape in enumerate(shapes)]
    max_norm = float(case.choice("max_norm", [0.5, 1.0, 5.0]))
    ratio = float(case.choice("ratio", [0.1, 0.5, 0.9, 1.1, 2.0, 10.0, 1000.0]))
    total = np.sqrt(sum(np.sum(g**2) for g in raw))
    grads = [case.keep(f"grad{index}", (g * (ratio * max_norm / total)).astype(case.dtype())) for index, g in enumerate(raw)]
    return grads, max_norm, ratio


def _global_norm(arrays: list[np.ndarray]) -> float:
    return float(np.sqrt(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in arrays)))


@checker("clip_grad_norm_threshold", requires=("clip_grad_norm",))
def clip_grad_norm_threshold(case: Case) -> None:
    """Above the threshold the global norm becomes the threshold; below it the gradients are untouched."""
    grads, max_norm, ratio = _gradients(case)
    clipped = [np.asarray(g) for g in case.call("clip_grad_norm", grads, max_norm)]
    case.require(len(clipped) == len(grads), f"expected {len(grads)} arrays back. Received: {len(clipped)}")
    norm_before = _global_norm(grads)
    if norm_before <= max_norm:
        changed = max(float(np.max(np.abs(c.astype(np.float64) - g.astype(np.float64)))) for c, g in zip(clipped, grads, strict=True))
        case.require(changed == 0.0, f"global norm {norm_before:.4g} is below max_norm {max_norm:g}, yet the "
                     f"gradients changed by up to {changed:.3g}", error=changed, tolerance=0.0)
    else:
        case.close(f"global norm after clipping (before: {norm_before:.4g}, ratio {ratio:g})",
                   np.array([_global_norm(clipped)]), np.array([max_norm]))


@checker("clip_grad_norm_direction", requires=("clip_grad_norm",))
def clip_grad_norm_direction(case: Case) -> None:
    """Clipping multiplies every array by one common factor ``min(1, max_norm / norm)``: the direction is kept."""
    grads, max_norm, _ = _gradients(case)
    clipped = case.call("clip_grad_norm", grads, max_norm)
    norm = _global_norm(grads)
    factor = min(1.0, max_norm / norm)
    for index, (got, grad) in enumerate(zip(clipped, grads, strict=True)):
        case.close(f"array {index} against min(1, max_norm/norm) = {factor:.4g} times the gradient", got,
                   factor * grad.astype(np.float64), magnitude=float(np.max(np.abs(grad))) * factor)


# -- truncated BPTT ------------------------------------------------------------------------------


def _rnn_input_gradients(xs: np.ndarray, h0: np.ndarray, params: dict[str, np.ndarray],
                         cotangent: np.ndarray) -> np.ndarray:
    """Full BPTT in float64: ``cotangent . dh_T / dx_t`` for every step ``t``, by the chain rule."""
    w_ih, w_hh = params["w_ih"].astype(np.float64), params["w_hh"].astype(np.float64)
    states, h = [], h0
    for x_t in xs:
        h = oracles.rnn_cell(x_t, h, params)
        states.append(h)
    grads = np.zeros(xs.shape)
    delta = cotangent.astype(np.float64)
    for t in range(len(xs) - 1, -1, -1):
        pre = delta * (1.0 - states[t] ** 2)
        grads[t] = pre @ w_ih
        delta = pre @ w_hh
    return grads


@checker("truncated_bptt_window", requires=("rnn_cell", "vjp", "stop_gradient"))
def truncated_bptt_window(case: Case) -> None:
    """Stopping the gradient at ``h_{T-k}`` keeps exactly the last ``k`` steps' gradients, unchanged.

    The forward value is unchanged; ``dh_T/dx_t`` is exactly 0 for ``t < T - k`` and equals full
    BPTT for ``t >= T - k``.
    """
    steps = case.size("steps", (2, 12))
    window = min(case.size("window", (1, 11)), steps - 1)
    inputs, hidden = case.size("input_size", (1, 3)), case.size("hidden", (1, 4))
    params = _rnn_params(case, inputs, hidden, 1.0)
    xs = case.array("xs", (steps, 1, inputs), "uniform")
    h0 = case.array("h0", (1, hidden), "uniform")
    cotangent = case.array("cotangent", (1, hidden), "normal")
    h0_b, params_b = case.convert(h0), case.convert(params)
    cut = steps - window

    def truncated(backend: Any, xs_all: Any) -> Any:
        h_t = h0_b
        for t in range(steps):
            if t == cut:
                h_t = backend.stop_gradient(h_t)
            h_t = backend.rnn_cell(xs_all[t], h_t, params_b)
        return h_t

    value = np.asarray(case.backend.to_numpy(truncated(case.backend, case.convert(xs))), np.float64)
    h_t = h0
    for x_t in xs:
        h_t = oracles.rnn_cell(x_t, h_t, params)
    case.close("h_T with a stop-gradient inside (the value must not change)", value, h_t)
    (grads,) = case.gradient(truncated, [xs], cotangent)
    full = _rnn_input_gradients(xs, h0, params, cotangent)
    leaked = float(np.max(np.abs(grads[:cut])))
    case.require(leaked == 0.0, f"gradient reaches x_t for t < T - k = {cut} (|g| up to {leaked:.3g}) through "
                 "stop_gradient", error=leaked, tolerance=0.0)
    case.close(f"gradients of the last k = {window} steps against full BPTT", grads[cut:], full[cut:])


# -- the warm-up schedule ------------------------------------------------------------------------


def warmup_oracle(steps: np.ndarray, d_model: int, warmup: int) -> np.ndarray:
    steps = np.asarray(steps, np.float64)
    return d_model**-0.5 * np.minimum(steps**-0.5, steps * float(warmup) ** -1.5)


def _schedule_draw(case: Case) -> tuple[int, int]:
    d_model = int(case.choice("d_model", [16, 64, 512, 1024]))
    warmup = case.size("warmup", (1, 4000))
    case.dtype()
    return d_model, warmup


@checker("warmup_schedule_matches_formula", requires=("warmup_schedule",))
def warmup_schedule_matches_formula(case: Case) -> None:
    """``lr = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)`` at random steps and at the turning points."""
    d_model, warmup = _schedule_draw(case)
    steps = np.unique(np.concatenate([case.rng.integers(1, 4 * warmup + 2, 32), [1, warmup, warmup + 1]]))
    case.keep("steps", steps)
    actual = case.call("warmup_schedule", steps, d_model, warmup)
    case.close(f"learning rate (d_model {d_model}, warmup {warmup})", actual, warmup_oracle(steps, d_model, warmup))


@checker("warmup_schedule_shape", requires=("warmup_schedule",))
def warmup_schedule_shape(case: Case) -> None:
    """Linear up to the peak at ``step = warmup``, then decaying as ``step^-0.5``.

    ``lr(s) = s * lr(1)`` for ``s <= warmup``; the largest rate over ``1 .. 16 warmup`` is at
    ``warmup``; ``lr(4 s) = lr(s) / 2`` for ``s >= warmup``.
    """
    d_model, warmup = _schedule_draw(case)
    steps = np.arange(1, 16 * warmup + 1)
    rates = np.asarray(case.call("warmup_schedule", steps, d_model, warmup), np.float64)
    peak = int(steps[np.argmax(rates)])
    case.require(peak == warmup, f"the schedule peaks at step {peak}, not at warmup = {warmup}")
    case.close("lr(s) / lr(1) for s <= warmup (linear warm-up)", rates[:warmup] / rates[0],
               steps[:warmup].astype(np.float64))
    decaying = steps[warmup - 1 : 4 * warmup]
    ratios = rates[4 * decaying - 1] / rates[decaying - 1]
    case.close("lr(4 s) / lr(s) for s >= warmup (inverse square-root decay)", ratios, np.full(ratios.shape, 0.5))
