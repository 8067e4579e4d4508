"""Checkers for the position-wise feed-forward network and for whole encoder and decoder layers.

Layers are composed inside the checker from the backend's own ``multi_head_attention``,
``layer_norm`` and ``feed_forward``, in the documents' post-LN arrangement ("Add & Norm" after
each sublayer). Their float64 oracles follow the documents' notation: ``FFN(x) = max(0, x W_1 +
b_1) W_2 + b_2`` and ``MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O`` with ``head_i =
Attention(Q W_i^Q, K W_i^K, V W_i^V)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume

from nnspec import oracles
from nnspec.case import Case
from nnspec.checkers.normalisation import layer_norm_oracle
from nnspec.oracles import magnitude as _magnitude
from nnspec.registry import Param, checker

Params = dict[str, np.ndarray]
LAYER_PRIMITIVES = ("multi_head_attention", "layer_norm", "feed_forward")

# -- float64 oracles --------------------------------------------------------------------------------


def feed_forward_oracle(x: np.ndarray, params: Params) -> np.ndarray:
    """``max(0, x W_1^T + b_1) W_2^T + b_2``, applied to every position with the same weights."""
    w_1, b_1, w_2, b_2 = (np.asarray(params[name], np.float64) for name in ("w_1", "b_1", "w_2", "b_2"))
    return np.maximum(np.asarray(x, np.float64) @ w_1.T + b_1, 0.0) @ w_2.T + b_2


def multi_head_attention_oracle(x_q: np.ndarray, x_kv: np.ndarray, params: Params, num_heads: int,
                                causal: bool = False) -> np.ndarray:
    """``Concat(head_1, ..., head_h) W^O + b^O``, optionally causal, in float64."""
    allowed = oracles.causal(x_q.shape[1], x_kv.shape[1]) if causal else None
    return oracles.multi_head_attention(x_q, x_kv, params, num_heads, allowed)


def encoder_layer_oracle(x: np.ndarray, p: dict[str, Any], num_heads: int) -> np.ndarray:
    h = layer_norm_oracle(x + multi_head_attention_oracle(x, x, p["attention"], num_heads), *p["norm_1"])
    return layer_norm_oracle(h + feed_forward_oracle(h, p["ffn"]), *p["norm_2"])


def decoder_layer_oracle(y: np.ndarray, memory: np.ndarray, p: dict[str, Any], num_heads: int) -> np.ndarray:
    h = layer_norm_oracle(y + multi_head_attention_oracle(y, y, p["attention"], num_heads, causal=True),
                          *p["norm_1"])
    h = layer_norm_oracle(h + multi_head_attention_oracle(h, memory, p["cross"], num_heads), *p["norm_2"])
    return layer_norm_oracle(h + feed_forward_oracle(h, p["ffn"]), *p["norm_3"])


# -- the same layers through a backend --------------------------------------------------------------


def encoder_layer(backend: Any, x: Any, p: dict[str, Any], num_heads: int) -> Any:
    """Post-LN encoder layer: ``h = LN(x + MHA(x, x))``, ``out = LN(h + FFN(h))``."""
    h = backend.layer_norm(x + backend.multi_head_attention(x, x, p["attention"], num_heads), *p["norm_1"])
    return backend.layer_norm(h + backend.feed_forward(h, p["ffn"]), *p["norm_2"])


def decoder_layer(backend: Any, y: Any, memory: Any, p: dict[str, Any], num_heads: int) -> Any:
    """Post-LN decoder layer: causal self-attention, cross-attention to ``memory``, then the FFN."""
    h = backend.layer_norm(y + backend.multi_head_attention(y, y, p["attention"], num_heads, is_causal=True),
                           *p["norm_1"])
    h = backend.layer_norm(h + backend.multi_head_attention(h, memory, p["cross"], num_heads), *p["norm_2"])
    return backend.layer_norm(h + backend.feed_forward(h, p["ffn"]), *p["norm_3"])


# -- parameters, drawn at a standard initialisation --------------------------------------------------


def linear_params(case: Case, prefix: str, rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Weight ``(rows, columns)`` and bias ``(rows,)`` uniform in ``+-1/sqrt(columns)`` (fan-in init)."""
    bound = 1.0 / np.sqrt(columns)
    return (case.array(f"{prefix}.weight", (rows, columns), "uniform", scale=bound),
            case.array(f"{prefix}.bias", (rows,), "uniform", scale=bound))


