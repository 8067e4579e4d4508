"""nnspec.backends.conventions, checked against the reference backend (fast)."""

from __future__ import annotations

import doctest
import importlib.util

import numpy as np
import pytest

from nnspec.backends import conventions
from nnspec.backends.numpy import NumpyBackend

REFERENCE = NumpyBackend()
RNG = np.random.default_rng(11)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_docstring_examples_hold() -> None:
    failures, tried = doctest.testmod(conventions)
    assert tried >= 8 and failures == 0


def test_layout_round_trip_and_attention_in_the_other_layout() -> None:
    q, k, v = (RNG.normal(size=(2, 3, 5, 4)) for _ in range(3))
    assert np.array_equal(conventions.bshd_to_bhsd(conventions.bhsd_to_bshd(q)), q)

    # An attention written for (B, S, H, D) inputs, wrapped with the helpers, is the reference.
    def attention_bshd(q_: np.ndarray, k_: np.ndarray, v_: np.ndarray) -> np.ndarray:
        logits = np.einsum("blhd,bshd->bhls", q_, k_) / np.sqrt(q_.shape[-1])
        return np.einsum("bhls,bshd->blhd", REFERENCE.softmax(logits), v_)

    wrapped = conventions.bshd_to_bhsd(attention_bshd(*(conventions.bhsd_to_bshd(x) for x in (q, k, v))))
    np.testing.assert_allclose(wrapped, REFERENCE.attention(q, k, v), rtol=1e-12, atol=1e-12)


def test_masks_in_every_form_give_the_reference_attention() -> None:
    q, k, v = (RNG.normal(size=(1, 2, 4, 3)) for _ in range(3))
    allowed = RNG.random((1, 1, 4, 4)) < 0.6
    allowed[..., 0] = True  # no fully masked row
    expected = REFERENCE.attention(q, k, v, mask=allowed)
    bias = conventions.boolean_to_additive(allowed, dtype=np.float64)
    assert set(np.unique(bias)) <= {0.0, -np.inf}
    np.testing.assert_allclose(REFERENCE.attention_with_bias(q, k, v, bias), expected, rtol=1e-12)
    assert np.array_equal(conventions.additive_to_boolean(bias), allowed)
    inverted = conventions.invert_mask(allowed)  # True = masked, as torch.nn.MultiheadAttention reads it
    np.testing.assert_allclose(REFERENCE.attention(q, k, v, mask=conventions.invert_mask(inverted)), expected)
    finite = conventions.boolean_to_additive(allowed, dtype=np.float64, masked=np.finfo(np.float64).min)
    assert np.array_equal(conventions.additive_to_boolean(finite, np.finfo(np.float64).min), allowed)


def test_keras_lstm_and_gru_orders_convert_to_the_reference_cells() -> None:
    batch, inputs, hidden = 2, 3, 4
    x, h, c = (
        RNG.normal(size=(batch, inputs)),
        RNG.normal(size=(batch, hidden)),
        RNG.normal(size=(batch, hidden)),
    )
    # An LSTM cell written in the i, c, f, o order (TensorFlow's LSTMBlockCell).
    w_ih, w_hh, b = (
        RNG.normal(size=(4 * hidden, inputs)),
        RNG.normal(size=(4 * hidden, hidden)),
        RNG.normal(size=4 * hidden),
    )
    theirs = {
        name: conventions.permute_gates(value, "ifgo", "icfo")
        for name, value in {"w_ih": w_ih, "w_hh": w_hh, "b": b}.items()
    }
    gates = x @ theirs["w_ih"].T + h @ theirs["w_hh"].T + theirs["b"]
    i, g, f, o = np.split(gates, 4, axis=-1)
    c_next = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h_next = _sigmoid(o) * np.tanh(c_next)
    expected_h, expected_c = REFERENCE.lstm_cell(x, h, c, {"w_ih": w_ih, "w_hh": w_hh, "b": b})
    np.testing.assert_allclose(h_next, expected_h, rtol=1e-12)
    np.testing.assert_allclose(c_next, expected_c, rtol=1e-12)
    # A keras GRU (z, r, h blocks; reset_after) with its (I, 3N) kernel layout: permute along the last axis.
    params = {
        "w_ih": RNG.normal(size=(3 * hidden, inputs)),
        "w_hh": RNG.normal(size=(3 * hidden, hidden)),
        "b_ih": RNG.normal(size=3 * hidden),
        "b_hh": RNG.normal(size=3 * hidden),
    }
    kernel = conventions.permute_gates(params["w_ih"].T, "rzn", "zrh", axis=-1)
    recurrent = conventions.permute_gates(params["w_hh"].T, "rzn", "zrh", axis=-1)
    b_input, b_recurrent = (
        conventions.permute_gates(params[name], "rzn", "zrh") for name in ("b_ih", "b_hh")
    )
    x_z, x_r, x_h = np.split(x @ kernel + b_input, 3, axis=-1)
    h_z, h_r, h_h = np.split(h @ recurrent + b_recurrent, 3, axis=-1)
    z, r = _sigmoid(x_z + h_z), _sigmoid(x_r + h_r)
    keras_h = z * h + (1 - z) * np.tanh(x_h + r * h_h)
    np.testing.assert_allclose(keras_h, REFERENCE.gru_cell(x, h, params), rtol=1e-12)
    # And back: the round trip is the identity.
    assert np.array_equal(conventions.permute_gates(kernel, "zrh", "rzn", axis=1), params["w_ih"].T)


def test_gate_orders_are_checked() -> None:
    assert conventions.gate_permutation("iofc", "ifgo") == [0, 2, 3, 1]
    with pytest.raises(ValueError, match=r"same distinct gates\. Received: 'ifgo' and 'rzn'"):
        conventions.gate_permutation("ifgo", "rzn")
    with pytest.raises(ValueError, match="does not split into 4 gate blocks"):
        conventions.permute_gates(np.zeros(6), "ifgo", "icfo")


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_the_helpers_keep_torch_tensors_torch_tensors() -> None:
    import torch

    mask = torch.tensor([[True, False, True]])
    bias = conventions.boolean_to_additive(mask, dtype=torch.float64)
    assert isinstance(bias, torch.Tensor) and bias.dtype == torch.float64
    assert bias.tolist() == [[0.0, -np.inf, 0.0]]
    assert torch.equal(conventions.additive_to_boolean(bias), mask)
    assert torch.equal(conventions.invert_mask(mask), ~mask)
    weights = torch.arange(6.0)
    assert conventions.permute_gates(weights, "zrh", "rzn").tolist() == [2.0, 3.0, 0.0, 1.0, 4.0, 5.0]
    assert conventions.bshd_to_bhsd(torch.zeros(2, 7, 4, 16)).shape == (2, 4, 7, 16)
