"""Claim checks about recurrent cells: Jacobians, bounds, gradient growth, forget-gate biases."""

from __future__ import annotations

import math

import numpy as np

from nnspec import oracles
from nnspec.claim_checks._common import _rng, _torch
from nnspec.claims import Condition, Measurement, claim_check


@claim_check("lstm_cell_state_jacobian")
def lstm_cell_state_jacobian(hidden: int = 4, input_size: int = 3, seed: int = 0) -> Measurement:
    """dC_t / dC_(t-1) through a whole step (h_(t-1) = o tanh(C_(t-1)) also feeds the gates), and with the gates held."""
    rng = _rng(seed)
    w = rng.standard_normal((4 * hidden, hidden + input_size)) / math.sqrt(hidden + input_size)
    b = rng.standard_normal(4 * hidden) * 0.5
    x, c_previous = rng.standard_normal(input_size), rng.standard_normal(hidden)
    o_previous = oracles.sigmoid(rng.standard_normal(hidden))

    def gates(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z = w @ np.concatenate([o_previous * np.tanh(c), x]) + b
        return oracles.sigmoid(z[:hidden]), oracles.sigmoid(z[hidden:2 * hidden]), np.tanh(z[2 * hidden:3 * hidden])

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
    gate = oracles.sigmoid(rng.standard_normal((samples, hidden)) * 3)
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
        i, f, o = oracles.sigmoid(z[:hidden]), oracles.sigmoid(z[hidden:2 * hidden]), oracles.sigmoid(z[3 * hidden:])
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
