"""Claim checks about decoding and about the frameworks' transformer and recurrent modules."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

from nnspec import oracles
from nnspec.claim_checks._common import _rng, _torch
from nnspec.claim_checks._counting import _elu_plus_one
from nnspec.claims import Condition, Measurement, claim_check


@claim_check("generation_passes")
def generation_passes(tokens: int, prompt: int = 5, d: int = 4, seed: int = 0) -> Measurement:
    """Run greedy generation of ``tokens`` tokens with and without a K, V cache and count the forward passes:
    full passes (over every position so far) and incremental ones (the new token only)."""
    rng = _rng(seed)
    w_q, w_k, w_v = (rng.standard_normal((d, d)) / math.sqrt(d) for _ in range(3))
    embed = rng.standard_normal((16, d))
    head = rng.standard_normal((d, 16))
    counts = {"full_without_cache": 0, "full_with_cache": 0, "incremental_with_cache": 0}

    # the model: one causal linear-attention layer (phi = elu + 1), so a full pass costs O(n d^2)
    # and a thousand of them stay cheap; what is counted is the passes, not their cost
    def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        phi_q, phi_k = _elu_plus_one(q), _elu_plus_one(k)
        state = np.cumsum(phi_k[:, :, None] * v[:, None, :], axis=0)         # prefix sums of phi(k) v^T
        normaliser = np.cumsum(phi_k, axis=0)
        return np.einsum("nd,nde->ne", phi_q, state) / np.sum(phi_q * normaliser, axis=1, keepdims=True)

    def full(ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = embed[ids]
        q, k, v = x @ w_q, x @ w_k, x @ w_v
        return attend(q, k, v)[-1], k, v

    ids = list(rng.integers(0, 16, prompt))
    for _ in range(tokens):                              # without a cache: every step runs over the whole sequence
        last, _, _ = full(ids)
        counts["full_without_cache"] += 1
        ids.append(int(np.argmax(last @ head)))
    uncached = ids[prompt:]
    ids = ids[:prompt]
    last, keys, values = full(ids)                       # with a cache: the prompt once, then the new token only
    counts["full_with_cache"] += 1
    for step in range(tokens):
        ids.append(int(np.argmax(last @ head)))
        if step == tokens - 1:
            break
        x = embed[ids[-1:]]
        keys, values = np.vstack([keys, x @ w_k]), np.vstack([values, x @ w_v])
        phi_q, phi_k = _elu_plus_one(x @ w_q), _elu_plus_one(keys)
        last = ((phi_q @ (phi_k.T @ values)) / (phi_q @ phi_k.sum(axis=0)))[0]
        counts["incremental_with_cache"] += 1
    same = ids[prompt:] == uncached  # exact token ids; the two orders of summation agree to rounding
    fed_back = {"incremental_with_cache": counts["incremental_with_cache"] + 1}
    return Measurement({**counts, "same_tokens": same}, under=(Condition(
                           "if the last generated token is also run through the model (to cache its K, V)", fed_back),),
                       explanation=
                       f"generating {tokens} tokens after a {prompt}-token prompt: {counts['full_without_cache']} full "
                       f"passes without a cache; with one, {counts['full_with_cache']} full pass over the prompt and "
                       f"{counts['incremental_with_cache']} incremental passes (the last token needs no further pass); "
                       f"both produce {'the same' if same else 'different'} tokens.")


def _beam_search(log_probs: Callable[..., np.ndarray], steps: int, beam: int) -> tuple[tuple[int, ...], float]:
    beams: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    for _ in range(steps):
        grown = [(prefix + (token,), score + float(lp)) for prefix, score in beams
                 for token, lp in enumerate(log_probs(prefix))]
        beams = sorted(grown, key=lambda item: -item[1])[:beam]
    return beams[0]


@claim_check("beam_search_likelihood")
def beam_search_likelihood(beam: int = 2, vocab: int = 3, steps: int = 4, models: int = 5000, seed: int = 0) -> Measurement:
    """Greedy decoding, beam search and exhaustive search on random autoregressive models (a fresh next-token
    distribution, of random sharpness, for every prefix): how often beam search finds a sequence less likely
    than greedy's."""
    rng = _rng(seed)
    worse = better = optimal = 0
    gaps = []
    for _ in range(models):
        table: dict[tuple[int, ...], np.ndarray] = {}
        def log_probs(prefix: tuple[int, ...], table: dict[tuple[int, ...], np.ndarray] = table) -> np.ndarray:
            if prefix not in table:
                table[prefix] = np.log(oracles.softmax(rng.standard_normal(vocab) * rng.uniform(0.0, 5.0)))
            return table[prefix]

        _, greedy = _beam_search(log_probs, steps, 1)
        _, beamed = _beam_search(log_probs, steps, beam)
        _, best = _beam_search(log_probs, steps, vocab**steps)
        worse += beamed < greedy - 1e-12
        better += beamed > greedy + 1e-12
        optimal += beamed > best - 1e-12
        gaps.append(beamed - greedy)
    return Measurement({"beam_never_below_greedy": worse == 0, "beam_at_least_greedy_on_average": float(np.mean(gaps)) >= 0,
                        "beam_always_optimal": optimal == models, "share_beam_worse": worse / models,
                        "share_beam_better": better / models, "mean_log_likelihood_gain": float(np.mean(gaps))},
                       f"over {models} random models (vocabulary {vocab}, {steps} steps), beam search with k = {beam} found "
                       f"a more likely sequence than greedy in {better / models:.1%}, a less likely one in {worse / models:.1%}, "
                       f"the most likely one in {optimal / models:.1%}; mean log-likelihood gain {np.mean(gaps):.3f}.",
                       under=(Condition("on average, not as a guarantee",
                                        {"beam_never_below_greedy": float(np.mean(gaps)) >= 0}),))


