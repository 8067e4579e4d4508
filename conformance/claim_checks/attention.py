"""Claim checks about attention as a function: symmetry, linearity, paths, visibility, clipping."""

from __future__ import annotations

import math

import numpy as np

from nnspec import oracles
from nnspec.claim_checks._common import _rng, _self_attention
from nnspec.claim_checks._counting import _elu_plus_one, _growth_cost, fit_exponent
from nnspec.claims import Condition, Measurement, claim_check


@claim_check("self_attention_permutation")
def self_attention_permutation(n: int = 6, d: int = 8, seed: int = 0) -> Measurement:
    """Permute the tokens of unmasked self-attention: do the outputs stay put (invariant) or move with them?"""
    rng = _rng(seed)
    x = rng.standard_normal((n, d))
    w_q, w_k, w_v = (rng.standard_normal((d, d)) for _ in range(3))
    order = rng.permutation(n)
    out, out_permuted = _self_attention(x, w_q, w_k, w_v), _self_attention(x[order], w_q, w_k, w_v)
    equivariance_gap = float(np.max(np.abs(out_permuted - out[order])))
    invariance_gap = float(np.max(np.abs(out_permuted - out)))
    pooled_gap = float(np.max(np.abs(out_permuted.mean(axis=0) - out.mean(axis=0))))
    return Measurement({"equivariant": equivariance_gap < 1e-9, "invariant": invariance_gap < 1e-9,
                        "equivariance_gap": equivariance_gap, "invariance_gap": invariance_gap,
                        "pooled_invariance_gap": pooled_gap},
                       f"permuting the {n} tokens permutes the outputs the same way (gap {equivariance_gap:.1e}) and "
                       f"changes them in place (gap {invariance_gap:.2f}); their mean over tokens is unchanged "
                       f"(gap {pooled_gap:.1e}).",
                       under=(Condition("of the output pooled over tokens (or one query over permuted key-value pairs)",
                                        {"invariant": pooled_gap < 1e-9}),))


@claim_check("shared_projection_symmetry")
def shared_projection_symmetry(n: int = 5, d: int = 8, seed: int = 0) -> Measurement:
    """With W_Q = W_K, is the pre-softmax score matrix symmetric, and is the softmax weight matrix?"""
    rng = _rng(seed)
    x, w = rng.standard_normal((n, d)), rng.standard_normal((d, d))
    scores = (x @ w) @ (x @ w).T / math.sqrt(d)
    weights = oracles.softmax(scores)
    scores_gap, weights_gap = float(np.max(np.abs(scores - scores.T))), float(np.max(np.abs(weights - weights.T)))
    return Measurement({"scores_symmetric": scores_gap < 1e-9 * float(np.abs(scores).max()),
                        "weights_symmetric": weights_gap < 1e-9, "scores_asymmetry": scores_gap,
                        "weights_asymmetry": weights_gap},
                       f"with one shared matrix the scores X W (X W)^T are symmetric to rounding (asymmetry "
                       f"{scores_gap:.1e}); the row-wise softmax weights are not (asymmetry {weights_gap:.2f}). The "
                       f"document calls the pre-softmax logits 'scores' elsewhere too.")


@claim_check("stacked_attention_linearity")
def stacked_attention_linearity(layers: int = 2, n: int = 6, d: int = 8, seed: int = 0) -> Measurement:
    """Is a stack of self-attention layers (no feed-forward) a linear map of its input X? And of V for fixed weights?"""
    rng = _rng(seed)
    weights = [[rng.standard_normal((d, d)) / math.sqrt(d) for _ in range(3)] for _ in range(layers)]

    def stack(x: np.ndarray) -> np.ndarray:
        for w_q, w_k, w_v in weights:
            x = _self_attention(x, w_q, w_k, w_v)
        return x

    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    additivity = float(np.max(np.abs(stack(x + y) - stack(x) - stack(y))) / np.max(np.abs(stack(x + y))))
    homogeneity = float(np.max(np.abs(stack(3 * x) - 3 * stack(x))) / np.max(np.abs(stack(3 * x))))
    fixed = oracles.softmax(rng.standard_normal((n, n)))
    v1, v2 = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    in_values = float(np.max(np.abs(fixed @ (v1 + v2) - fixed @ v1 - fixed @ v2)))
    return Measurement({"linear": additivity < 1e-9 and homogeneity < 1e-9, "additivity_error": additivity,
                        "homogeneity_error": homogeneity, "linear_in_values_for_fixed_weights": in_values},
                       f"{layers} stacked self-attention layers break additivity by {additivity:.0%} and homogeneity by "
                       f"{homogeneity:.0%} of the output: softmax(QK^T) depends on the input. Only with the weights held "
                       f"fixed is attention linear in V (error {in_values:.1e}).")


