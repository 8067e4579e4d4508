"""Checkers for recurrent cells: the documents' equations, and how gradients flow through time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nnspec import oracles
from nnspec.case import Case
from nnspec.registry import Param, checker


def unrolled_cell_state(xs: list[Any], h0: Any, params: Any) -> Callable[[Any, Any], Any]:
    """``(backend, C_0) -> C_T``: the backend's ``lstm_cell`` over backend-side inputs ``xs``."""

    def unrolled(backend: Any, c_start: Any) -> Any:
        h_t, c_t = h0, c_start
        for x_t in xs:
            h_t, c_t = backend.lstm_cell(x_t, h_t, c_t, params)
        return c_t

    return unrolled


def unrolled_hidden_state(xs: list[Any], params: Any) -> Callable[[Any, Any], Any]:
    """``(backend, h_0) -> h_T``: the backend's ``rnn_cell`` over backend-side inputs ``xs``."""

    def unrolled(backend: Any, h_start: Any) -> Any:
        h_t = h_start
        for x_t in xs:
            h_t = backend.rnn_cell(x_t, h_t, params)
        return h_t

    return unrolled


def _lstm_params(case: Case, inputs: int, hidden: int, forget_bias: float = 0.0,
                 weight_scale: float = 1.0) -> dict[str, np.ndarray]:
    bound = 1.0 / np.sqrt(hidden)
    params = {
        "w_ih": case.array("w_ih", (4 * hidden, inputs), "uniform", scale=bound * weight_scale),
        "w_hh": case.array("w_hh", (4 * hidden, hidden), "uniform", scale=bound * weight_scale),
        "b": case.array("b", (4 * hidden,), "uniform", scale=bound),
    }
    if forget_bias:
        params["b"] = params["b"].copy()
        params["b"][hidden : 2 * hidden] += np.asarray(forget_bias, dtype=params["b"].dtype)
    return params


