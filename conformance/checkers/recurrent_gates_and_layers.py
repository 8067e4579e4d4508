"""Checkers for recurrent networks beyond the single cell: step Jacobians, exploding gradients, gate
ranges, forget-gate bias, peepholes, the GRU, and whole layers (sequences, padding, both directions,
stacks).
"""

from __future__ import annotations

import numpy as np

from nnspec import oracles
from nnspec.case import Case
from nnspec.checkers.recurrent import _lstm_params, _rnn_params, unrolled_cell_state, unrolled_hidden_state
from nnspec.registry import checker

# -- vanilla RNN ---------------------------------------------------------------------------------


@checker("rnn_step_jacobian", requires=("rnn_cell", "vjp"))
def rnn_step_jacobian(case: Case) -> None:
    """``dh_t / dh_{t-1} = diag(1 - h_t^2) W_hh``, through the backend's own autodiff."""
    inputs, hidden = case.size("input_size", (1, 6)), case.size("hidden", (1, 6))
    radius = float(case.choice("radius", [0.5, 1.0, 2.0]))
    params = _rnn_params(case, inputs, hidden, radius)
    x, h = case.array("x", (1, inputs), case.regime()), case.array("h", (1, hidden), "uniform")
    x_b, params_b = case.convert(x), case.convert(params)
    jacobian = case.jacobian(lambda backend, h_prev: backend.rnn_cell(x_b, h_prev, params_b), h)
    h_next = oracles.rnn_cell(x, h, params).reshape(-1)
    expected = (1.0 - h_next**2)[:, None] * params["w_hh"].astype(np.float64)
    case.close("dh_t/dh_(t-1) against diag(1 - h_t^2) W_hh", jacobian, expected)


@checker("rnn_gradient_explodes", requires=("rnn_cell", "vjp"))
def rnn_gradient_explodes(case: Case) -> None:
    """``sigma_min(dh_T/dh_0) >= prod_t sigma_min(W_hh) min_i(1 - h_{t,i}^2)``, which grows like rho^T near 0.

    ``dh_T/dh_0 = prod_t diag(1 - h_t^2) W_hh`` and ``sigma_min(AB) >= sigma_min(A) sigma_min(B)``
    for square matrices, so the bound holds on every trajectory; with ``W_hh = rho Q`` (Q
    orthogonal, rho > 1), no bias and inputs and initial state of order 1e-6, the states stay
    near 0, every factor ``1 - h^2`` is near 1 and the bound is about ``rho^T``.
    """
    steps, inputs, hidden = case.size("steps", (2, 12)), case.size("input_size", (1, 3)), case.size("hidden", (1, 4))
    radius = float(case.choice("radius", [1.25, 1.5, 2.0]))
    params = _rnn_params(case, inputs, hidden, radius)
    # Near the origin (the linear regime, where the bound is about rho^T) or with order-1 inputs
    # and bias (saturating states, where the factors 1 - h^2 matter): drawn in turn.
    saturating = case.flag("saturating")
    size = 1.0 if saturating else 1e-6
    if not saturating:
        params["b"] = case.keep("b", np.zeros_like(params["b"]))
    xs = case.array("xs", (steps, 1, inputs), "uniform", scale=size)
    h0 = case.array("h0", (1, hidden), "uniform", scale=size)
    xs_b, params_b = [case.convert(x) for x in xs], case.convert(params)

    unrolled = unrolled_hidden_state(xs_b, params_b)
    jacobian = case.jacobian(unrolled, h0)
    smallest = float(np.linalg.svd(jacobian, compute_uv=False).min())
    bound, h_t = 1.0, h0
    exact = np.eye(hidden)
    for x_t in xs:
        h_t = oracles.rnn_cell(x_t, h_t, params)
        bound *= radius * float(np.min(1.0 - h_t**2))
        exact = ((1.0 - h_t.reshape(-1) ** 2)[:, None] * params["w_hh"].astype(np.float64)) @ exact
    # The Jacobian itself, prod_t diag(1 - h_t^2) W_hh, relative to its own size: a backward that
    # is right only near 0 (tanh' taken as 1, say) is caught in the saturating regime.
    case.close(f"dh_T/dh_0 after {steps} steps against prod_t diag(1 - h_t^2) W_hh "
               f"({'saturating' if saturating else 'near 0'})", jacobian, exact,
               magnitude=float(np.max(np.abs(exact))))
    tolerance = case.tolerance_for()
    allowed = bound * (1.0 - tolerance.rtol) - tolerance.atol
    case.require(
        smallest >= allowed,
        f"sigma_min(dh_T/dh_0) = {smallest:.4g} after {steps} steps is below the lower bound {bound:.4g} "
        f"(rho = {radius}): the gradient does not grow as an expanding recurrence makes it",
        error=max(bound - smallest, 0.0), tolerance=bound - allowed,
    )


