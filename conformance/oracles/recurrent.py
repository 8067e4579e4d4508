"""The recurrent cells' float64 references, in the documents' notation (one weight matrix per gate on ``[h, x]``)."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def lstm_gates(x: np.ndarray, h: np.ndarray, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The documents' gates: ``f_t = sigma(W_f [h_{t-1}, x_t] + b_f)`` and likewise i, C~, o.

    The protocol's ``w_ih (4N, I)``, ``w_hh (4N, N)`` and ``b (4N,)`` hold W_i, W_f, W_c, W_o as
    consecutive row blocks; here each gate's ``W = [W_hh block | W_ih block]`` acts on ``[h, x]``.
    """
    gates = lstm_preactivations(x, h, params)
    return {"i": sigmoid(gates["i"]), "f": sigmoid(gates["f"]), "g": np.tanh(gates["g"]), "o": sigmoid(gates["o"])}


def lstm_preactivations(x: np.ndarray, h: np.ndarray, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``W_gate [h_{t-1}, x_t] + b_gate`` for the gates i, f, g (the candidate C~) and o, in float64."""
    x, h = np.asarray(x, np.float64), np.asarray(h, np.float64)
    hidden = h.shape[-1]
    joined = np.concatenate([h, x], axis=-1)
    gates = {}
    for index, name in enumerate(("i", "f", "g", "o")):
        rows = slice(index * hidden, (index + 1) * hidden)
        weight = np.concatenate([params["w_hh"][rows], params["w_ih"][rows]], axis=1).astype(np.float64)
        gates[name] = joined @ weight.T + params["b"][rows].astype(np.float64)
    return gates


def lstm_cell(x: np.ndarray, h: np.ndarray, c: np.ndarray,
              params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    gates = lstm_gates(x, h, params)
    c_next = gates["f"] * np.asarray(c, np.float64) + gates["i"] * gates["g"]
    return gates["o"] * np.tanh(c_next), c_next


def rnn_cell(x: np.ndarray, h: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """``h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)``."""
    return np.tanh(np.asarray(h, np.float64) @ params["w_hh"].T.astype(np.float64)
                   + np.asarray(x, np.float64) @ params["w_ih"].T.astype(np.float64)
                   + params["b"].astype(np.float64))
