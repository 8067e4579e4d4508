"""Checkers for residual connections and the placement of layer normalisation (pre-LN, post-LN).

Every block is composed inside the checker from the backend's primitives, and every gradient is
taken through the backend's own ``vjp``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnspec.case import Case
from nnspec.checkers.layers import (
    LAYER_PRIMITIVES,
    attention_params,
    feed_forward_oracle,
    feed_forward_params,
    heads_and_width,
    multi_head_attention_oracle,
    norm_params,
)
from nnspec.checkers.normalisation import layer_norm_oracle
from nnspec.registry import Param, checker


def _sublayer(case: Case, width: int, heads: int) -> tuple[str, dict[str, np.ndarray]]:
    kind = str(case.choice("sublayer", list(case.params.get("sublayers", ["feed_forward", "attention"]))))
    if kind == "feed_forward":
        return kind, feed_forward_params(case, "ffn", width, 4 * width)
    return kind, attention_params(case, "attention", width)


def _apply(backend: Any, kind: str, x: Any, params: Any, heads: int) -> Any:
    if kind == "feed_forward":
        return backend.feed_forward(x, params)
    return backend.multi_head_attention(x, x, params, heads)


def _apply_oracle(kind: str, x: np.ndarray, params: dict[str, np.ndarray], heads: int) -> np.ndarray:
    if kind == "feed_forward":
        return feed_forward_oracle(x, params)
    return multi_head_attention_oracle(x, x, params, heads)


@checker("residual_jacobian_identity_plus_sublayer", requires=("feed_forward", "multi_head_attention", "vjp"), params={"sublayers": Param(list, default=["feed_forward", "attention"], choices=("feed_forward", "attention"))})
def residual_jacobian_identity_plus_sublayer(case: Case) -> None:
    """``d(x + f(x))/dx = I + df/dx``, both Jacobians taken through the backend's ``vjp``."""
    heads, width = heads_and_width(case, min_width=3)
    x = case.array("x", (1, case.size("q_len", (1, 3)), width), case.regime())
    kind, params = _sublayer(case, width, heads)
    params_b = case.convert(params)
    with_residual = case.jacobian(lambda backend, x_: x_ + _apply(backend, kind, x_, params_b, heads), x)
    sublayer = case.jacobian(lambda backend, x_: _apply(backend, kind, x_, params_b, heads), x)
    case.close(f"d(x + {kind}(x))/dx - d{kind}(x)/dx against the identity", with_residual - sublayer,
               np.eye(x.size), magnitude=float(np.max(np.abs(sublayer), initial=0.0)))


def _block(backend: Any, order: str, kind: str, x: Any, params: Any, norm: Any, heads: int) -> Any:
    if order == "pre":
        return x + _apply(backend, kind, backend.layer_norm(x, *norm), params, heads)
    return backend.layer_norm(x + _apply(backend, kind, x, params, heads), *norm)


def _block_oracle(order: str, kind: str, x: np.ndarray, params: dict[str, np.ndarray],
                  norm: tuple[np.ndarray, np.ndarray], heads: int) -> np.ndarray:
    if order == "pre":
        return np.asarray(x, np.float64) + _apply_oracle(kind, layer_norm_oracle(x, *norm), params, heads)
    return layer_norm_oracle(np.asarray(x, np.float64) + _apply_oracle(kind, x, params, heads), *norm)


@checker("residual_block_matches_oracle", requires=LAYER_PRIMITIVES, params={"order": Param(str, default="pre", choices=("pre", "post")), "sublayers": Param(list, default=["feed_forward", "attention"], choices=("feed_forward", "attention"))})
def residual_block_matches_oracle(case: Case) -> None:
    """Pre-LN ``x + f(LN(x))`` or post-LN ``LN(x + f(x))`` (``params.order``) against float64."""
    order = str(case.params.get("order", "pre"))
    heads, width = heads_and_width(case, min_width=3)
    x = case.array("x", (case.size("batch", (1, 2)), case.size("q_len", (1, 8)), width), case.regime())
    kind, params = _sublayer(case, width, heads)
    norm = norm_params(case, "norm", width)
    out = _block(case.backend, order, kind, case.convert(x), case.convert(params), case.convert(norm), heads)
    case.close(f"{order}-LN block around {kind}", np.asarray(case.backend.to_numpy(out)),
               _block_oracle(order, kind, x, params, norm, heads),
               magnitude=float(np.max(np.abs(x.astype(np.float64)), initial=0.0)))


@checker("residual_identity_path_through_depth", requires=LAYER_PRIMITIVES + ("vjp",))
def residual_identity_path_through_depth(case: Case) -> None:
    """With every sublayer's output projection zero, a pre-LN stack of any depth is the identity, so
    the gradient reaches the input unchanged; the post-LN stack of the same sublayers is a chain of
    layer norms, whose gradient has zero sum over each token's features (the identity path is gone).

    Each layer has an attention and a feed-forward sublayer, each with its own layer norm; the
    sublayers' other weights are drawn at a standard initialisation.
    """
    heads, width = heads_and_width(case, min_width=3)
    depth = case.size("layers", (1, 6))
    x = case.array("x", (1, case.size("q_len", (1, 3)), width), case.regime())
    cotangent = case.array("cotangent", x.shape, "normal")
    sublayers = []
    for index in range(depth):
        attention = attention_params(case, f"attention_{index}", width)
        ffn = feed_forward_params(case, f"ffn_{index}", width, 4 * width)
        attention["w_o"], attention["b_o"] = np.zeros_like(attention["w_o"]), np.zeros_like(attention["b_o"])
        ffn["w_2"], ffn["b_2"] = np.zeros_like(ffn["w_2"]), np.zeros_like(ffn["b_2"])
        for kind, params in (("attention", attention), ("feed_forward", ffn)):
            sublayers.append((kind, case.convert(params), case.convert(norm_params(case, f"norm_{index}_{kind}", width))))

    def stack(order: str) -> Any:
        def build(backend: Any, h: Any) -> Any:
            for kind, params, norm in sublayers:
                h = _block(backend, order, kind, h, params, norm, heads)
            return h
        return build

    (pre_gradient,) = case.gradient(stack("pre"), [x], cotangent)
    case.close(f"input gradient of a {depth}-layer pre-LN stack with zero sublayer outputs against the cotangent",
               pre_gradient, cotangent.astype(np.float64), magnitude=float(np.max(np.abs(cotangent))))
    (post_gradient,) = case.gradient(stack("post"), [x], cotangent)
    case.close(f"per-token sum of the input gradient of the {depth}-layer post-LN stack",
               post_gradient.sum(axis=-1), np.zeros(x.shape[:-1]),
               magnitude=float(np.sum(np.abs(post_gradient), axis=-1).max(initial=0.0)))
