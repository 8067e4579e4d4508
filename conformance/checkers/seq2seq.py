"""Checkers for sequence-to-sequence models: Bahdanau and Luong attention scores, the context
vector, and beam-search decoding over a model given as log-probability tables.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import assume

from nnspec import oracles
from nnspec.case import Case
from nnspec.registry import checker

# -- attention scores and the context vector -----------------------------------------------------


def _decoder_and_encoder(case: Case, same_width: bool) -> tuple[np.ndarray, np.ndarray]:
    batch, length = case.size("batch", (1, 3)), case.size("k_len", (1, 8))
    query_width = case.size("dim", (1, 8))
    key_width = query_width if same_width else case.size("dim_v", (1, 8))
    regime = case.regime()
    return case.array("query", (batch, query_width), regime), case.array("keys", (batch, length, key_width), regime)


@checker("additive_scores_match_formula", requires=("additive_attention_scores",))
def additive_scores_match_formula(case: Case) -> None:
    """Bahdanau: ``e_i = v^T tanh(W_1 s + W_2 h_i)`` for decoder state ``s`` and encoder states ``h_i``."""
    query, keys = _decoder_and_encoder(case, same_width=False)
    attention_width = case.size("hidden", (1, 8))
    params = {
        "w_query": case.array("w_query", (attention_width, query.shape[-1]), "normal"),
        "w_key": case.array("w_key", (attention_width, keys.shape[-1]), "normal"),
        "v": case.array("v", (attention_width,), "normal"),
    }
    p64 = {name: value.astype(np.float64) for name, value in params.items()}
    expected = np.empty(keys.shape[:2])
    for b, i in itertools.product(range(keys.shape[0]), range(keys.shape[1])):
        expected[b, i] = p64["v"] @ np.tanh(p64["w_query"] @ query[b].astype(np.float64)
                                            + p64["w_key"] @ keys[b, i].astype(np.float64))
    scale = float(np.sum(np.abs(p64["v"])))
    case.close("additive scores", case.call("additive_attention_scores", query, keys, params), expected,
               magnitude=scale)


@checker("luong_scores_match_formula", requires=("luong_scores",))
def luong_scores_match_formula(case: Case) -> None:
    """Luong: dot ``s . h_i``, or general ``s^T W h_i``."""
    general = case.flag("general")
    query, keys = _decoder_and_encoder(case, same_width=not general)
    weight = case.array("weight", (query.shape[-1], keys.shape[-1]), "normal") if general else None
    w64 = np.eye(query.shape[-1]) if weight is None else weight.astype(np.float64)
    expected = np.einsum("bd,de,bse->bs", query.astype(np.float64), w64, keys.astype(np.float64))
    magnitude = float(np.max(np.abs(query)) * np.max(np.abs(keys)) * np.sum(np.abs(w64)))
    actual = case.call("luong_scores", query, keys, weight) if general else case.call("luong_scores", query, keys)
    case.close(f"Luong {'general' if general else 'dot'} scores", actual, expected, magnitude=magnitude)


@checker("luong_context_is_convex_combination", requires=("attention", "attention_weights"))
def luong_context_is_convex_combination(case: Case) -> None:
    """``c = sum_i alpha_i h_i`` with ``alpha = softmax(s . h_i)``: weights sum to one, c is in the hull.

    Luong's global attention with the dot score is single-query attention with scale 1 over the
    encoder states (keys = values). The states are offset away from 0 so that a context that
    merely shrinks (weights summing below one) leaves their hull.
    """
    query, keys = _decoder_and_encoder(case, same_width=True)
    offset = float(case.choice("offset", [0.0, 3.0, -3.0]))
    keys = case.keep("keys", keys + np.asarray(offset, keys.dtype))
    q4, k4 = query[:, None, None, :], keys[:, None, :, :]
    weights = case.call("attention_weights", q4, k4, scale=1.0)[:, 0, 0].astype(np.float64)
    context = case.call("attention", q4, k4, k4, scale=1.0)[:, 0, 0].astype(np.float64)
    case.close("sum of the attention weights over the encoder states", weights.sum(axis=-1), np.ones(weights.shape[0]))
    k64 = keys.astype(np.float64)
    spread = float(np.max(np.abs(k64)))
    tolerance = case.tolerance_for()
    slack = tolerance.atol * max(spread, 1.0) + tolerance.rtol * spread
    outside = float(np.max(np.maximum(k64.min(axis=1) - context, context - k64.max(axis=1))))
    case.require(outside <= slack, f"the context vector leaves the box of the encoder states by {outside:.3g}: "
                 "not a convex combination", error=max(outside, 0.0), tolerance=slack)
    alpha = oracles.softmax(np.einsum("bd,bsd->bs", query.astype(np.float64), k64))
    case.close("context against sum_i softmax(s . h_i) h_i", context, np.einsum("bs,bsd->bd", alpha, k64),
               magnitude=spread)


# -- beam search ---------------------------------------------------------------------------------


def _tables(case: Case, context_free: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Normalised log-probability tables: ``initial (V,)`` and ``transitions (T-1, V, V)``."""
    vocab, length = case.size("vocab", (2, 4)), case.size("length", (1, 4))
    initial = np.log(oracles.softmax(case.rng.standard_normal(vocab) * 2.0))
    if context_free:
        rows = np.log(oracles.softmax(case.rng.standard_normal((length - 1, 1, vocab)) * 2.0))
        transitions = np.broadcast_to(rows, (length - 1, vocab, vocab)).copy()
    else:
        transitions = np.log(oracles.softmax(case.rng.standard_normal((length - 1, vocab, vocab)) * 2.0))
    dtype = case.dtype()
    return case.keep("initial", initial.astype(dtype)), case.keep("transitions", transitions.astype(dtype))


