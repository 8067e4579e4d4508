"""Claim checks that count attention's work: scores, windows, caches, padding."""

from __future__ import annotations

import math

import numpy as np

from nnspec.claim_checks._common import _rng
from nnspec.claim_checks._counting import OperationCounter, _attention_core
from nnspec.claims import Condition, Measurement, claim_check


@claim_check("attention_scores")
def attention_scores(n: int, heads: int = 1, layers: int = 1, bytes_per_score: int | None = None,
                     seconds_per_score: float | None = None, unit_seconds: float = 1.0) -> Measurement:
    """n^2 scores per head per layer (one per query-key pair), times heads and layers; optionally bytes or seconds.

    """
    scores = float(n) ** 2 * heads * layers
    factors = f"{n:,}^2" + (f" x {heads} heads" if heads > 1 else "") + (f" x {layers} layers" if layers > 1 else "")
    computed, what = scores, f"{factors} = {scores:.4g} scores"
    if bytes_per_score is not None:
        computed = scores * bytes_per_score
        what += f", x {bytes_per_score} bytes = {computed:.4g} bytes"
    if seconds_per_score is not None:
        computed = scores * seconds_per_score / unit_seconds
        what += f", x {seconds_per_score:g} s = {computed:.4g} x {unit_seconds:g} s"
    return Measurement({"value": computed, "scores": scores}, f"{what}.", primary="value")


@claim_check("attention_scores_ratio")
def attention_scores_ratio(n_from: int, n_to: int) -> Measurement:
    """How many times more scores n_to tokens need than n_from: (n_to / n_from)^2."""
    ratio = (n_to / n_from) ** 2
    return Measurement({"ratio": ratio}, f"({n_to:,} / {n_from:,})^2 = {ratio:g}.", primary="ratio")


@claim_check("window_attention")
def window_attention(n: int, window: int, measure: str = "scores", bytes_per_score: int = 4) -> Measurement:
    """Local attention keeps n x window scores: the count, the reduction n^2 / (n window), or the bytes."""
    values = {"scores": float(n) * window, "reduction": n / window, "bytes": float(n) * window * bytes_per_score}
    return Measurement({"value": values[measure], **values},
                       f"{n:,} tokens x {window} keys each: {measure} = {values[measure]:.4g}; with the token itself as "
                       f"well ({window + 1} keys) the reduction is {n / (window + 1):.1f}.", primary="value")


@claim_check("attention_bottleneck")
def attention_bottleneck(d_model: int = 64, lengths: list[int] | None = None) -> Measurement:
    """Counted operations of a real transformer layer (projections, attention, feed-forward) over lengths."""
    lengths = lengths or [16, 32, 64, 128, 256, 512, 1024, 2048]
    rng = _rng(0)
    d = d_model
    w = {name: rng.standard_normal(shape) / math.sqrt(shape[0]) for name, shape in
         {"q": (d, d), "k": (d, d), "v": (d, d), "o": (d, d), "up": (d, 4 * d), "down": (4 * d, d)}.items()}
    shares = []
    for n in lengths:
        x = rng.standard_normal((n, d))
        linear, attention = OperationCounter(), OperationCounter()
        q, k, v = linear.matmul(x, w["q"]), linear.matmul(x, w["k"]), linear.matmul(x, w["v"])
        mixed = _attention_core(attention, q, k, v)
        hidden = linear.elementwise(np.maximum(linear.matmul(linear.matmul(mixed, w["o"]) + x, w["up"]), 0))
        linear.matmul(hidden, w["down"])
        shares.append(attention.operations / (attention.operations + linear.operations))
    crossover = next((n for n, share in zip(lengths, shares, strict=True) if share > 0.5), None)
    return Measurement({"attention_share_at_longest": shares[-1], "attention_share_at_shortest": shares[0],
                        "shares": dict(zip(map(str, lengths), shares, strict=True)), "crossover_tokens": crossover},
                       f"counting a layer's operations with d_model = {d}: attention's share is {shares[0]:.0%} at "
                       f"{lengths[0]} tokens and {shares[-1]:.0%} at {lengths[-1]}; it passes half from "
                       f"{crossover} tokens (about {crossover / d if crossover else float('nan'):.0f} d_model).")


@claim_check("kv_cache_total")
def kv_cache_total(tokens: int, d: int = 8, seed: int = 0) -> Measurement:
    """Generate ``tokens`` steps of causal self-attention with and without a K, V cache, counting operations."""
    rng = _rng(seed)
    w_q, w_k, w_v = (rng.standard_normal((d, d)) / math.sqrt(d) for _ in range(3))
    x = rng.standard_normal((tokens, d))
    with_cache, without = OperationCounter(), OperationCounter()
    keys: list[np.ndarray] = []
    values: list[np.ndarray] = []
    gap = 0.0
    for t in range(1, tokens + 1):
        keys.append(with_cache.matmul(x[t - 1:t], w_k))
        values.append(with_cache.matmul(x[t - 1:t], w_v))
        cached = _attention_core(with_cache, with_cache.matmul(x[t - 1:t], w_q), np.vstack(keys), np.vstack(values))
        prefix = x[:t]
        q, k, v = without.matmul(prefix, w_q), without.matmul(prefix, w_k), without.matmul(prefix, w_v)
        scores = without.matmul(q, k.T) / math.sqrt(d) + np.triu(np.full((t, t), -np.inf), 1)
        recomputed = without.matmul(without.softmax(scores), v)[-1]
        gap = max(gap, float(np.max(np.abs(recomputed - cached[0]))))
    ratio = without.operations / with_cache.operations
    return Measurement({"operations_without_cache": float(without.operations),
                        "operations_with_cache": float(with_cache.operations), "ratio": ratio, "output_gap": gap},
                       f"generating {tokens} tokens (d = {d}) costs {without.operations:.4g} counted operations "
                       f"recomputing every step and {with_cache.operations:.4g} with a cache ({ratio:.0f}x fewer); "
                       f"the outputs agree to {gap:.1e}.")


@claim_check("padding_speedup")
def padding_speedup(lengths: list[int], d: int = 16, seed: int = 0) -> Measurement:
    """Batching padded sequences against one at a time: counted operations and forward calls of real attention."""
    rng = _rng(seed)
    longest = max(lengths)
    one_by_one, batched = OperationCounter(), OperationCounter()
    sequences = [rng.standard_normal((n, d)) for n in lengths]
    for x in sequences:
        _attention_core(one_by_one, x, x, x)
    batch = np.stack([np.pad(x, ((0, longest - len(x)), (0, 0))) for x in sequences])
    mask = np.arange(longest)[None, None, :] < np.asarray(lengths)[:, None, None]
    scores = batched.elementwise(batched.matmul(batch, np.swapaxes(batch, 1, 2)) / math.sqrt(d))
    batched.matmul(batched.softmax(np.where(mask, scores, -np.inf)), batch)
    by_operations = one_by_one.operations / batched.operations
    by_calls = len(lengths) / 1
    return Measurement({"speedup": by_operations, "calls_one_by_one": len(lengths), "calls_batched": 1,
                        "padding_share": 1 - sum(lengths) / (len(lengths) * longest)},
                       f"with lengths {lengths} padded to {longest}, batching does {batched.operations:,} counted operations "
                       f"against {one_by_one.operations:,} one by one ({by_operations:.2f}x as fast by work); it makes "
                       f"1 forward call instead of {len(lengths)}, which is {by_calls:.0f}x only if a call costs the same "
                       f"whatever its size.",
                       primary="speedup",
                       under=(Condition("if a forward call costs the same whatever its size (a launch-bound device)",
                                        {"speedup": by_calls}),))