@claim_check("linear_attention")
def linear_attention(n: int = 12, d: int = 6, seed: int = 0) -> Measurement:
    """phi = elu + 1: phi(Q) phi(K)^T V equals phi(Q) (phi(K)^T V); the exponent in n of the latter's counted operations."""
    rng = _rng(seed)
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    weights = _elu_plus_one(q) @ _elu_plus_one(k).T
    quadratic = weights @ v / weights.sum(axis=1, keepdims=True)
    linear = _elu_plus_one(q) @ (_elu_plus_one(k).T @ v) / (_elu_plus_one(q) @ _elu_plus_one(k).sum(axis=0))[:, None]
    gap = float(np.max(np.abs(quadratic - linear)))
    grid = [256, 512, 1024, 2048, 4096]
    exponent, uncertainty = fit_exponent(grid, [_growth_cost("linear_attention_time", g, 32) for g in grid])
    return Measurement({"n": exponent, "same_output": gap < 1e-9, "positive_weights": bool(weights.min() > 0),
                        "max_difference": gap},
                       f"the two orders of multiplication agree to {gap:.1e}; counted operations of the right-to-left "
                       f"order grow as n^{exponent:g} (+-{uncertainty:.2g}); elu(x) + 1 > 0 keeps every weight positive.",
                       tolerance={"n": uncertainty})


@claim_check("path_length")
def path_length(n: int, source: int, target: int) -> Measurement:
    """Fewest steps from token ``source`` to token ``target`` (1-based) in an RNN chain and in one attention layer."""
    def shortest(adjacent: np.ndarray) -> int:
        reached, frontier, steps = {source - 1}, {source - 1}, 0
        while target - 1 not in reached:
            frontier = {int(j) for i in frontier for j in np.flatnonzero(adjacent[i])} - reached
            reached |= frontier
            steps += 1
        return steps

    chain = np.eye(n, k=1, dtype=bool)            # h_t feeds h_{t+1} only
    complete = ~np.eye(n, dtype=bool)             # every token attends to every token
    computed = {"rnn": shortest(chain), "attention": shortest(complete)}
    return Measurement(computed, f"from token {source} to token {target}: {computed['rnn']} recurrent steps, "
                                 f"{computed['attention']} attention step.")


@claim_check("causal_visibility")
def causal_visibility(length: int) -> Measurement:
    """Which keys each query may see under mask[i, j] = 0 if i >= j else -inf."""
    scores = np.where(np.arange(length)[:, None] >= np.arange(length)[None, :], 0.0, -np.inf)
    weights = oracles.softmax(scores)
    visible = {str(i): np.flatnonzero(weights[i] > 0).tolist() for i in range(length)}
    return Measurement(visible, "; ".join(f"query {q} sees {keys}" for q, keys in visible.items()) +
                       " (a causal mask keeps the diagonal: each token attends to itself).")


@claim_check("gradient_clipping")
def gradient_clipping(threshold: float, dimension: int = 50, seed: int = 0) -> Measurement:
    """The rule g <- g threshold / |g| when |g| > threshold: norms capped at the threshold, directions kept."""
    rng = _rng(seed)
    gradients = rng.standard_normal((200, dimension)) * rng.uniform(0.01, 5.0, (200, 1)) * threshold / 3
    norms = np.linalg.norm(gradients, axis=1)
    clipped = np.where(norms[:, None] > threshold, gradients * (threshold / norms[:, None]), gradients)
    new_norms = np.linalg.norm(clipped, axis=1)
    cosines = np.sum(clipped * gradients, axis=1) / (new_norms * norms)
    ok = bool(new_norms.max() <= threshold * (1 + 1e-12) and cosines.min() > 1 - 1e-12 and
              np.allclose(clipped[norms <= threshold], gradients[norms <= threshold]))
    return Measurement({"caps_norm_keeps_direction": ok, "max_norm_after": float(new_norms.max()),
                        "min_cosine": float(cosines.min()), "clipped": int((norms > threshold).sum()), "of": len(norms)},
                       f"{int((norms > threshold).sum())} of {len(norms)} gradients exceeded {threshold:g}; after the rule "
                       f"the largest norm is {new_norms.max():.6g} and the smallest cosine to the original {cosines.min():.12f}.")