@claim_check("torch_transformer_layers")
def torch_transformer_layers() -> Measurement:
    """Encoder and decoder layers of a default torch.nn.Transformer (the original paper's base configuration)."""
    torch = _torch()
    if torch is None:
        return Measurement({"encoder_layers": None, "decoder_layers": None}, "torch is not installed.")
    with warnings.catch_warnings():  # torch warns that nested tensors need batch_first; irrelevant here
        warnings.simplefilter("ignore", UserWarning)
        model = torch.nn.Transformer(device="meta")
    counts = {"encoder_layers": len(model.encoder.layers), "decoder_layers": len(model.decoder.layers),
              "d_model": model.encoder.layers[0].linear1.in_features,
              "heads": model.encoder.layers[0].self_attn.num_heads}
    return Measurement(counts, f"a default torch.nn.Transformer has {counts['encoder_layers']} encoder and "
                               f"{counts['decoder_layers']} decoder layers (d_model {counts['d_model']}, "
                               f"{counts['heads']} heads).")


@claim_check("weight_sharing")
def weight_sharing(layers: int = 4, d_model: int = 32, steps: list[int] | None = None) -> Measurement:
    """Does a torch.nn.TransformerEncoder's stack share parameters between layers, and does torch.nn.RNN share
    its weights across time steps (its parameter count and its weight tensors the same at every length)?"""
    torch = _torch()
    if torch is None:
        return Measurement({"transformer_layers_share_weights": None, "rnn_shares_weights_across_steps": None},
                           "torch is not installed.")
    steps = steps or [5, 50]
    layer = torch.nn.TransformerEncoderLayer(d_model, 4, dim_feedforward=2 * d_model)
    stack = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    storages = {p.data_ptr() for p in stack.parameters()}
    per_layer = len(list(layer.parameters()))
    rnn = torch.nn.RNN(d_model, d_model)
    grads = []
    for length in steps:                       # one W_hh receives the gradient of every step
        rnn.zero_grad()
        out, _ = rnn(torch.randn(length, 1, d_model))
        out.sum().backward()
        grads.append(len([p for p in rnn.parameters() if p.grad is not None]))
    rnn_count = sum(p.numel() for p in rnn.parameters())
    values = {"transformer_layers_share_weights": len(storages) < layers * per_layer,
              "rnn_shares_weights_across_steps": len(set(grads)) == 1 and grads[0] == len(list(rnn.parameters())),
              "distinct_parameter_tensors": len(storages), "tensors_per_layer": per_layer, "rnn_parameters": rnn_count}
    return Measurement(values, f"a {layers}-layer torch.nn.TransformerEncoder holds {len(storages)} distinct parameter "
                               f"tensors ({per_layer} per layer x {layers}: none shared); torch.nn.RNN has {rnn_count:,} "
                               f"parameters whatever the length, the same tensors receiving the gradient of {steps} steps.")


@claim_check("score_function_parameters")
def score_function_parameters(d: int = 64, d_attention: int = 64, n: int = 5, seed: int = 0) -> Measurement:
    """Trainable parameters of additive (Bahdanau) and multiplicative (Luong dot, general) score functions,
    each built and run on real arrays (the arrays a score needs are the ones counted)."""
    rng = _rng(seed)
    decoder, encoder = rng.standard_normal(d), rng.standard_normal((n, d))
    additive = {"W_1": rng.standard_normal((d_attention, d)), "W_2": rng.standard_normal((d_attention, d)),
                "v_a": rng.standard_normal(d_attention)}
    general = {"W": rng.standard_normal((d, d))}
    scores = {
        "additive": np.tanh(additive["W_1"] @ decoder + encoder @ additive["W_2"].T) @ additive["v_a"],
        "dot": encoder @ decoder,
        "general": encoder @ (general["W"].T @ decoder),
    }
    if any(s.shape != (n,) for s in scores.values()):
        raise ArithmeticError("a score function did not give one score per encoder state")
    counts = {"additive_parameters": sum(a.size for a in additive.values()), "dot_parameters": 0,
              "general_parameters": sum(a.size for a in general.values())}
    return Measurement(counts, f"with d = {d} and an attention width of {d_attention}: additive scoring "
                               f"v_a^T tanh(W_1 h_dec + W_2 h_enc) has {counts['additive_parameters']:,} parameters, "
                               f"the dot score none and the general score h_dec^T W h_enc {counts['general_parameters']:,}.")