def _lstm_state(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    batch, inputs, hidden = case.size("batch", (1, 3)), case.size("input_size", (1, 6)), case.size("hidden", (1, 6))
    regime = case.regime()
    x = case.array("x", (batch, inputs), regime)
    h = case.array("h", (batch, hidden), regime)
    c = case.array("c", (batch, hidden), regime)
    return x, h, c, inputs, hidden


@checker("lstm_cell_matches_equations", requires=("lstm_cell",))
def lstm_cell_matches_equations(case: Case) -> None:
    """``C_t = f_t * C_{t-1} + i_t * C~_t`` and ``h_t = o_t * tanh(C_t)``, gates from ``[h_{t-1}, x_t]``."""
    x, h, c, inputs, hidden = _lstm_state(case)
    params = _lstm_params(case, inputs, hidden)
    h_next, c_next = case.call("lstm_cell", x, h, c, params)
    expected_h, expected_c = oracles.lstm_cell(x, h, c, params)
    case.close("cell state C_t", c_next, expected_c)
    case.close("hidden state h_t", h_next, expected_h)


@checker("lstm_cell_state_jacobian", requires=("lstm_cell", "vjp"))
def lstm_cell_state_jacobian(case: Case) -> None:
    """``dC_t / dC_{t-1} = diag(f_t)``: the forget gate on the diagonal and exact zeros elsewhere."""
    x, h, c, inputs, hidden = _lstm_state(case)
    params = _lstm_params(case, inputs, hidden)
    x_b, h_b, params_b = case.convert(x), case.convert(h), case.convert(params)

    def cell_state(backend: Any, c_prev: Any) -> Any:
        return backend.lstm_cell(x_b, h_b, c_prev, params_b)[1]

    jacobian = case.jacobian(cell_state, c)
    forget = oracles.lstm_gates(x, h, params)["f"].reshape(-1)
    off_diagonal = jacobian[~np.eye(forget.size, dtype=bool)]
    leaked = float(np.max(np.abs(off_diagonal), initial=0.0))
    case.require(leaked == 0.0, f"dC_t/dC_(t-1) has off-diagonal entry {leaked:.3g} (must be exactly 0)",
                 error=leaked, tolerance=0.0)
    case.close("diagonal of dC_t/dC_(t-1) against f_t", np.diag(jacobian), forget)


@checker("lstm_long_horizon_gradient", requires=("lstm_cell", "vjp"), params={"forget_bias": Param(float, default=4.0), "retention_floor": Param(float, default=0.5, minimum=0.0, maximum=1.0)})
def lstm_long_horizon_gradient(case: Case) -> None:
    """Along the cell-state path, dC_T/dC_0 = prod_t diag(f_t): near one when forget gates are near one.

    The recurrent weights are zero so that the cell state is the only path from C_0 to C_T (the
    documents' constant-error-carousel argument); the Jacobian is then exactly diagonal.
    """
    steps, inputs, hidden = case.size("steps", (10, 60)), case.size("input_size", (1, 4)), case.size("hidden", (1, 4))
    forget_bias = float(case.params.get("forget_bias", 4.0))
    floor = float(case.params.get("retention_floor", 0.5))
    params = _lstm_params(case, inputs, hidden, forget_bias=forget_bias, weight_scale=0.1)
    params["w_hh"] = case.keep("w_hh", np.zeros_like(params["w_hh"]))
    xs = case.array("xs", (steps, 1, inputs), "uniform")
    h0 = case.array("h0", (1, hidden), "uniform")
    c0 = case.array("c0", (1, hidden), "uniform")
    xs_b, h0_b, params_b = [case.convert(x) for x in xs], case.convert(h0), case.convert(params)

    unrolled = unrolled_cell_state(xs_b, h0_b, params_b)
    jacobian = case.jacobian(unrolled, c0)
    retained = np.ones(hidden)
    h_t, c_t = h0, c0
    for x_t in xs:
        retained = retained * oracles.lstm_gates(x_t, h_t, params)["f"].reshape(-1)
        h_t, c_t = oracles.lstm_cell(x_t, h_t, c_t, params)
    leaked = float(np.max(np.abs(jacobian[~np.eye(hidden, dtype=bool)]), initial=0.0))
    case.require(leaked == 0.0, f"dC_T/dC_0 has off-diagonal entry {leaked:.3g} with no recurrent weights",
                 error=leaked, tolerance=0.0)
    case.close(f"diagonal of dC_T/dC_0 over {steps} steps against prod_t f_t", np.diag(jacobian), retained)
    weakest = float(np.min(np.diag(jacobian)))
    case.require(
        weakest >= floor,
        f"after {steps} steps with forget bias {forget_bias:g}, dC_T/dC_0 has a diagonal entry {weakest:.3g} "
        f"below {floor:g}: the cell-state path does not carry the gradient",
    )


def _rnn_params(case: Case, inputs: int, hidden: int, radius: float) -> dict[str, np.ndarray]:
    # An orthogonal recurrent matrix times ``radius`` has spectral norm exactly ``radius``.
    orthogonal, _ = np.linalg.qr(case.array("w_hh_raw", (hidden, hidden), "normal", dtype="float64"))
    return {
        "w_ih": case.array("w_ih", (hidden, inputs), "uniform"),
        "w_hh": case.keep("w_hh", (radius * orthogonal).astype(case.dtype())),
        "b": case.array("b", (hidden,), "uniform"),
    }


@checker("rnn_cell_matches_formula", requires=("rnn_cell",))
def rnn_cell_matches_formula(case: Case) -> None:
    """``h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)``."""
    batch, inputs, hidden = case.size("batch", (1, 3)), case.size("input_size", (1, 6)), case.size("hidden", (1, 6))
    x, h = case.array("x", (batch, inputs), case.regime()), case.array("h", (batch, hidden), "uniform")
    params = _rnn_params(case, inputs, hidden, 1.0)
    case.close("h_t", case.call("rnn_cell", x, h, params), oracles.rnn_cell(x, h, params))


@checker("rnn_gradient_vanishes", requires=("rnn_cell", "vjp"))
def rnn_gradient_vanishes(case: Case) -> None:
    """With ``||W_hh||_2 = rho < 1``, ``||dh_T / dh_0||_2 <= rho^T``: the gradient decays geometrically."""
    steps, inputs, hidden = case.size("steps", (5, 40)), case.size("input_size", (1, 4)), case.size("hidden", (1, 4))
    radius = float(case.choice("radius", [0.3, 0.5, 0.7, 0.9]))
    params = _rnn_params(case, inputs, hidden, radius)
    xs = case.array("xs", (steps, 1, inputs), "uniform")
    h0 = case.array("h0", (1, hidden), "uniform")
    xs_b, params_b = [case.convert(x) for x in xs], case.convert(params)

    unrolled = unrolled_hidden_state(xs_b, params_b)
    norm = float(np.linalg.norm(case.jacobian(unrolled, h0), 2))
    bound = radius**steps
    tolerance = case.tolerance_for()
    allowed = bound * (1.0 + tolerance.rtol) + tolerance.atol
    case.require(norm <= allowed,
                 f"||dh_T/dh_0|| = {norm:.3g} after {steps} steps exceeds rho^T = {bound:.3g} (rho = {radius})",
                 error=norm, tolerance=allowed)