# -- LSTM ----------------------------------------------------------------------------------------


@checker("lstm_gate_bounds", requires=("lstm_cell",))
def lstm_gate_bounds(case: Case) -> None:
    """The sigmoid gates lie in [0, 1], read from the cell: ``f = C'(C=1) - C'(C=0)``, ``|h'| <= |tanh C'|``.

    ``C' = f * C + i * g`` is affine in ``C``, so two calls recover ``f`` exactly and ``C'(0) = i * g``
    (``|i g| <= 1``); ``h' = o * tanh(C')`` with ``o`` in [0, 1] has the sign of ``C'`` and at most its size.
    """
    batch, inputs, hidden = case.size("batch", (1, 3)), case.size("input_size", (1, 6)), case.size("hidden", (1, 6))
    regime = case.regime()
    x, h = case.array("x", (batch, inputs), regime), case.array("h", (batch, hidden), regime)
    c = case.array("c", (batch, hidden), regime)
    params = _lstm_params(case, inputs, hidden, weight_scale=float(case.choice("weight_scale", [1.0, 10.0])))
    zeros, ones = np.zeros_like(c), np.ones_like(c)
    written = case.call("lstm_cell", x, h, zeros, params)[1].astype(np.float64)
    forget = case.call("lstm_cell", x, h, ones, params)[1].astype(np.float64) - written
    h_next, c_next = (a.astype(np.float64) for a in case.call("lstm_cell", x, h, c, params))
    atol = case.tolerance_for().atol
    outside = max(float(np.max(-forget)), float(np.max(forget - 1.0)), float(np.max(np.abs(written) - 1.0)))
    case.require(outside <= atol, f"forget gate C'(1) - C'(0) or i*g = C'(0) leaves its range by {outside:.3g} "
                 "(a sigmoid gate lies in [0, 1], tanh candidate in [-1, 1])", error=max(outside, 0.0), tolerance=atol)
    squashed = np.tanh(c_next)
    excess = float(np.max(np.abs(h_next) - np.abs(squashed)))
    wrong_sign = float(np.max(-h_next * np.sign(squashed)))
    worst = max(excess, wrong_sign)
    case.require(worst <= atol, f"h' = o * tanh(C') implies an output gate outside [0, 1] (off by {worst:.3g})",
                 error=max(worst, 0.0), tolerance=atol)
    # The input gate on its own: with the candidate block's weights zeroed and its bias at 20,
    # g = tanh(20) = 1 to working precision, so C'(0) = i, which a sigmoid keeps in [0, 1] (a tanh
    # input gate, whose |i g| <= 1 looks right above, goes negative here).
    pinned = {name: value.copy() for name, value in params.items()}
    block = slice(2 * hidden, 3 * hidden)
    pinned["w_ih"][block], pinned["w_hh"][block] = 0.0, 0.0
    pinned["b"][block] = 20.0
    input_gate = case.call("lstm_cell", x, h, zeros, pinned)[1].astype(np.float64)
    off = max(float(np.max(-input_gate)), float(np.max(input_gate - 1.0)))
    case.require(off <= atol, f"with the candidate pinned at tanh(20) = 1, C'(0) = i leaves [0, 1] by {off:.3g}: "
                 "the input gate is not a sigmoid", error=max(off, 0.0), tolerance=atol)


