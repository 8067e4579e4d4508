"""Float64 oracles written from the documents' formulas, one module per family.

These are deliberately independent of ``backends/numpy.py``: they follow the documents' own
notation (one weight matrix per gate acting on ``[h_{t-1}, x_t]``, ``softmax(QK^T / sqrt(d_k)) V``
with explicit sums), so the reference backend is itself checked against something.
"""

from nnspec.oracles.attention import attention, attention_weights, causal, multi_head_attention, softmax
from nnspec.oracles.positional import sinusoidal
from nnspec.oracles.precision import attention_backward_in_precision, attention_in_precision
from nnspec.oracles.recurrent import lstm_cell, lstm_gates, lstm_preactivations, rnn_cell, sigmoid
from nnspec.oracles.scale import magnitude

__all__ = [
    "attention",
    "attention_backward_in_precision",
    "attention_in_precision",
    "attention_weights",
    "causal",
    "lstm_cell",
    "lstm_gates",
    "lstm_preactivations",
    "magnitude",
    "multi_head_attention",
    "rnn_cell",
    "sigmoid",
    "sinusoidal",
    "softmax",
]