def feed_forward_params(case: Case, prefix: str, width: int, hidden: int) -> Params:
    w_1, b_1 = linear_params(case, f"{prefix}.1", hidden, width)
    w_2, b_2 = linear_params(case, f"{prefix}.2", width, hidden)
    return {"w_1": w_1, "b_1": b_1, "w_2": w_2, "b_2": b_2}


def attention_params(case: Case, prefix: str, width: int) -> Params:
    params: Params = {}
    for name in ("q", "k", "v", "o"):
        params[f"w_{name}"], params[f"b_{name}"] = linear_params(case, f"{prefix}.{name}", width, width)
    return params


def norm_params(case: Case, prefix: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Layer-norm ``gamma`` near 1 and ``beta`` near 0."""
    weight = case.array(f"{prefix}.weight", (width,), "normal", scale=0.1)
    weight = case.keep(f"{prefix}.weight", (weight + np.asarray(1.0, weight.dtype)).astype(weight.dtype))
    return weight, case.array(f"{prefix}.bias", (width,), "normal", scale=0.1)


def layer_params(case: Case, width: int, decoder: bool) -> dict[str, Any]:
    hidden = int(case.params.get("ffn_ratio", 4)) * width
    p: dict[str, Any] = {"attention": attention_params(case, "self", width),
                         "ffn": feed_forward_params(case, "ffn", width, hidden)}
    if decoder:
        p["cross"] = attention_params(case, "cross", width)
    for index in range(1, 4 if decoder else 3):
        p[f"norm_{index}"] = norm_params(case, f"norm_{index}", width)
    return p


def heads_and_width(case: Case, min_width: int = 1) -> tuple[int, int]:
    """``(H, M)`` with ``M = H * head width >= min_width``, so that the heads split ``M`` evenly."""
    heads = case.size("heads", (1, 3))
    return heads, heads * case.size("dim", (1, 4), minimum=-(-min_width // heads))


def _floor(case: Case, magnitude: float) -> float:
    """What rounding alone could change: 64 ulps of the quantities involved."""
    return 64 * case.epsilon() * max(1.0, magnitude)


# -- the position-wise feed-forward network ----------------------------------------------------------


def _ffn_case(case: Case) -> tuple[np.ndarray, Params]:
    batch, length = case.size("batch", (1, 3)), case.size("q_len", (1, 8))
    width, hidden = case.size("d_model", (1, 16)), case.size("hidden", (1, 32))
    x = case.array("x", (batch, length, width), case.regime())
    return x, feed_forward_params(case, "ffn", width, hidden)


@checker("feed_forward_matches_formula", requires=("feed_forward",))
def feed_forward_matches_formula(case: Case) -> None:
    """``feed_forward(x)`` equals ``max(0, x W_1^T + b_1) W_2^T + b_2`` in float64."""
    x, params = _ffn_case(case)
    case.close("feed-forward output", case.call("feed_forward", x, params), feed_forward_oracle(x, params),
               magnitude=_magnitude(x))


@checker("feed_forward_permutation_equivariance", requires=("feed_forward",))
def feed_forward_permutation_equivariance(case: Case) -> None:
    """The same weights act at every position: ``FFN(Px) = P FFN(x)``."""
    x, params = _ffn_case(case)
    order = case.keep("permutation", case.rng.permutation(x.shape[1]))
    out = case.call("feed_forward", x, params)
    permuted = case.call("feed_forward", x[:, order], params)
    case.close("FFN(Px) against P FFN(x)", permuted, out[:, order].astype(np.float64), magnitude=_magnitude(x))


@checker("feed_forward_token_independence", requires=("feed_forward",))
def feed_forward_token_independence(case: Case) -> None:
    """Changing one token leaves the output at every other position unchanged."""
    x, params = _ffn_case(case)
    position = case.size("position", (0, x.shape[1] - 1))
    changed = x.copy()
    changed[:, position] = case.array("new_token", changed[:, position].shape, case.regime("perturbation"), scale=5.0)
    others = np.arange(x.shape[1]) != position
    out = case.call("feed_forward", x, params)
    out_changed = case.call("feed_forward", changed, params)
    case.close(f"outputs away from the changed position {position}", out_changed[:, others],
               out[:, others].astype(np.float64), magnitude=_magnitude(x))


# -- encoder and decoder layers ----------------------------------------------------------------------


@checker("encoder_layer_matches_oracle", requires=LAYER_PRIMITIVES, params={"ffn_ratio": Param(int, default=4, minimum=1)})
def encoder_layer_matches_oracle(case: Case) -> None:
    """``LN(h + FFN(h))`` with ``h = LN(x + MHA(x, x))``, composed from the backend, against float64."""
    heads, width = heads_and_width(case, min_width=3)
    x = case.array("x", (case.size("batch", (1, 2)), case.size("q_len", (1, 8)), width), case.regime())
    p = layer_params(case, width, decoder=False)
    actual = case.call("multi_head_attention", x, x, p["attention"], heads)  # the sublayer, for a clearer cause
    case.close("self-attention sublayer", actual, multi_head_attention_oracle(x, x, p["attention"], heads),
               magnitude=_magnitude(x))
    out = encoder_layer(case.backend, case.convert(x), case.convert(p), heads)
    case.close("encoder layer", np.asarray(case.backend.to_numpy(out)), encoder_layer_oracle(x, p, heads))


@checker("decoder_layer_matches_oracle", requires=LAYER_PRIMITIVES, params={"ffn_ratio": Param(int, default=4, minimum=1)})
def decoder_layer_matches_oracle(case: Case) -> None:
    """Causal self-attention, cross-attention to the encoder output, FFN, each with Add & Norm."""
    heads, width = heads_and_width(case, min_width=3)
    batch = case.size("batch", (1, 2))
    y = case.array("y", (batch, case.size("q_len", (1, 8)), width), case.regime())
    memory = case.array("memory", (batch, case.size("k_len", (1, 8)), width), case.regime())
    p = layer_params(case, width, decoder=True)
    out = decoder_layer(case.backend, case.convert(y), case.convert(memory), case.convert(p), heads)
    case.close("decoder layer", np.asarray(case.backend.to_numpy(out)), decoder_layer_oracle(y, memory, p, heads))


def _run_encoder(case: Case, x: np.ndarray, p: dict[str, Any], heads: int) -> np.ndarray:
    out = encoder_layer(case.backend, case.convert(x), case.convert(p), heads)
    return np.asarray(case.backend.to_numpy(out), np.float64)


def _run_decoder(case: Case, y: np.ndarray, memory: np.ndarray, p: dict[str, Any], heads: int) -> np.ndarray:
    out = decoder_layer(case.backend, case.convert(y), case.convert(memory), case.convert(p), heads)
    return np.asarray(case.backend.to_numpy(out), np.float64)


@checker("encoder_layer_permutation_equivariance", requires=LAYER_PRIMITIVES, params={"ffn_ratio": Param(int, default=4, minimum=1)})
def encoder_layer_permutation_equivariance(case: Case) -> None:
    """Without positional encodings, ``Encoder(Px) = P Encoder(x)`` for any permutation ``P``."""
    heads, width = heads_and_width(case, min_width=3)
    x = case.array("x", (case.size("batch", (1, 2)), case.size("q_len", (1, 8)), width), case.regime())
    p = layer_params(case, width, decoder=False)
    order = case.keep("permutation", case.rng.permutation(x.shape[1]))
    out = _run_encoder(case, x, p, heads)
    case.close("Encoder(Px) against P Encoder(x)", _run_encoder(case, x[:, order], p, heads), out[:, order])


@checker("decoder_layer_causal", requires=LAYER_PRIMITIVES, params={"ffn_ratio": Param(int, default=4, minimum=1)})
def decoder_layer_causal(case: Case) -> None:
    """The decoder output at position ``i`` does not depend on decoder inputs after ``i``."""
    heads, width = heads_and_width(case, min_width=3)
    batch, length = case.size("batch", (1, 2)), case.size("q_len", (1, 8))
    y = case.array("y", (batch, length, width), case.regime())
    memory = case.array("memory", (batch, case.size("k_len", (1, 8)), width), case.regime())
    p = layer_params(case, width, decoder=True)
    position = min(case.size("position", (0, max(length - 2, 0))), length - 1)
    changed = y.copy()
    later = slice(position + 1, None)
    changed[:, later] = case.array("y_future", changed[:, later].shape, case.regime("perturbation"), scale=5.0)
    out = _run_decoder(case, y, memory, p, heads)
    case.close(f"decoder outputs at positions <= {position} after changing later inputs",
               _run_decoder(case, changed, memory, p, heads)[:, : position + 1], out[:, : position + 1])


@checker("decoder_cross_attention_wiring", requires=LAYER_PRIMITIVES, params={"ffn_ratio": Param(int, default=4, minimum=1)})
def decoder_cross_attention_wiring(case: Case) -> None:
    """Queries come from the decoder, keys and values from the encoder output.

    So the output has the decoder's length; permuting the encoder positions (keys with their
    values) leaves it unchanged; and changing the encoder output at one position changes the
    output at every decoder position, since every query gives every key a positive weight.
    The model width is at least 3: a layer norm over one feature outputs its bias whatever the
    input, and over two features it outputs +-gamma + beta, nearly constant in the input.
    """
    heads, width = heads_and_width(case, min_width=3)
    batch = case.size("batch", (1, 2))
    y = case.array("y", (batch, case.size("q_len", (1, 8)), width), case.regime())
    memory = case.array("memory", (batch, case.size("k_len", (1, 8)), width), case.regime())
    p = layer_params(case, width, decoder=True)
    out = _run_decoder(case, y, memory, p, heads)
    case.require(out.shape == y.shape,
                 f"expected the decoder output to have the decoder input's shape {y.shape}. Received: {out.shape}")
    order = case.keep("memory_permutation", case.rng.permutation(memory.shape[1]))
    case.close("decoder output after permuting the encoder positions", _run_decoder(case, y, memory[:, order], p, heads),
               out)
    position = case.size("memory_position", (0, memory.shape[1] - 1))
    changed = memory.copy()
    changed[:, position] = case.array("new_memory", changed[:, position].shape, case.regime("perturbation"), scale=5.0)
    floor = _floor(case, _magnitude(out))
    # Only where the float64 layer itself moves every position well past rounding is the example informative.
    expected = decoder_layer_oracle(y, changed, p, heads) - decoder_layer_oracle(y, memory, p, heads)
    assume(float(np.min(np.max(np.abs(expected), axis=-1))) > 100 * floor)
    moved = np.max(np.abs(_run_decoder(case, y, changed, p, heads) - out), axis=-1)  # (B, L)
    least = float(np.min(moved))
    case.require(
        least > floor,
        f"changing the encoder output at position {position} left a decoder position unchanged (largest change "
        f"there {least:.3g} <= {floor:.3g}): the decoder does not read the encoder output through cross-attention",
        error=floor, tolerance=max(least, 1e-300),
    )