@checker("lstm_forget_bias_retention", requires=("lstm_cell", "vjp"))
def lstm_forget_bias_retention(case: Case) -> None:
    """Raising the forget-gate bias by 1 strictly raises every diagonal entry of ``dC_T/dC_0``.

    With no recurrent weights the cell state is the only path from ``C_0`` to ``C_T`` and
    ``dC_T/dC_0 = prod_t diag(sigmoid(a_t + b_f))``, increasing in ``b_f`` entry by entry.
    """
    steps, inputs, hidden = case.size("steps", (3, 15)), case.size("input_size", (1, 3)), case.size("hidden", (1, 3))
    low = float(case.choice("forget_bias", [0.0, 1.0]))
    params = _lstm_params(case, inputs, hidden)
    params["w_hh"] = case.keep("w_hh", np.zeros_like(params["w_hh"]))
    xs = case.array("xs", (steps, 1, inputs), "uniform")
    h0, c0 = case.array("h0", (1, hidden), "uniform"), case.array("c0", (1, hidden), "uniform")
    retention = {}
    for bias in (low, low + 1.0):
        shifted = {**params, "b": params["b"].copy()}
        shifted["b"][hidden : 2 * hidden] += np.asarray(bias, dtype=shifted["b"].dtype)
        xs_b, h0_b, params_b = [case.convert(x) for x in xs], case.convert(h0), case.convert(shifted)
        unrolled = unrolled_cell_state(xs_b, h0_b, params_b)
        diagonal = np.diag(case.jacobian(unrolled, c0))
        expected = np.ones(hidden)
        for x_t in xs:
            expected = expected * oracles.lstm_gates(x_t, h0, shifted)["f"].reshape(-1)
        case.close(f"diagonal of dC_T/dC_0 at forget bias {bias:g} against prod_t f_t", diagonal, expected)
        retention[bias] = (diagonal, expected)
    gain = retention[low + 1.0][0] - retention[low][0]
    # Where the exact gain exceeds rounding, the backend's gain must be positive.
    resolvable = retention[low + 1.0][1] - retention[low][1] > 10 * case.tolerance_for().atol
    case.require(bool(np.all(gain[resolvable] > 0)),
                 f"raising the forget bias from {low:g} to {low + 1:g} did not raise dC_T/dC_0 on every unit "
                 f"over {steps} steps (change {np.round(gain, 6).tolist()})")


