"""Checkers for attention beyond sequences: ViT patch embeddings and graph attention (GAT)."""

from __future__ import annotations

import itertools

import numpy as np

from nnspec.case import Case
from nnspec.registry import checker

# -- ViT patches ---------------------------------------------------------------------------------


def _patch_draw(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    batch, channels, patch = case.size("batch", (1, 2)), case.size("channels", (1, 3)), case.size("patch", (1, 4))
    rows, cols, embed = case.size("q_len", (1, 3)), case.size("k_len", (1, 3)), case.size("dim", (1, 6))
    regime = case.regime()
    images = case.array("images", (batch, channels, rows * patch, cols * patch), regime)
    weight = case.array("weight", (embed, channels, patch, patch), "normal", scale=1.0 / np.sqrt(channels * patch**2))
    bias = case.array("bias", (embed,), "normal")
    return images, weight, bias, patch, rows, cols


def strided_convolution(images: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The convolution with kernel and stride ``P``, by its definition, tokens numbered row by row."""
    images, weight, bias = (np.asarray(a, np.float64) for a in (images, weight, bias))
    batch, _, height, width = images.shape
    patch = weight.shape[-1]
    rows, cols = height // patch, width // patch
    out = np.empty((batch, rows * cols, weight.shape[0]))
    for b, r, c in itertools.product(range(batch), range(rows), range(cols)):
        window = images[b, :, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch]
        out[b, r * cols + c] = np.einsum("echw,chw->e", weight, window) + bias
    return out


@checker("patch_embed_is_strided_convolution", requires=("patch_embed",))
def patch_embed_is_strided_convolution(case: Case) -> None:
    """Flattening each ``P x P`` patch and projecting it equals a convolution with kernel and stride ``P``."""
    images, weight, bias, *_ = _patch_draw(case)
    magnitude = float(np.max(np.abs(images))) * float(np.sum(np.abs(weight[0])))
    case.close("patch embeddings", case.call("patch_embed", images, weight, bias),
               strided_convolution(images, weight, bias), magnitude=magnitude)


@checker("patch_embed_translation_equivariance", requires=("patch_embed",))
def patch_embed_translation_equivariance(case: Case) -> None:
    """Rolling the image by whole patches rolls the grid of patch tokens by the same amount."""
    images, weight, bias, patch, rows, cols = _patch_draw(case)
    down, right = case.size("shift_rows", (0, rows - 1)), case.size("shift_cols", (0, cols - 1))
    shifted = np.roll(images, (down * patch, right * patch), axis=(2, 3))
    tokens = case.call("patch_embed", images, weight, bias).astype(np.float64)
    grid = tokens.reshape(tokens.shape[0], rows, cols, -1)
    expected = np.roll(grid, (down, right), axis=(1, 2)).reshape(tokens.shape)
    magnitude = float(np.max(np.abs(images))) * float(np.sum(np.abs(weight[0])))
    case.close(f"tokens of the image rolled by ({down}, {right}) patches", case.call("patch_embed", shifted, weight, bias),
               expected, magnitude=magnitude)


# -- graph attention -----------------------------------------------------------------------------


def _graph_draw(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    nodes, features, width = case.size("nodes", (1, 8)), case.size("dim", (1, 6)), case.size("hidden", (1, 6))
    regime = case.regime()
    h = case.array("h", (nodes, features), regime)
    density = float(case.choice("density", [0.2, 0.5, 0.9]))
    adjacency = case.rng.random((nodes, nodes)) < density
    np.fill_diagonal(adjacency, True)  # GAT's self-loops
    case.keep("adjacency", adjacency)
    w = case.array("w", (width, features), "normal", scale=1.0 / np.sqrt(features))
    a = case.array("a", (2 * width,), "normal")
    return h, adjacency, w, a


def gat_oracle(h: np.ndarray, adjacency: np.ndarray, w: np.ndarray, a: np.ndarray,
               negative_slope: float = 0.2) -> np.ndarray:
    """``alpha_ij = softmax_{j in N(i)} LeakyReLU(a^T [W h_i || W h_j])``, 0 off the neighbourhood."""
    h, w, a = (np.asarray(x, np.float64) for x in (h, w, a))
    projected = h @ w.T
    nodes = h.shape[0]
    alpha = np.zeros((nodes, nodes))
    for i in range(nodes):
        neighbours = np.flatnonzero(adjacency[i])
        scores = np.array([a @ np.concatenate([projected[i], projected[j]]) for j in neighbours])
        scores = np.where(scores > 0, scores, negative_slope * scores)
        alpha[i, neighbours] = np.exp(scores - scores.max()) / np.sum(np.exp(scores - scores.max()))
    return alpha


@checker("gat_matches_formula", requires=("gat_attention",))
def gat_matches_formula(case: Case) -> None:
    """GAT coefficients equal the neighbourhood softmax of ``LeakyReLU(a^T [W h_i || W h_j])``."""
    h, adjacency, w, a = _graph_draw(case)
    case.close("GAT coefficients", case.call("gat_attention", h, adjacency, w, a), gat_oracle(h, adjacency, w, a))


@checker("gat_softmax_over_neighbours", requires=("gat_attention",))
def gat_softmax_over_neighbours(case: Case) -> None:
    """Each node's coefficients are a distribution over its neighbours: exactly 0 elsewhere, summing to 1."""
    h, adjacency, w, a = _graph_draw(case)
    alpha = case.call("gat_attention", h, adjacency, w, a).astype(np.float64)
    leaked = float(np.max(np.abs(alpha[~adjacency]), initial=0.0))
    case.require(leaked == 0.0, f"a non-neighbour has coefficient {leaked:.3g} (must be exactly 0)",
                 error=leaked, tolerance=0.0)
    negative = float(np.max(-alpha, initial=0.0))
    case.require(negative <= 0.0, f"a coefficient is negative ({-negative:.3g})")
    case.close("row sums of the coefficients", alpha.sum(axis=-1), np.ones(alpha.shape[0]))


@checker("gat_relabelling_equivariance", requires=("gat_attention",))
def gat_relabelling_equivariance(case: Case) -> None:
    """Relabelling the nodes by ``P`` relabels the coefficients: ``alpha(Ph, P A P^T) = P alpha P^T``."""
    h, adjacency, w, a = _graph_draw(case)
    order = case.keep("permutation", case.rng.permutation(h.shape[0]))
    alpha = case.call("gat_attention", h, adjacency, w, a).astype(np.float64)
    relabelled = case.call("gat_attention", h[order], adjacency[np.ix_(order, order)], w, a)
    case.close("coefficients of the relabelled graph", relabelled, alpha[np.ix_(order, order)])