def sequence_scores(tokens: np.ndarray, initial: np.ndarray, transitions: np.ndarray) -> np.ndarray:
    """Sum of log-probabilities of each row of ``tokens (K, T)`` under the tables, in float64."""
    tokens = np.asarray(tokens, dtype=np.int64)
    scores = initial.astype(np.float64)[tokens[:, 0]]
    for t in range(tokens.shape[1] - 1):
        scores = scores + transitions.astype(np.float64)[t, tokens[:, t], tokens[:, t + 1]]
    return scores


def exhaustive(initial: np.ndarray, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every sequence and its score, best first."""
    vocab, length = initial.shape[0], transitions.shape[0] + 1
    every = np.array(list(itertools.product(range(vocab), repeat=length)), dtype=np.int64)
    scores = sequence_scores(every, initial, transitions)
    order = np.argsort(-scores, kind="stable")
    return every[order], scores[order]


def _search(case: Case, initial: np.ndarray, transitions: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    tokens, scores = case.call("beam_search", initial, transitions, width)
    tokens = np.asarray(tokens).astype(np.int64)
    expected_rows = min(width, initial.shape[0] ** (transitions.shape[0] + 1))
    case.require(tokens.shape == (expected_rows, transitions.shape[0] + 1),
                 f"expected tokens of shape {(expected_rows, transitions.shape[0] + 1)}. Received: {tokens.shape}")
    return tokens, np.asarray(scores, np.float64)


def _margin_floor(case: Case) -> float:
    return 1e-9 if case.dtype() == "float64" else 1e-3


@checker("beam_width_one_is_greedy", requires=("beam_search",))
def beam_width_one_is_greedy(case: Case) -> None:
    """With width 1, beam search returns the greedy sequence (the best next token at every step)."""
    initial, transitions = _tables(case)
    i64, t64 = initial.astype(np.float64), transitions.astype(np.float64)
    greedy, margins = [int(np.argmax(i64))], [np.diff(np.sort(i64))[-1] if i64.size > 1 else np.inf]
    for table in t64:
        row = table[greedy[-1]]
        greedy.append(int(np.argmax(row)))
        margins.append(np.diff(np.sort(row))[-1])
    assume(min(margins) > _margin_floor(case))  # a near tie may go either way in finite precision
    tokens, scores = _search(case, initial, transitions, 1)
    case.require(tokens[0].tolist() == greedy, f"width 1 returned {tokens[0].tolist()}, greedy decoding gives {greedy}")
    case.close("score of the width-1 result", scores, sequence_scores(np.array([greedy]), initial, transitions))


@checker("beam_scores_are_sequence_log_probs", requires=("beam_search",))
def beam_scores_are_sequence_log_probs(case: Case) -> None:
    """Returned scores are the returned sequences' summed log-probabilities, best first, no duplicates."""
    initial, transitions = _tables(case)
    width = case.size("beam_width", (1, 8))
    tokens, scores = _search(case, initial, transitions, width)
    case.close("returned scores against the tables' sums", scores, sequence_scores(tokens, initial, transitions))
    case.require(len({tuple(row) for row in tokens.tolist()}) == len(tokens), f"duplicate sequences in {tokens.tolist()}")
    slack = 4 * case.epsilon() * float(np.max(np.abs(scores), initial=1.0))
    case.require(bool(np.all(np.diff(scores) <= slack)), f"scores are not best first: {scores.tolist()}")


@checker("beam_wide_is_exhaustive", requires=("beam_search",))
def beam_wide_is_exhaustive(case: Case) -> None:
    """With width ``k >= V^(T-1)`` nothing is pruned before the last step: the exact top-k come back."""
    initial, transitions = _tables(case)
    vocab, length = initial.shape[0], transitions.shape[0] + 1
    width = vocab ** (length - 1) + int(case.choice("extra", [0, 1, vocab]))
    tokens, scores = _search(case, initial, transitions, width)
    _, best_scores = exhaustive(initial, transitions)
    case.close(f"scores of width {width} against the exhaustive top {len(scores)}", scores, best_scores[: len(scores)])
    case.close("returned scores against the tables' sums", scores, sequence_scores(tokens, initial, transitions))


@checker("beam_exact_for_context_free_models", requires=("beam_search",))
def beam_exact_for_context_free_models(case: Case) -> None:
    """When each step's log-probabilities ignore the prefix, every width returns the exact top-k.

    A sequence in the top k has at most ``k - 1`` strictly better prefixes of its length (each
    would give a strictly better sequence with the same suffix), so it is never pruned.
    """
    initial, transitions = _tables(case, context_free=True)
    width = case.size("beam_width", (1, 8))
    tokens, scores = _search(case, initial, transitions, width)
    _, best_scores = exhaustive(initial, transitions)
    case.close(f"scores of width {width} against the exhaustive top {len(scores)}", scores, best_scores[: len(scores)])
    case.close("returned scores against the tables' sums", scores, sequence_scores(tokens, initial, transitions))