def peephole_oracle(x: np.ndarray, h: np.ndarray, c: np.ndarray,
                    params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Gers et al.'s peephole LSTM in float64: i and f see C_{t-1}, o sees C_t."""
    c = np.asarray(c, np.float64)
    pre = oracles.lstm_preactivations(x, h, params)
    peep = {name: params[f"p_{name}"].astype(np.float64) for name in ("i", "f", "o")}
    input_gate = oracles.sigmoid(pre["i"] + peep["i"] * c)
    forget_gate = oracles.sigmoid(pre["f"] + peep["f"] * c)
    c_next = forget_gate * c + input_gate * np.tanh(pre["g"])
    return oracles.sigmoid(pre["o"] + peep["o"] * c_next) * np.tanh(c_next), c_next


@checker("peephole_lstm_matches_equations", requires=("peephole_lstm_cell",))
def peephole_lstm_matches_equations(case: Case) -> None:
    """Peephole LSTM: the gates also read the cell state (i, f: ``C_{t-1}``; o: ``C_t``)."""
    batch, inputs, hidden = case.size("batch", (1, 3)), case.size("input_size", (1, 6)), case.size("hidden", (1, 6))
    regime = case.regime()
    x, h, c = (case.array(name, (batch, size), regime) for name, size in (("x", inputs), ("h", hidden), ("c", hidden)))
    params = _lstm_params(case, inputs, hidden)
    for name in ("p_i", "p_f", "p_o"):
        params[name] = case.array(name, (hidden,), "normal")
    h_next, c_next = case.call("peephole_lstm_cell", x, h, c, params)
    expected_h, expected_c = peephole_oracle(x, h, c, params)
    case.close("cell state C_t", c_next, expected_c)
    case.close("hidden state h_t", h_next, expected_h)


# -- GRU -----------------------------------------------------------------------------------------


def gru_params(case: Case, inputs: int, hidden: int) -> dict[str, np.ndarray]:
    bound = 1.0 / np.sqrt(hidden)
    return {
        "w_ih": case.array("w_ih", (3 * hidden, inputs), "uniform", scale=bound),
        "w_hh": case.array("w_hh", (3 * hidden, hidden), "uniform", scale=bound),
        "b_ih": case.array("b_ih", (3 * hidden,), "uniform", scale=bound),
        "b_hh": case.array("b_hh", (3 * hidden,), "uniform", scale=bound),
    }


def gru_oracle(x: np.ndarray, h: np.ndarray, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The GRU of the protocol in float64: ``r, z`` gates, candidate ``n`` and the new state ``h'``."""
    x, h = np.asarray(x, np.float64), np.asarray(h, np.float64)
    hidden = h.shape[-1]
    parts = {}
    for index, name in enumerate(("r", "z", "n")):
        rows = slice(index * hidden, (index + 1) * hidden)
        parts[name] = (x @ params["w_ih"][rows].T.astype(np.float64) + params["b_ih"][rows].astype(np.float64),
                       h @ params["w_hh"][rows].T.astype(np.float64) + params["b_hh"][rows].astype(np.float64))
    reset = oracles.sigmoid(parts["r"][0] + parts["r"][1])
    update = oracles.sigmoid(parts["z"][0] + parts["z"][1])
    candidate = np.tanh(parts["n"][0] + reset * parts["n"][1])
    return {"r": reset, "z": update, "n": candidate, "h": (1.0 - update) * candidate + update * h}


def _gru_draw(case: Case) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    batch, inputs, hidden = case.size("batch", (1, 3)), case.size("input_size", (1, 6)), case.size("hidden", (1, 6))
    regime = case.regime()
    x, h = case.array("x", (batch, inputs), regime), case.array("h", (batch, hidden), regime)
    return x, h, gru_params(case, inputs, hidden)


@checker("gru_cell_matches_equations", requires=("gru_cell",))
def gru_cell_matches_equations(case: Case) -> None:
    """``h' = (1 - z) * n + z * h`` with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``."""
    x, h, params = _gru_draw(case)
    case.close("h'", case.call("gru_cell", x, h, params), gru_oracle(x, h, params)["h"])


@checker("gru_convex_combination", requires=("gru_cell",))
def gru_convex_combination(case: Case) -> None:
    """Each unit of ``h'`` lies between the same unit of ``h`` and of the candidate ``n``."""
    x, h, params = _gru_draw(case)
    h_next = case.call("gru_cell", x, h, params).astype(np.float64)
    candidate = gru_oracle(x, h, params)["n"]
    low, high = np.minimum(h, candidate), np.maximum(h, candidate)
    tolerance = case.tolerance_for()
    slack = tolerance.atol + tolerance.rtol * np.maximum(np.abs(low), np.abs(high))
    outside = float(np.max(np.maximum(low - h_next, h_next - high) - slack))
    case.require(outside <= 0.0, f"h' leaves the interval between h and the candidate n by {outside:.3g} beyond "
                 "tolerance: the update is not a convex combination", error=max(outside, 0.0), tolerance=float(np.min(slack)))


@checker("gru_update_gate_jacobian", requires=("gru_cell", "vjp"))
def gru_update_gate_jacobian(case: Case) -> None:
    """With no recurrent weights, ``dh'/dh = diag(z)``: the update gate's identity path."""
    inputs, hidden = case.size("input_size", (1, 4)), case.size("hidden", (1, 5))
    x = case.array("x", (1, inputs), case.regime())
    h = case.array("h", (1, hidden), "uniform")
    params = gru_params(case, inputs, hidden)
    params["w_hh"] = case.keep("w_hh", np.zeros_like(params["w_hh"]))
    x_b, params_b = case.convert(x), case.convert(params)
    jacobian = case.jacobian(lambda backend, h_prev: backend.gru_cell(x_b, h_prev, params_b), h)
    update = gru_oracle(x, h, params)["z"].reshape(-1)
    leaked = float(np.max(np.abs(jacobian[~np.eye(hidden, dtype=bool)]), initial=0.0))
    case.require(leaked == 0.0, f"dh'/dh has off-diagonal entry {leaked:.3g} with no recurrent weights (must be 0)",
                 error=leaked, tolerance=0.0)
    case.close("diagonal of dh'/dh against z", np.diag(jacobian), update)


# -- whole layers --------------------------------------------------------------------------------


def _sequence_draw(case: Case, padded: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    batch, steps = case.size("batch", (1, 3)), case.size("steps", (1, 8))
    inputs, hidden = case.size("input_size", (1, 5)), case.size("hidden", (1, 5))
    regime = case.regime()
    xs = case.array("xs", (batch, steps, inputs), regime)
    h0, c0 = case.array("h0", (batch, hidden), regime), case.array("c0", (batch, hidden), regime)
    lengths = np.full(batch, steps)
    if padded:
        lengths = case.keep("lengths", case.rng.integers(1, steps + 1, batch))
        # Padding holds garbage: a layer that reads it shows it.
        pad = np.arange(steps)[None, :, None] >= lengths[:, None, None]
        xs = case.keep("xs", np.where(pad, np.asarray(1e3, xs.dtype), xs))
    return xs, h0, c0, _lstm_params(case, inputs, hidden), lengths


def lstm_layer_oracle(xs: np.ndarray, h0: np.ndarray, c0: np.ndarray, params: dict[str, np.ndarray],
                      lengths: np.ndarray, reverse: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cell applied step by step to each sequence's true steps: ``(outputs, h_n, c_n)`` in float64."""
    batch, steps, _ = xs.shape
    outputs = np.zeros((batch, steps, h0.shape[-1]))
    h_n, c_n = np.array(h0, np.float64), np.array(c0, np.float64)
    for b in range(batch):
        h, c = h_n[b : b + 1], c_n[b : b + 1]
        order = range(int(lengths[b]) - 1, -1, -1) if reverse else range(int(lengths[b]))
        for t in order:
            h, c = oracles.lstm_cell(xs[b : b + 1, t], h, c, params)
            outputs[b, t] = h[0]
        h_n[b], c_n[b] = h[0], c[0]
    return outputs, h_n, c_n


def _compare_layer(case: Case, what: str, actual: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> None:
    for name, got, want in zip(("outputs", "h_n", "c_n"), actual, expected, strict=True):
        case.close(f"{what}: {name}", got, want)


@checker("lstm_sequence_equals_unrolled_cells", requires=("lstm_sequence",))
def lstm_sequence_equals_unrolled_cells(case: Case) -> None:
    """A layer over ``T`` steps equals the same cell, with the same weights, applied ``T`` times."""
    xs, h0, c0, params, lengths = _sequence_draw(case, padded=False)
    reverse = case.flag("reverse")
    actual = case.call("lstm_sequence", xs, h0, c0, params, reverse=reverse)
    _compare_layer(case, "layer against the cell unrolled step by step", actual,
                   lstm_layer_oracle(xs, h0, c0, params, lengths, reverse))


@checker("lstm_sequence_padding", requires=("lstm_sequence",))
def lstm_sequence_padding(case: Case) -> None:
    """With ``lengths``, padding is never read: outputs at real steps and the final states are those
    of the unpadded sequences. Outputs at padded steps are implementation-defined (zero in torch's
    ``pad_packed_sequence``, left as computed in flax): they are not judged, only noted."""
    xs, h0, c0, params, lengths = _sequence_draw(case, padded=True)
    reverse = case.flag("reverse")
    outputs, h_n, c_n = case.call("lstm_sequence", xs, h0, c0, params, lengths=lengths, reverse=reverse)
    expected = lstm_layer_oracle(xs, h0, c0, params, lengths, reverse)
    padded = np.arange(xs.shape[1])[None, :] >= np.asarray(lengths)[:, None]
    if padded.any():
        zero = bool(np.all(outputs[padded] == 0))
        case.note(f"outputs at padded steps are {'zero' if zero else 'not zero (left as computed or other)'}")
    real = np.where(padded[..., None], expected[0], outputs.astype(np.float64))
    _compare_layer(case, "padded layer against the unpadded sequences (outputs at real steps)",
                   (real, h_n, c_n), expected)


def reverse_within_lengths(xs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each sequence's true steps in reverse order; padding stays where it is."""
    flipped = xs.copy()
    for b, length in enumerate(lengths):
        flipped[b, :length] = xs[b, :length][::-1]
    return flipped


@checker("bidirectional_reversal_swaps_directions", requires=("lstm_sequence",))
def bidirectional_reversal_swaps_directions(case: Case) -> None:
    """Reversing each input sequence swaps the two directions of a bidirectional layer.

    For a reversal ``R`` within the true lengths: ``forward_P(R xs) = R backward_P(xs)`` and
    ``backward_P(R xs) = R forward_P(xs)`` with the same final states; so a bidirectional layer
    with direction weights ``(P1, P2)`` maps ``R xs`` to ``R`` of its output on ``xs`` with the
    halves swapped, when the weights are swapped too. A relation between backend calls only.
    """
    xs, h0, c0, params, lengths = _sequence_draw(case, padded=case.flag("padded"))
    other = {name: case.array(f"{name}_reverse", value.shape, "uniform", scale=1.0 / np.sqrt(h0.shape[-1]))
             for name, value in params.items()}
    flipped = reverse_within_lengths(xs, lengths)
    for direction, weights in (("forward", params), ("backward", other)):
        reverse = direction == "backward"
        on_flipped = case.call("lstm_sequence", flipped, h0, c0, weights, lengths=lengths, reverse=not reverse)
        on_original = case.call("lstm_sequence", xs, h0, c0, weights, lengths=lengths, reverse=reverse)
        mirrored = reverse_within_lengths(on_original[0].astype(np.float64), lengths)
        # Outputs at padded steps are implementation-defined: judge real steps only.
        padded = (np.arange(xs.shape[1])[None, :] >= np.asarray(lengths)[:, None])[..., None]
        on_flipped = (np.where(padded, mirrored, on_flipped[0].astype(np.float64)), *on_flipped[1:])
        what = f"{'backward' if not reverse else 'forward'} direction on the reversed input against the reversed {direction}"
        case.close(f"{what} outputs", on_flipped[0], mirrored)
        case.close(f"{what} h_n", on_flipped[1], on_original[1].astype(np.float64))
        case.close(f"{what} c_n", on_flipped[2], on_original[2].astype(np.float64))


@checker("stacked_layers_compose", requires=("lstm_sequence",))
def stacked_layers_compose(case: Case) -> None:
    """In a stack, each layer's per-step outputs (its hidden states) are the next layer's inputs.

    Only real steps are judged: outputs at padded steps are implementation-defined (see
    ``lstm_sequence_padding``), and the next layer never reads them."""
    layers = case.size("layers", (2, 3))
    xs, h0, c0, params, lengths = _sequence_draw(case, padded=case.flag("padded"))
    hidden = h0.shape[-1]
    stack = [params] + [_lstm_params_named(case, hidden, hidden, f"layer{index}") for index in range(1, layers)]
    actual, expected = xs, xs.astype(np.float64)
    for weights in stack:
        actual = case.call("lstm_sequence", actual, h0, c0, weights, lengths=lengths)[0]
        expected = lstm_layer_oracle(expected, h0, c0, weights, lengths)[0]
    padded = (np.arange(xs.shape[1])[None, :] >= np.asarray(lengths)[:, None])[..., None]
    case.close(f"outputs of a {layers}-layer stack against stacked cells (real steps)",
               np.where(padded, expected, np.asarray(actual, np.float64)), expected)


def _lstm_params_named(case: Case, inputs: int, hidden: int, prefix: str) -> dict[str, np.ndarray]:
    bound = 1.0 / np.sqrt(hidden)
    return {
        "w_ih": case.array(f"{prefix}.w_ih", (4 * hidden, inputs), "uniform", scale=bound),
        "w_hh": case.array(f"{prefix}.w_hh", (4 * hidden, hidden), "uniform", scale=bound),
        "b": case.array(f"{prefix}.b", (4 * hidden,), "uniform", scale=bound),
    }
