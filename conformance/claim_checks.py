"""The registered claim checks: each recomputes a document's number or statement in float64 NumPy.

Every function takes the document's ``claimed`` value and the spec's ``check.params`` and returns a
:class:`nnspec.claims.Finding`. They are written from the mathematics, not from any backend, and
each draws random inputs only from a fixed seed, so a verdict never changes between runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from nnspec.claims import (
    HOLDS,
    IMPRECISE,
    REFUTED,
    Finding,
    claim_check,
    judge_number,
    judge_numbers,
    quantity,
)

# --- small float64 building blocks ------------------------------------------------------------------


def _softmax(x: Any, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _self_attention(x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray) -> np.ndarray:
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    return _softmax(q @ k.T / math.sqrt(q.shape[-1])) @ v


def _sinusoidal(positions: np.ndarray, d_model: int) -> np.ndarray:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    frequencies = 1.0 / 10000.0 ** (np.arange(0, d_model, 2) / d_model)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * frequencies[None, :]
    encoding = np.empty((len(positions), d_model))
    encoding[:, 0::2], encoding[:, 1::2] = np.sin(angles), np.cos(angles)
    return encoding


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _worst(*verdicts: str) -> str:
    return max(verdicts, key=(HOLDS, IMPRECISE, REFUTED).index)


# --- softmax -------------------------------------------------------------------------------------------


@claim_check("softmax_values")
def softmax_values(claimed: list[Any], logits: list[float]) -> Finding:
    """softmax(logits) in float64, element by element against the claimed weights."""
    weights = _softmax(logits)
    verdict, detail = judge_numbers(list(weights), claimed)
    return Finding(verdict, weights, f"softmax({logits}) = {np.round(weights, 4).tolist()}: {detail}.")


@claim_check("softmax_near_one_hot")
def softmax_near_one_hot(claimed: list[float], logits: list[float], tolerance: float) -> Finding:
    """softmax(logits) lies within ``tolerance`` of the claimed one-hot vector."""
    weights = _softmax(logits)
    gap = float(np.max(np.abs(weights - np.asarray(claimed, dtype=np.float64))))
    verdict = HOLDS if gap <= tolerance else REFUTED
    return Finding(verdict, weights, f"softmax({logits}) differs from {claimed} by at most {gap:.3g} "
                                     f"({'within' if verdict == HOLDS else 'beyond'} {tolerance:g}).")


@claim_check("exponentials")
def exponentials(claimed: list[Any], values: list[float]) -> Finding:
    """exp of each value against the claimed exponentials."""
    computed = np.exp(np.asarray(values, dtype=np.float64))
    verdict, detail = judge_numbers(list(computed), claimed)
    return Finding(verdict, computed, f"exp({values}) = {np.round(computed, 4).tolist()}: {detail}.")


@claim_check("exponential_sum")
def exponential_sum(claimed: Any, values: list[float]) -> Finding:
    """The softmax denominator: sum of exp(values)."""
    exact = float(np.exp(np.asarray(values, dtype=np.float64)).sum())
    verdict, detail = judge_number(exact, claimed)
    rounded = float(np.round(np.exp(values), 2).sum())
    return Finding(verdict, exact, f"sum of exp({values}) = {exact:.4f}: {detail}; the sum of the exponentials "
                                   f"rounded to two decimals is {rounded:.2f}.")


@claim_check("softmax_self_derivative")
def softmax_self_derivative(claimed: Any, logits: list[float], positions: list[int]) -> Finding:
    """d softmax_i / d z_i = p_i (1 - p_i) at the given positions (the diagonal of the Jacobian)."""
    weights = _softmax(logits)
    jacobian = np.diag(weights) - np.outer(weights, weights)
    derivatives = [float(jacobian[i, i]) for i in positions]
    verdict, detail = judge_numbers(derivatives, [claimed] * len(positions))
    return Finding(verdict, derivatives, f"at softmax({logits}) = {np.round(weights, 4).tolist()}, "
                                         f"p(1-p) at positions {positions} is {np.round(derivatives, 4).tolist()}: {detail}.")


@claim_check("softmax_saturation")
def softmax_saturation(claimed: str, d_k: int, length: int = 16, rows: int = 4000, seed: int = 0) -> Finding:
    """Mean Frobenius norm of the softmax Jacobian for unit-variance q, k: raw q.k versus q.k / sqrt(d_k)."""
    rng = _rng(seed)
    q = rng.standard_normal((rows, 1, d_k))
    k = rng.standard_normal((rows, length, d_k))
    raw = np.einsum("rid,rjd->rj", q, k)

    def mean_jacobian_norm(scores: np.ndarray) -> float:
        p = _softmax(scores)
        jacobians = p[:, :, None] * np.eye(length)[None] - p[:, :, None] * p[:, None, :]
        return float(np.linalg.norm(jacobians, axis=(1, 2)).mean())

    unscaled, scaled = mean_jacobian_norm(raw), mean_jacobian_norm(raw / math.sqrt(d_k))
    computed = {"unscaled": unscaled, "scaled": scaled, "ratio": unscaled / scaled}
    verdict = HOLDS if (unscaled < scaled) == (claimed == "smaller without scaling") else REFUTED
    return Finding(verdict, computed, f"with d_k = {d_k} and {length} keys, the softmax Jacobian's mean norm is "
                                      f"{unscaled:.3g} on raw scores and {scaled:.3g} after dividing by sqrt(d_k).")


# --- dot-product statistics -----------------------------------------------------------------------------


def _dot_products(d_k: int, samples: int, seed: int) -> np.ndarray:
    rng = _rng(seed)
    chunks = [np.einsum("nd,nd->n", rng.standard_normal((10_000, d_k)), rng.standard_normal((10_000, d_k)))
              for _ in range(samples // 10_000)]
    return np.concatenate(chunks)


def _outside_probability(d_k: int, bound: float) -> float:
    """P(|q.k| > bound) for q, k ~ N(0, I_d): given |k|^2 = r ~ chi2(d), q.k ~ N(0, r)."""
    from scipy import integrate, stats

    def integrand(r: float) -> float:
        return float(2 * stats.norm.sf(bound / math.sqrt(r)) * stats.chi2.pdf(r, d_k))

    value, _ = integrate.quad(integrand, 0, np.inf, limit=200)
    return float(value)


@claim_check("dot_product_variance")
def dot_product_variance(claimed: Any, d_k: int, scaled: bool = False, samples: int = 200_000, seed: int = 0) -> Finding:
    """Var(q.k) for independent zero-mean unit-variance entries: exactly d_k (1 after / sqrt(d_k)); sampled too."""
    exact = 1.0 if scaled else float(d_k)
    s = _dot_products(d_k, samples, seed) / (math.sqrt(d_k) if scaled else 1.0)
    sampled = float(s.var())
    standard_error = float(np.sqrt(np.var(s**2) / len(s)))
    verdict, detail = judge_number(exact, claimed)
    return Finding(verdict, {"exact": exact, "sampled": sampled, "samples": len(s)},
                   f"Var(sum of {d_k} products of independent N(0,1) pairs) = {d_k}"
                   f"{' / d_k = 1' if scaled else ''}; {len(s):,} samples give {sampled:.4g} "
                   f"({(sampled - exact) / standard_error:+.1f} standard errors): {detail}.")


@claim_check("dot_product_spread")
def dot_product_spread(claimed: list[Any], d_k: int, sigmas: float = 3, scaled: bool = False) -> Finding:
    """The +-sigmas standard-deviation range of q.k (or q.k / sqrt(d_k)), and the share of q.k inside it."""
    std = 1.0 if scaled else math.sqrt(d_k)
    bound = sigmas * std
    inside = 1 - _outside_probability(d_k, sigmas * math.sqrt(d_k))
    verdict, detail = judge_numbers([-bound, bound], claimed)
    return Finding(verdict, {"range": [-bound, bound], "share_inside": inside},
                   f"the standard deviation is {std:g}, so {sigmas:g} of them span +-{bound:g}; "
                   f"{inside:.2%} of dot products fall inside (exact, q.k given |k|^2 ~ chi2({d_k})): {detail}.")


@claim_check("dot_product_magnitude")
def dot_product_magnitude(claimed: dict[str, Any], d_k: int) -> Finding:
    """How typical are raw dot products of the claimed size for unit-variance entries, and what after scaling."""
    std = math.sqrt(d_k)
    raw = quantity(claimed["raw"]).value
    tail = _outside_probability(d_k, raw)
    entry_variance = raw / (3 * std)  # per-entry variance that would make +-raw a 3-standard-deviation range
    scaled = raw / std
    verdict_scaled, _ = judge_number(scaled, claimed["scaled"], band=0.25)
    verdict = IMPRECISE if verdict_scaled != REFUTED else REFUTED
    return Finding(verdict, {"std": std, "three_std": 3 * std, "p_beyond_raw": tail, "raw_over_sqrt_dk": scaled,
                             "entry_variance_needed": entry_variance},
                   f"with unit-variance entries q.k has standard deviation {std:.1f}, so it is typically within "
                   f"+-{3 * std:.0f} and exceeds {raw:g} with probability {tail:.1e}; {raw:g} / sqrt({d_k}) = "
                   f"{scaled:.1f}. The figures fit only entries of variance about {entry_variance:.1f}, "
                   f"which the text does not say (with the normalised inputs it names, scaled scores are ~+-3).")


@claim_check("square_root")
def square_root(claimed: Any, value: float) -> Finding:
    """sqrt(value)."""
    root = math.sqrt(value)
    verdict, detail = judge_number(root, claimed)
    return Finding(verdict, root, f"sqrt({value:g}) = {root:.4f}: {detail}.")


# --- counting attention work ---------------------------------------------------------------------------


@claim_check("attention_scores")
def attention_scores(claimed: Any, n: int, heads: int = 1, layers: int = 1, bytes_per_score: int | None = None,
                     seconds_per_score: float | None = None, unit_seconds: float = 1.0) -> Finding:
    """n^2 scores per head per layer, times heads and layers; optionally in bytes or in seconds."""
    scores = float(n) ** 2 * heads * layers
    factors = f"{n:,}^2" + (f" x {heads} heads" if heads > 1 else "") + (f" x {layers} layers" if layers > 1 else "")
    computed, what = scores, f"{factors} = {scores:.4g} scores"
    if bytes_per_score is not None:
        computed = scores * bytes_per_score
        what += f", x {bytes_per_score} bytes = {computed:.4g} bytes"
    if seconds_per_score is not None:
        computed = scores * seconds_per_score / unit_seconds
        what += f", x {seconds_per_score:g} s = {computed:.4g} x {unit_seconds:g} s"
    verdict, detail = judge_number(computed, claimed)
    return Finding(verdict, computed, f"{what}: {detail}.")


@claim_check("attention_scores_ratio")
def attention_scores_ratio(claimed: Any, n_from: int, n_to: int) -> Finding:
    """How many times more scores n_to tokens need than n_from: (n_to / n_from)^2."""
    ratio = (n_to / n_from) ** 2
    verdict, detail = judge_number(ratio, claimed)
    return Finding(verdict, ratio, f"({n_to:,} / {n_from:,})^2 = {ratio:g}: {detail}.")


@claim_check("window_attention")
def window_attention(claimed: Any, n: int, window: int, measure: str = "scores", bytes_per_score: int = 4) -> Finding:
    """Local attention keeps n x window scores: the count, the reduction n^2 / (n window), or the bytes."""
    computed = {"scores": float(n) * window, "reduction": n / window,
                "bytes": float(n) * window * bytes_per_score}[measure]
    verdict, detail = judge_number(computed, claimed)
    return Finding(verdict, computed, f"{n:,} tokens x {window} keys each: {measure} = {computed:.4g}: {detail}; "
                                      f"with the token itself as well ({window + 1} keys) the reduction is "
                                      f"{n / (window + 1):.1f}.")


_COSTS: dict[str, Callable[..., float]] = {
    # multiply-adds (or stored elements, for *_memory) of each computation, by its sizes
    "attention_time": lambda n, d: 2 * n * n * d + n * n,                 # QK^T, softmax, PV
    "attention_memory": lambda n, d: n * n + 3 * n * d,                   # the n x n scores, Q, K, V
    "rnn_time": lambda n, d: n * (d * d + d * d),                         # W_hh h and W_xh x per step
    "lstm_state_memory": lambda n, d: 2 * d,                              # h and C, whatever the length
    "embedding_time": lambda n, d: n * d,                                 # one row copied per token
    "ffn_time": lambda n, d: 2 * n * d * 4 * d,                           # d -> 4d -> d per token
    "window_attention_time": lambda n, d, w=256: 2 * n * w * d,
    "linear_attention_time": lambda n, d: 2 * n * d * d,                  # phi(K)^T V, then phi(Q) (.)
    "flash_extra_memory": lambda n, d, block=128: n * d + 2 * n + block * block,  # O, row max and sum, a tile
    "decode_step_with_cache": lambda n, d: 2 * n * d,                     # one new query against n cached keys
    "decode_step_without_cache": lambda n, d: 2 * n * n * d,              # every query against every key again
    "score_per_pair": lambda n, d: d,                                     # one dot product of two d-vectors
}


def _exponent(cost: str, variable: str, sizes: dict[str, int]) -> float:
    """The asymptotic exponent: the log-log slope far out (2^30 .. 2^40), where lower-order terms vanish."""
    grid = np.array([2.0**e for e in range(30, 41, 2)])
    values = [_COSTS[cost](**{**sizes, variable: float(g)}) for g in grid]
    slope = np.polyfit(np.log(grid), np.log(np.maximum(values, 1e-300)), 1)[0]
    return float(np.round(slope, 2)) + 0.0  # no -0.0


@claim_check("complexity_exponent")
def complexity_exponent(claimed: dict[str, float], cost: str, sizes: dict[str, int] | None = None,
                        also: list[str] | None = None) -> Finding:
    """Fit the growth exponent of a cost model in each claimed size (log-log slope over a doubling sweep).

    ``also`` names sizes the cost depends on but the claim leaves out (treats as constants): growth
    in one of them makes the claim imprecise rather than wrong.
    """
    sizes = {"n": 4096, "d": 64, **(sizes or {})}
    computed = {variable: _exponent(cost, variable, sizes) for variable in [*claimed, *(also or [])]}
    wrong = [v for v in claimed if abs(computed[v] - claimed[v]) > 0.05]
    hidden = [v for v in also or [] if abs(computed[v]) > 0.05]
    verdict = REFUTED if wrong else IMPRECISE if hidden else HOLDS
    shown = ", ".join(f"{v}^{computed[v]:g}" for v in computed)
    if wrong:
        why = "; ".join(f"it grows as {v}^{computed[v]:g}, not {v}^{claimed[v]:g}" for v in wrong)
    elif hidden:
        why = f"true only with {', '.join(hidden)} held constant: it grows as " + ", ".join(
            f"{v}^{computed[v]:g}" for v in hidden)
    else:
        why = "agrees with the claimed exponents"
    return Finding(verdict, computed, f"{cost} grows as {shown} (log-log slope): {why}.")


@claim_check("attention_bottleneck")
def attention_bottleneck(claimed: str, d_model: int, d_ff_ratio: int = 4) -> Finding:
    """The sequence length beyond which attention's n^2 work exceeds the layer's linear work."""
    d, d_ff = d_model, d_ff_ratio * d_model
    # per layer: projections 4 n d^2, scores and weighted sum 2 n^2 d, feed-forward 2 n d d_ff
    crossover = (4 * d * d + 2 * d * d_ff) / (2 * d)
    return Finding(HOLDS, {"crossover_tokens": crossover},
                   f"per layer, QK^T and PV cost 2 n^2 d multiply-adds against 4 n d^2 (projections) + 2 n d d_ff "
                   f"(feed-forward); with d = {d}, d_ff = {d_ff} attention dominates from n = {crossover:.0f} tokens.")


@claim_check("kv_cache_total")
def kv_cache_total(claimed: str, tokens: int) -> Finding:
    """Scores computed to generate ``tokens`` tokens, recomputing everything each step versus caching K, V."""
    steps = np.arange(1, tokens + 1, dtype=np.float64)
    without, with_cache = float((steps**2).sum()), float(steps.sum())
    return Finding(HOLDS, {"without_cache": without, "with_cache": with_cache, "ratio": without / with_cache},
                   f"generating {tokens} tokens computes sum t^2 = {without:.4g} scores without a cache and "
                   f"sum t = {with_cache:.4g} with one ({without / with_cache:.0f}x fewer).")


# --- memory for training ---------------------------------------------------------------------------------


@claim_check("training_memory")
def training_memory(claimed: Any, parameters: float, bytes_per_parameter: float, shards: int = 1,
                    standard_bytes_per_parameter: float | None = None, standard: str = "") -> Finding:
    """parameters x bytes / shards; imprecise when the bytes the text assumes differ from standard practice."""
    computed = parameters * bytes_per_parameter / shards
    verdict, detail = judge_number(computed, claimed)
    explanation = f"{parameters:.4g} x {bytes_per_parameter:g} bytes" + (f" / {shards}" if shards > 1 else "") + \
        f" = {computed:.4g} bytes: {detail}."
    if verdict == HOLDS and standard_bytes_per_parameter and standard_bytes_per_parameter != bytes_per_parameter:
        usual = parameters * standard_bytes_per_parameter / shards
        verdict = IMPRECISE
        explanation += (f" The arithmetic holds for {bytes_per_parameter:g} bytes per parameter, which the text "
                        f"leaves implicit; {standard} takes {standard_bytes_per_parameter:g}, i.e. "
                        f"{quantity(claimed).show(usual)}.")
    return Finding(verdict, computed, explanation)


@claim_check("allreduce_traffic")
def allreduce_traffic(claimed: Any, parameters: float, bytes_per_gradient: float, workers: int) -> Finding:
    """Bytes of gradient one ring all-reduce moves per worker: 2 (N - 1) / N x gradient size."""
    gradient = parameters * bytes_per_gradient
    per_worker = 2 * (workers - 1) / workers * gradient
    verdict, detail = judge_number(per_worker, claimed, band=0.1)
    stated = quantity(claimed)
    return Finding(verdict, {"gradient_bytes": gradient, "ring_allreduce_bytes_per_worker": per_worker},
                   f"{parameters:.4g} gradients x {bytes_per_gradient:g} bytes = {stated.show(gradient)}; a ring "
                   f"all-reduce sends and receives 2 (N-1)/N of that per GPU = {stated.show(per_worker)}: {detail}.")


# --- parameter counts -------------------------------------------------------------------------------------


def _layer_parameters(d: int, d_ff: int) -> int:
    attention = 4 * d * d + 4 * d           # W_Q, W_K, W_V, W_O and biases
    feed_forward = 2 * d * d_ff + d_ff + d  # two linear layers
    norms = 2 * 2 * d                       # two LayerNorms, gain and bias
    return attention + feed_forward + norms


@claim_check("transformer_parameters")
def transformer_parameters(claimed: str, models: list[dict[str, Any]]) -> Finding:
    """Exact parameter counts of standard transformer configurations against 12 L d^2."""
    computed: dict[str, Any] = {}
    worst_total = 0.0
    worst_layers = 0.0
    for model in models:
        layers, d = model["layers"], model["d_model"]
        per_layer = _layer_parameters(d, model.get("d_ff", 4 * d))
        embeddings = (model.get("vocab", 0) + model.get("positions", 0)) * d
        total = layers * per_layer + embeddings
        formula = 12 * layers * d * d
        computed[model["name"]] = {"formula_12Ld2": float(formula), "layers_exact": float(layers * per_layer),
                                   "with_embeddings": float(total)}
        worst_layers = max(worst_layers, abs(layers * per_layer / formula - 1))
        worst_total = max(worst_total, abs(total / formula - 1))
    verdict = HOLDS if worst_total <= 0.05 else IMPRECISE if worst_layers <= 0.05 else REFUTED
    parts = [f"{name}: 12 L d^2 = {v['formula_12Ld2']:.4g}, layers {v['layers_exact']:.4g}, "
             f"with embeddings {v['with_embeddings']:.4g}" for name, v in computed.items()]
    return Finding(verdict, computed, "; ".join(parts) + f". The layers match 12 L d^2 to {worst_layers:.1%} "
                   f"(with d_ff = 4 d); embeddings, which the formula leaves out, move the total by up to {worst_total:.0%}.")


@claim_check("ratio")
def ratio(claimed: Any, pairs: list[list[float]]) -> Finding:
    """b / a for each (a, b) pair, each against the claimed ratio."""
    ratios = [b / a for a, b in pairs]
    verdict, detail = judge_numbers(ratios, [claimed] * len(ratios))
    return Finding(verdict, ratios, f"{', '.join(f'{b:g} / {a:g} = {b / a:g}' for a, b in pairs)}: {detail}.")


@claim_check("recurrent_parameter_saving")
def recurrent_parameter_saving(claimed: Any, input_size: int, hidden: int) -> Finding:
    """How many fewer parameters a GRU cell has than an LSTM cell of the same sizes (weights and biases)."""
    block = hidden * (input_size + hidden) + 2 * hidden  # one gate's W_ih, W_hh, b_ih, b_hh
    lstm, gru = 4 * block, 3 * block                     # LSTM: i, f, g, o; GRU: r, z, n
    saving = 1 - gru / lstm
    verdict, detail = judge_number(saving, claimed)
    return Finding(verdict, {"lstm": lstm, "gru": gru, "saving": saving},
                   f"LSTM {lstm:,} parameters (4 blocks), GRU {gru:,} (3 blocks): {saving:.0%} fewer: {detail}.")


@claim_check("multi_head_parameters")
def multi_head_parameters(claimed: str, d_model: int, heads: list[int], n: int = 1024) -> Finding:
    """Parameters and work of multi-head attention with d_k = d_model / h, for several h."""
    table = {}
    for h in heads:
        d_k = d_model // h
        table[h] = {"parameters": 4 * d_model * d_model + 4 * d_model,   # per-head blocks of W_Q, W_K, W_V; W_O
                    "matmul_macs": h * 2 * n * n * d_k, "softmax_elements": h * n * n}
    constant = len({row["parameters"] for row in table.values()}) == 1
    verdict = HOLDS if constant == (claimed == "independent of heads") else REFUTED
    return Finding(verdict, table, f"with d_k = d_model / h the projections hold 4 d^2 + 4 d = "
                                   f"{table[heads[0]]['parameters']:,} parameters for every h in {heads}, and QK^T, PV "
                                   f"cost 2 n^2 d_model whatever h; only the n^2 h softmax work grows with heads.")


@claim_check("head_dimension")
def head_dimension(claimed: Any, d_model: int, heads: int) -> Finding:
    """d_k = d_model / h."""
    d_k = d_model / heads
    verdict, detail = judge_number(d_k, claimed)
    return Finding(verdict, d_k, f"{d_model} / {heads} = {d_k:g}: {detail}.")


@claim_check("qkv_head_split")
def qkv_head_split(claimed: bool, d_model: int, heads: int, n: int = 7, seed: int = 0) -> Finding:
    """One (d_model, d_model) projection reshaped to (n, h, d_k) equals h separate (d_model, d_k) projections."""
    rng = _rng(seed)
    x, w = rng.standard_normal((n, d_model)), rng.standard_normal((d_model, d_model))
    d_k = d_model // heads
    split = (x @ w).reshape(n, heads, d_k)
    separate = np.stack([x @ w[:, i * d_k:(i + 1) * d_k] for i in range(heads)], axis=1)
    gap = float(np.max(np.abs(split - separate)))
    verdict = HOLDS if (gap < 1e-9) == bool(claimed) else REFUTED
    return Finding(verdict, {"max_difference": gap}, f"reshaping X W (d_model = {d_model}) into {heads} heads "
                                                     f"differs from per-head projections by {gap:.2g}.")


@claim_check("embedding_scale")
def embedding_scale(claimed: str, d_model: int, tokens: int = 2000, seed: int = 0) -> Finding:
    """Norm of sqrt(d_model) x embedding against the norm of the sinusoidal encoding, for two common inits."""
    rng = _rng(seed)
    pe_norm = float(np.linalg.norm(_sinusoidal(np.arange(tokens), d_model), axis=1).mean())
    ratios = {}
    for name, std in (("N(0, 1/d_model)", 1 / math.sqrt(d_model)), ("N(0, 1)", 1.0)):
        embedding = rng.standard_normal((tokens, d_model)) * std
        ratios[name] = float(np.linalg.norm(math.sqrt(d_model) * embedding, axis=1).mean()) / pe_norm
    return Finding(IMPRECISE, {"pe_norm": pe_norm, "scaled_embedding_over_pe": ratios},
                   f"|PE| = sqrt(d_model / 2) = {pe_norm:.1f}; sqrt(d_model) x embedding is "
                   f"{ratios['N(0, 1/d_model)']:.2f}x that for embeddings drawn N(0, 1/d_model) but "
                   f"{ratios['N(0, 1)']:.0f}x for N(0, 1): the magnitudes match only for the first initialisation, "
                   f"which the text does not state.")


# --- positional encodings -----------------------------------------------------------------------------------


@claim_check("sinusoidal_shift_is_linear")
def sinusoidal_shift_is_linear(claimed: bool, d_model: int, offsets: list[int], positions: int = 100) -> Finding:
    """PE(pos + k) = M_k PE(pos) for one matrix M_k per offset: fitted by least squares over many positions."""
    rows = np.arange(positions)
    residuals, rotation_gaps = {}, {}
    for k in offsets:
        source, target = _sinusoidal(rows, d_model), _sinusoidal(rows + k, d_model)
        fitted, *_ = np.linalg.lstsq(source, target, rcond=None)
        residuals[k] = float(np.max(np.abs(source @ fitted - target)))
        # the closed form: each (sin, cos) pair turns by the angle k w_i
        w = 1.0 / 10000.0 ** (np.arange(0, d_model, 2) / d_model)
        c, s = np.cos(k * w), np.sin(k * w)
        rotated = np.empty_like(source)
        rotated[:, 0::2] = source[:, 0::2] * c + source[:, 1::2] * s
        rotated[:, 1::2] = source[:, 1::2] * c - source[:, 0::2] * s
        rotation_gaps[k] = float(np.max(np.abs(rotated - target)))
    linear = max(residuals.values()) < 1e-8 and max(rotation_gaps.values()) < 1e-9
    verdict = HOLDS if linear == bool(claimed) else REFUTED
    return Finding(verdict, {"least_squares_residual": residuals, "rotation_residual": rotation_gaps},
                   f"for offsets {offsets}, one matrix per offset maps PE(pos) to PE(pos + k) for all {positions} "
                   f"positions (largest residual {max(residuals.values()):.1e}); it is the block rotation by k w_i.")


@claim_check("sinusoidal_unique")
def sinusoidal_unique(claimed: bool, d_model: int, positions: int, sample: int = 256) -> Finding:
    """Smallest distance between the encodings of two different positions in 0 .. positions - 1.

    |PE(p) - PE(q)|^2 = sum_i (2 - 2 cos(w_i (p - q))) depends on p - q only, so one distance per
    offset covers every pair; the first ``sample`` positions are also compared pair by pair.
    """
    frequencies = 1.0 / 10000.0 ** (np.arange(0, d_model, 2) / d_model)
    offsets = np.arange(1, positions)
    by_offset = np.sqrt(np.sum(2 - 2 * np.cos(np.outer(offsets, frequencies)), axis=1))
    encoding = _sinusoidal(np.arange(sample), d_model)
    gram = encoding @ encoding.T
    squared = np.diag(gram)[:, None] + np.diag(gram)[None, :] - 2 * gram
    direct = np.sqrt(np.maximum(squared, 0.0))
    lag = np.abs(np.subtract.outer(np.arange(sample), np.arange(sample)))
    identity_gap = float(np.max(np.abs(direct[lag > 0] - by_offset[lag[lag > 0] - 1])))
    nearest = float(by_offset.min())
    verdict = HOLDS if (nearest > 1e-6) == bool(claimed) else REFUTED
    return Finding(verdict, {"min_distance": nearest, "closest_offset": int(offsets[by_offset.argmin()]),
                             "pairwise_check_gap": identity_gap},
                   f"among positions 0..{positions - 1} with d_model = {d_model}, the two closest encodings are "
                   f"{nearest:.3g} apart (offset {offsets[by_offset.argmin()]}); pair-by-pair distances over the first "
                   f"{sample} positions agree with the per-offset formula to {identity_gap:.1e}.")


@claim_check("rope_relative")
def rope_relative(claimed: bool, d: int, seed: int = 0) -> Finding:
    """RoPE turns each pair of a vector as a complex number by m theta_i: norms kept, q_m . k_n a function of m - n."""
    rng = _rng(seed)
    theta = 1.0 / 10000.0 ** (np.arange(0, d, 2) / d)

    def rotate(vector: np.ndarray, position: int) -> np.ndarray:
        turned = (vector[0::2] + 1j * vector[1::2]) * np.exp(1j * position * theta)
        out = np.empty(d)
        out[0::2], out[1::2] = turned.real, turned.imag
        return out

    q, k = rng.standard_normal(d), rng.standard_normal(d)
    norm_gap = abs(np.linalg.norm(rotate(q, 37)) - np.linalg.norm(q))
    pairs = [(5, 2), (105, 102), (1005, 1002)]
    scores = [float(rotate(q, m) @ rotate(k, n)) for m, n in pairs]
    relative_gap = max(scores) - min(scores)
    relative = norm_gap < 1e-9 and relative_gap < 1e-9
    verdict = HOLDS if relative == bool(claimed) else REFUTED
    return Finding(verdict, {"norm_change": norm_gap, "scores_at_offset_3": scores},
                   f"rotation keeps the norm (change {norm_gap:.1e}); q_m . k_n at (m, n) = {pairs} is "
                   f"{np.round(scores, 9).tolist()}: the same for the same offset m - n.")


# --- attention as a function ----------------------------------------------------------------------------------


@claim_check("self_attention_permutation")
def self_attention_permutation(claimed: str, n: int = 6, d: int = 8, seed: int = 0) -> Finding:
    """Permute the tokens of unmasked self-attention: do the outputs stay put (invariant) or move with them?"""
    rng = _rng(seed)
    x = rng.standard_normal((n, d))
    w_q, w_k, w_v = (rng.standard_normal((d, d)) for _ in range(3))
    order = rng.permutation(n)
    out, out_permuted = _self_attention(x, w_q, w_k, w_v), _self_attention(x[order], w_q, w_k, w_v)
    equivariance_gap = float(np.max(np.abs(out_permuted - out[order])))
    invariance_gap = float(np.max(np.abs(out_permuted - out)))
    computed = {"equivariance_gap": equivariance_gap, "invariance_gap": invariance_gap}
    found = "equivariant" if equivariance_gap < 1e-9 else "neither"
    if claimed == found:
        return Finding(HOLDS, computed, f"permuting the {n} tokens permutes the outputs the same way "
                                        f"(gap {equivariance_gap:.1e}).")
    verdict = IMPRECISE if claimed == "invariant" and found == "equivariant" else REFUTED
    return Finding(verdict, computed, f"self-attention is {found}: permuting the tokens permutes the outputs "
                                      f"(gap {equivariance_gap:.1e}) but does not leave them unchanged (gap "
                                      f"{invariance_gap:.2f}). It is invariant only for a fixed query over permuted "
                                      f"key-value pairs, or after pooling over tokens.")


@claim_check("shared_projection_symmetry")
def shared_projection_symmetry(claimed: str, n: int = 5, d: int = 8, seed: int = 0) -> Finding:
    """With W_Q = W_K, is the score matrix symmetric, and is the softmax attention matrix?"""
    rng = _rng(seed)
    x, w = rng.standard_normal((n, d)), rng.standard_normal((d, d))
    scores = (x @ w) @ (x @ w).T / math.sqrt(d)
    weights = _softmax(scores)
    computed = {"scores_asymmetry": float(np.max(np.abs(scores - scores.T))),
                "weights_asymmetry": float(np.max(np.abs(weights - weights.T)))}
    symmetric_scores = computed["scores_asymmetry"] < 1e-9
    symmetric_weights = computed["weights_asymmetry"] < 1e-9
    if claimed == "weights symmetric":
        verdict = HOLDS if symmetric_weights else IMPRECISE if symmetric_scores else REFUTED
    else:
        verdict = HOLDS if symmetric_scores else REFUTED
    return Finding(verdict, computed, f"with one shared matrix the scores X W (X W)^T are symmetric (asymmetry "
                                      f"{computed['scores_asymmetry']:.1e}) but the row-wise softmax weights are not "
                                      f"(asymmetry {computed['weights_asymmetry']:.2f}).")


@claim_check("stacked_attention_linearity")
def stacked_attention_linearity(claimed: str, layers: int = 2, n: int = 6, d: int = 8, seed: int = 0) -> Finding:
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
    fixed = _softmax(rng.standard_normal((n, n)))
    v1, v2 = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    in_values = float(np.max(np.abs(fixed @ (v1 + v2) - fixed @ v1 - fixed @ v2)))
    linear = additivity < 1e-9 and homogeneity < 1e-9
    verdict = HOLDS if linear == (claimed == "linear") else REFUTED
    return Finding(verdict, {"additivity_error": additivity, "homogeneity_error": homogeneity,
                             "linear_in_values_for_fixed_weights": in_values},
                   f"{layers} stacked self-attention layers break additivity by {additivity:.0%} and homogeneity by "
                   f"{homogeneity:.0%} of the output: the weights softmax(QK^T) depend on the input, so the map is "
                   f"not linear. Only with the weights held fixed is attention linear in V (error {in_values:.1e}).")


@claim_check("linear_attention")
def linear_attention(claimed: str, n: int = 12, d: int = 6, seed: int = 0) -> Finding:
    """phi = elu + 1: the n x n form phi(Q) phi(K)^T V equals phi(Q) (phi(K)^T V), which costs O(n d^2)."""
    rng = _rng(seed)
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))

    def phi(x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))

    weights = phi(q) @ phi(k).T
    quadratic = weights @ v / weights.sum(axis=1, keepdims=True)
    linear = phi(q) @ (phi(k).T @ v) / (phi(q) @ phi(k).sum(axis=0))[:, None]
    gap = float(np.max(np.abs(quadratic - linear)))
    exponent = _exponent("linear_attention_time", "n", {"n": 4096, "d": d})
    holds = gap < 1e-9 and abs(exponent - 1) < 0.05 and bool(weights.min() > 0)
    verdict = HOLDS if holds == (claimed == "O(n)") else REFUTED
    return Finding(verdict, {"max_difference": gap, "exponent_in_n": exponent},
                   f"the two orders of multiplication agree to {gap:.1e}; the right-to-left order costs n^{exponent:g}; "
                   f"elu(x) + 1 > 0 keeps every weight positive.")


@claim_check("path_length")
def path_length(claimed: dict[str, int], n: int, source: int, target: int) -> Finding:
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
    verdict = HOLDS if computed == claimed else REFUTED
    return Finding(verdict, computed, f"from token {source} to token {target}: {computed['rnn']} recurrent steps, "
                                      f"{computed['attention']} attention step.")


@claim_check("causal_visibility")
def causal_visibility(claimed: dict[str, list[int]], length: int) -> Finding:
    """Which keys each query may see under mask[i, j] = 0 if i >= j else -inf."""
    scores = np.where(np.arange(length)[:, None] >= np.arange(length)[None, :], 0.0, -np.inf)
    weights = _softmax(scores)
    visible = {str(i): np.flatnonzero(weights[i] > 0).tolist() for i in range(length)}
    wrong = {query: visible[str(query)] for query, keys in claimed.items() if visible[str(query)] != keys}
    verdict = HOLDS if not wrong else REFUTED
    return Finding(verdict, {key: visible[str(key)] for key in claimed},
                   "every listed query sees exactly the claimed keys." if not wrong else
                   "; ".join(f"query {q} sees keys {keys}, not {claimed[q]}" for q, keys in wrong.items()) +
                   " (a causal mask keeps the diagonal: each token attends to itself).")


@claim_check("gradient_clipping")
def gradient_clipping(claimed: bool, threshold: float, dimension: int = 50, seed: int = 0) -> Finding:
    """The rule g <- g threshold / |g| when |g| > threshold: norms capped at the threshold, directions kept."""
    rng = _rng(seed)
    gradients = rng.standard_normal((200, dimension)) * rng.uniform(0.01, 5.0, (200, 1)) * threshold / 3
    norms = np.linalg.norm(gradients, axis=1)
    clipped = np.where(norms[:, None] > threshold, gradients * (threshold / norms[:, None]), gradients)
    new_norms = np.linalg.norm(clipped, axis=1)
    cosines = np.sum(clipped * gradients, axis=1) / (new_norms * norms)
    computed = {"max_norm_after": float(new_norms.max()), "min_cosine": float(cosines.min()),
                "clipped": int((norms > threshold).sum()), "of": len(norms)}
    ok = new_norms.max() <= threshold * (1 + 1e-12) and cosines.min() > 1 - 1e-12 and \
        np.allclose(clipped[norms <= threshold], gradients[norms <= threshold])
    verdict = HOLDS if ok == bool(claimed) else REFUTED
    return Finding(verdict, computed, f"{computed['clipped']} of {len(norms)} gradients exceeded {threshold:g}; after "
                                      f"the rule the largest norm is {new_norms.max():.6g} and every direction is kept.")


# --- recurrent cells -----------------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@claim_check("lstm_cell_state_jacobian")
def lstm_cell_state_jacobian(claimed: str, hidden: int = 4, input_size: int = 3, seed: int = 0) -> Finding:
    """dC_t / dC_{t-1} through a whole step, where h_{t-1} = o_{t-1} tanh(C_{t-1}) also feeds the gates."""
    rng = _rng(seed)
    w = rng.standard_normal((4 * hidden, hidden + input_size)) / math.sqrt(hidden + input_size)
    b = rng.standard_normal(4 * hidden) * 0.5
    x, c_previous = rng.standard_normal(input_size), rng.standard_normal(hidden)
    o_previous = _sigmoid(rng.standard_normal(hidden))

    def step(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = o_previous * np.tanh(c)
        z = w @ np.concatenate([h, x]) + b
        i, f, g = _sigmoid(z[:hidden]), _sigmoid(z[hidden:2 * hidden]), np.tanh(z[2 * hidden:3 * hidden])
        return f * c + i * g, f

    eps = 1e-6
    jacobian = np.stack([(step(c_previous + eps * e)[0] - step(c_previous - eps * e)[0]) / (2 * eps)
                         for e in np.eye(hidden)], axis=1)
    forget = step(c_previous)[1]
    gap = float(np.max(np.abs(jacobian - np.diag(forget))))
    computed = {"max_abs_J_minus_diag_f": gap, "forget_gate": forget, "jacobian_diagonal": np.diag(jacobian)}
    verdict = HOLDS if gap < 1e-6 else IMPRECISE
    return Finding(verdict, computed, f"the full Jacobian differs from diag(f_t) by up to {gap:.3f}: f_t, i_t and "
                                      f"C~_t depend on h_(t-1) = o tanh(C_(t-1)). dC_t/dC_(t-1) = diag(f_t) is the "
                                      f"direct (constant error carousel) path only, with the gates held fixed.")


@claim_check("lstm_hidden_bounded")
def lstm_hidden_bounded(claimed: bool, hidden: int = 64, samples: int = 1000, seed: int = 0) -> Finding:
    """h_t = o_t * tanh(C_t) with o_t in (0, 1): |h_t| < 1 and |h_t| <= |C_t|, whatever the size of C_t."""
    rng = _rng(seed)
    cell = rng.standard_normal((samples, hidden)) * rng.uniform(0.1, 50.0, (samples, 1))
    gate = _sigmoid(rng.standard_normal((samples, hidden)) * 3)
    h = gate * np.tanh(cell)
    computed = {"max_abs_h": float(np.abs(h).max()), "max_abs_c": float(np.abs(cell).max()),
                "max_h_over_c": float(np.max(np.abs(h) / np.abs(cell)))}
    bounded = computed["max_abs_h"] < 1 and computed["max_h_over_c"] <= 1
    verdict = HOLDS if bounded == bool(claimed) else REFUTED
    return Finding(verdict, computed, f"over {samples} draws with |C_t| up to {computed['max_abs_c']:.0f}, |h_t| stays "
                                      f"below {computed['max_abs_h']:.4f} < 1 and never exceeds |C_t|: the hidden state "
                                      f"is the cell state squashed by tanh and gated by o_t.")


@claim_check("rnn_gradient_growth")
def rnn_gradient_growth(claimed: str, scales: list[float], hidden: int = 8, steps: int = 50, seed: int = 0) -> Finding:
    """|dh_T / dh_0| for W_hh = scale x orthogonal (every |eigenvalue| = scale), linear and tanh RNNs."""
    rng = _rng(seed)
    orthogonal, _ = np.linalg.qr(rng.standard_normal((hidden, hidden)))
    w_x = rng.standard_normal((hidden, hidden))
    inputs = rng.standard_normal((steps, hidden))
    table = {}
    for scale in scales:
        w = scale * orthogonal
        h, product = rng.standard_normal(hidden) * 0.1, np.eye(hidden)
        for t in range(steps):
            h = np.tanh(w @ h + w_x @ inputs[t])
            product = ((1 - h**2)[:, None] * w) @ product
        table[str(scale)] = {"linear_rnn": float(scale**steps), "tanh_rnn": float(np.linalg.norm(product, 2))}
    below = [table[str(s)]["tanh_rnn"] < 1e-3 for s in scales if s < 1]
    above = [table[str(s)]["tanh_rnn"] > 1e3 for s in scales if s > 1]
    verdict = HOLDS if all(below) and all(above) else IMPRECISE if all(below) else REFUTED
    return Finding(verdict, table, f"over {steps} steps, |dh_T/dh_0| for eigenvalue moduli {scales}: "
                   + "; ".join(f"{s}: linear {v['linear_rnn']:.3g}, tanh {v['tanh_rnn']:.3g}" for s, v in table.items())
                   + ". Below 1 the gradient vanishes; above 1 it explodes only while tanh stays unsaturated, "
                     "since the Jacobian is diag(tanh') W_hh, not W_hh.")


@claim_check("forget_bias_retention")
def forget_bias_retention(claimed: str, bias: float, steps: int) -> Finding:
    """The cell-state gradient kept over ``steps`` steps, prod f = sigmoid(b)^steps, at a zero pre-activation."""
    kept, default = _sigmoid(np.array(bias)) ** steps, 0.5**steps
    computed = {"forget_gate": float(_sigmoid(np.array(bias))), "kept_over_steps": float(kept),
                "kept_with_zero_bias": default, "ratio": float(kept / default)}
    verdict = HOLDS if (kept > default) == (claimed == "more gradient kept") else REFUTED
    return Finding(verdict, computed, f"sigmoid({bias:g}) = {computed['forget_gate']:.3f}, so {steps} steps keep "
                                      f"{kept:.3g} of the cell-state gradient against {default:.3g} with bias 0 "
                                      f"({kept / default:.0f}x more).")


# --- worked examples in words ----------------------------------------------------------------------------------


@claim_check("word_positions")
def word_positions(claimed: dict[str, int], sentence: str) -> Finding:
    """0-based positions of words in a sentence split on spaces (each named word's first occurrence)."""
    words = sentence.split()
    computed = {word: words.index(word) for word in claimed}
    wrong = {word: position for word, position in computed.items() if position != claimed[word]}
    verdict = HOLDS if not wrong else REFUTED
    return Finding(verdict, computed, f"{words}: " + ("every position agrees." if not wrong else
                   ", ".join(f"{w!r} is at {p}, not {claimed[w]}" for w, p in wrong.items()) + "."))


@claim_check("word_distance")
def word_distance(claimed: dict[str, int], sentence: str, first: str, second: str) -> Finding:
    """Word count of a sentence and how many positions apart two of its words are."""
    words = sentence.strip(".").split()
    computed = {"words": len(words), "distance": words.index(second) - words.index(first)}
    checks = [judge_number(computed[key], claimed[key], band=0.0) for key in claimed]
    verdict = max((v for v, _ in checks), key=(HOLDS, IMPRECISE, REFUTED).index)
    return Finding(verdict, computed, f"the sentence has {computed['words']} words and {second!r} is "
                                      f"{computed['distance']} positions after {first!r}; the document says "
                                      f"{claimed}. Subword tokenizers keep these common words whole.")


@claim_check("masking_fractions")
def masking_fractions(claimed: dict[str, float], select: float, tokens: int = 1_000_000, seed: int = 0) -> Finding:
    """BERT's corruption: of the selected tokens, the shares replaced by [MASK], a random token, or kept."""
    shares = np.array([claimed["mask"], claimed["random"], claimed["unchanged"]], dtype=np.float64)
    rng = _rng(seed)
    selected = rng.random(tokens) < select
    choice = rng.choice(3, size=int(selected.sum()), p=shares / shares.sum())
    simulated = np.bincount(choice, minlength=3) / tokens
    computed = {"shares_sum": float(shares.sum()), "of_all_tokens": (select * shares).tolist(),
                "simulated_of_all_tokens": simulated.tolist()}
    verdict = HOLDS if abs(shares.sum() - 1) < 1e-12 else REFUTED
    return Finding(verdict, computed, f"the shares sum to {shares.sum():g}; of all tokens {select * shares[0]:.1%} "
                                      f"become [MASK], {select * shares[1]:.1%} random, {select * shares[2]:.1%} stay "
                                      f"(simulated on {tokens:,} tokens: {np.round(simulated, 4).tolist()}).")


@claim_check("padding_speedup")
def padding_speedup(claimed: Any, lengths: list[int]) -> Finding:
    """Batching padded sequences against one at a time, under three cost models."""
    longest, count = max(lengths), len(lengths)
    models = {"cost_per_sequence": float(count), "cost_per_token": sum(lengths) / longest,
              "cost_per_attention_score": sum(n * n for n in lengths) / longest**2}
    padding = 1 - sum(lengths) / (count * longest)
    verdict, _ = judge_number(models["cost_per_sequence"], claimed)
    if verdict == HOLDS:
        verdict = IMPRECISE
    return Finding(verdict, {**models, "padding_share": padding},
                   f"with lengths {lengths} padded to {longest} ({padding:.0%} padding): {count:.0f}x if one sequence "
                   f"alone costs as much as the padded batch, {models['cost_per_token']:.2f}x if cost grows with "
                   f"tokens, {models['cost_per_attention_score']:.2f}x with n^2 attention cost. The text does not say "
                   f"which; ~{quantity(claimed).value:g}x needs the first.")


# --- FlashAttention ----------------------------------------------------------------------------------------------


def _flash_blocks(sram_elements: float, d: int) -> tuple[int, int]:
    block_k = math.ceil(sram_elements / (4 * d))   # B_c = ceil(M / 4d), Dao et al. 2022, Algorithm 1
    return block_k, min(block_k, d)                 # B_r = min(B_c, d)


def _flash_hbm_accesses(n: float, d: float, sram_elements: float) -> float:
    """Elements read or written by the tiled forward pass (Algorithm 1's loops, counted)."""
    block_k, block_q = _flash_blocks(sram_elements, int(d))
    outer, inner = math.ceil(n / block_k), math.ceil(n / block_q)
    per_inner = 2 * block_q * d + 2 * block_q          # read Q_i and O_i (and l_i, m_i) ...
    per_inner += block_q * d + 2 * block_q             # ... write O_i, l_i, m_i back
    return outer * (2 * block_k * d + inner * per_inner)  # each outer step reads K_j, V_j once


@claim_check("flash_hbm_accesses")
def flash_hbm_accesses(claimed: dict[str, float], n: int = 16384, d: int = 64, sram_elements: int = 65536) -> Finding:
    """Growth exponents of FlashAttention's HBM traffic in n, d and the SRAM size M, from its loop counts."""
    def slope(variable: str, grid: list[float]) -> float:
        sizes: dict[str, float] = {"n": n, "d": d, "M": sram_elements}
        values = []
        for g in grid:
            sizes[variable] = g
            values.append(_flash_hbm_accesses(sizes["n"], sizes["d"], sizes["M"]))
        return float(np.round(np.polyfit(np.log(grid), np.log(values), 1)[0], 2))

    computed = {"n": slope("n", [2.0**e for e in range(13, 18)]), "d": slope("d", [32.0, 64.0, 128.0]),
                "M": slope("M", [2.0**e for e in range(15, 19)])}
    wrong = [v for v in claimed if abs(computed[v] - claimed[v]) > 0.1]
    verdict = REFUTED if wrong else HOLDS
    return Finding(verdict, computed, f"counting reads and writes of the tiled loop (B_c = M/4d, B_r = min(B_c, d)) "
                                      f"gives n^{computed['n']:g} d^{computed['d']:g} M^{computed['M']:g}, i.e. "
                                      f"O(n^2 d^2 / M) as Dao et al. (2022) state"
                                      + (f"; the text's exponent of {', '.join(wrong)} is wrong." if wrong else "."))


@claim_check("flash_block_size")
def flash_block_size(claimed: Any, sram_bytes: int, head_dims: list[int], element_bytes: list[int]) -> Finding:
    """FlashAttention's block sizes for an SRAM of ``sram_bytes``: key blocks B_c = ceil(M / 4d), query blocks min(B_c, d)."""
    table = {}
    for size in element_bytes:
        for d in head_dims:
            block_k, block_q = _flash_blocks(sram_bytes / size, d)
            table[f"{8 * size}-bit, d={d}"] = {"key_block": block_k, "query_block": block_q}
    target = quantity(claimed).value
    matches = [name for name, row in table.items() if row["key_block"] == target]
    verdict = IMPRECISE if matches else REFUTED
    return Finding(verdict, table, f"with {sram_bytes // 1024} KB of SRAM, key/value blocks of {target:g} tokens "
                                   f"arise only for {', '.join(matches) or 'none of these'}; query blocks never exceed "
                                   f"d. The block size depends on head dimension and precision, which the text omits.")
