"""Checkers for autoregressive decoding: the KV cache, greedy decoding and teacher forcing.

The model is a toy decoder built inside the checker from backend primitives, with random
weights: token embedding plus a learned position table, one causal multi-head attention layer
with a residual, and an output projection to vocabulary logits. The full (recomputing) path calls
``multi_head_attention``; the cached path projects the newest token itself, appends its key and
value to the cache and calls ``attention`` with that single query over the whole cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnspec.case import Case
from nnspec.checkers._draw import qkv
from nnspec.oracles import magnitude as _magnitude
from nnspec.registry import checker
from nnspec.strategies import cast


@checker("kv_cache_incremental_attention", requires=("attention",))
def kv_cache_incremental_attention(case: Case) -> None:
    """Query t attending over cached keys/values 0..t, one step at a time, equals one causal call."""
    q, k, v = qkv(case, self_attention=True)
    full = case.call("attention", q, k, v, is_causal=True)
    steps = [case.call("attention", q[:, :, t : t + 1], k[:, :, : t + 1], v[:, :, : t + 1])
             for t in range(q.shape[2])]
    case.close("step-by-step attention over a growing KV cache against one causal call",
               np.concatenate(steps, axis=2), full.astype(np.float64), magnitude=_magnitude(v))


class ToyDecoder:
    """A one-layer decoder with random weights, run through one backend (see the module docstring)."""

    def __init__(self, case: Case, max_length: int) -> None:
        self.case = case
        self.heads = case.size("heads", (1, 2))
        self.head_dim = case.size("dim", (1, 4))
        self.vocab = case.size("vocab", (3, 12))
        width = self.heads * self.head_dim
        self.width = width
        self.embedding = case.array("embedding", (self.vocab, width), "normal")
        self.positions = case.array("positions", (max_length, width), "normal", scale=0.5)
        self.params = {f"w_{name}": case.array(f"w_{name}", (width, width), "normal", scale=1.0 / np.sqrt(width))
                       for name in "qkvo"}
        self.params.update({f"b_{name}": case.array(f"b_{name}", (width,), "normal", scale=0.1) for name in "qkvo"})
        self.readout = case.array("readout", (self.vocab, width), "normal", scale=2.0 / np.sqrt(width))
        self.p64 = {name: value.astype(np.float64) for name, value in self.params.items()}

    def embed(self, tokens: np.ndarray, start: int = 0) -> np.ndarray:
        """``(B, T)`` token ids -> ``(B, T, M)`` inputs in the example's dtype."""
        x = self.embedding.astype(np.float64)[tokens] + self.positions.astype(np.float64)[start : start + tokens.shape[1]]
        return cast(x, self.case.dtype())

    def logits(self, x: np.ndarray, attended: np.ndarray) -> np.ndarray:
        return (x.astype(np.float64) + attended.astype(np.float64)) @ self.readout.astype(np.float64).T

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        """Logits ``(B, T, V)`` for every position at once: one causal ``multi_head_attention`` call."""
        x = self.embed(tokens)
        attended = self.case.call("multi_head_attention", x, x, self.params, self.heads, is_causal=True)
        return self.logits(x, attended)

    def new_cache(self) -> dict[str, list[np.ndarray]]:
        return {"k": [], "v": []}

    def step(self, cache: dict[str, list[np.ndarray]], token: np.ndarray, position: int) -> np.ndarray:
        """Logits ``(B, V)`` for one new token ``(B,)`` at ``position``, reusing (and extending) the cache."""
        x = self.embed(token[:, None], start=position)  # (B, 1, M)

        def project(name: str) -> np.ndarray:  # (B, 1, M) -> (B, H, 1, M/H), in the example's dtype
            y = x.astype(np.float64) @ self.p64[f"w_{name}"].T + self.p64[f"b_{name}"]
            return cast(y.reshape(y.shape[0], 1, self.heads, self.head_dim).transpose(0, 2, 1, 3), self.case.dtype())

        cache["k"].append(project("k"))
        cache["v"].append(project("v"))
        keys, values = np.concatenate(cache["k"], axis=2), np.concatenate(cache["v"], axis=2)
        heads = self.case.call("attention", project("q"), keys, values).astype(np.float64)
        joined = heads.transpose(0, 2, 1, 3).reshape(x.shape[0], 1, self.width)
        attended = joined @ self.p64["w_o"].T + self.p64["b_o"]
        return self.logits(x, attended)[:, 0]


def _tokens(case: Case, decoder: ToyDecoder, length: int) -> np.ndarray:
    batch = case.size("batch", (1, 2))
    return case.keep("tokens", case.rng.integers(0, decoder.vocab, (batch, length)))


def _logit_scale(logits: np.ndarray) -> float:
    return max(1.0, float(np.max(np.abs(logits), initial=0.0)))


@checker("kv_cache_decoding_equals_recomputation", requires=("attention", "multi_head_attention"))
def kv_cache_decoding_equals_recomputation(case: Case) -> None:
    """Decoding with a KV cache gives, at every step, the logits of recomputing the whole prefix."""
    length = case.size("steps", (1, 8))
    decoder = ToyDecoder(case, length)
    tokens = _tokens(case, decoder, length)
    cache = decoder.new_cache()
    cached = np.stack([decoder.step(cache, tokens[:, t], t) for t in range(length)], axis=1)
    recomputed = np.stack([decoder.forward(tokens[:, : t + 1])[:, -1] for t in range(length)], axis=1)
    case.close("logits decoded with a KV cache against recomputing each prefix", cached, recomputed,
               magnitude=_logit_scale(recomputed))


@checker("teacher_forcing_equals_stepwise", requires=("multi_head_attention",))
def teacher_forcing_equals_stepwise(case: Case) -> None:
    """One causal pass over a known sequence gives, at each position, the logits of running its prefix alone."""
    length = case.size("steps", (1, 8))
    decoder = ToyDecoder(case, length)
    tokens = _tokens(case, decoder, length)
    parallel = decoder.forward(tokens)
    stepwise = np.stack([decoder.forward(tokens[:, : t + 1])[:, -1] for t in range(length)], axis=1)
    case.close("teacher-forced parallel logits against step-by-step prefix logits", parallel, stepwise,
               magnitude=_logit_scale(stepwise))


@checker("greedy_decoding_cache_agrees", requires=("attention", "multi_head_attention"))
def greedy_decoding_cache_agrees(case: Case) -> None:
    """Greedy decoding picks the same tokens with a KV cache as without one.

    Where the two paths pick different tokens, the step is a near tie only if the recomputed
    logits of the two candidates differ by no more than the tolerance; otherwise it is a failure.
    """
    prompt_length = case.size("prompt", (1, 3))
    new_tokens = case.size("steps", (1, 6))
    decoder = ToyDecoder(case, prompt_length + new_tokens)
    prompt = _tokens(case, decoder, prompt_length)
    tolerance = case.tolerance_for()

    plain = prompt.copy()
    plain_logits: list[np.ndarray] = []
    for _ in range(new_tokens):
        logits = decoder.forward(plain)[:, -1]
        plain_logits.append(logits)
        plain = np.concatenate([plain, np.argmax(logits, axis=-1)[:, None]], axis=1)

    cache = decoder.new_cache()
    cached = prompt.copy()
    for position in range(prompt_length - 1):
        decoder.step(cache, prompt[:, position], position)
    for index in range(new_tokens):
        position = prompt_length - 1 + index
        logits = decoder.step(cache, cached[:, position], position)
        chosen = np.argmax(logits, axis=-1)
        expected = plain[:, position + 1]
        if not np.array_equal(chosen, expected):
            reference: Any = plain_logits[index]
            rows = np.arange(chosen.shape[0])
            margin = float(np.max(np.abs(reference[rows, chosen] - reference[rows, expected])))
            allowed = tolerance.atol * _logit_scale(reference) + tolerance.rtol * _logit_scale(reference)
            case.require(margin <= allowed,
                         f"greedy decoding with a KV cache chose tokens {chosen.tolist()} at step {index} where "
                         f"recomputation chose {expected.tolist()} (logit margin {margin:.3g} > {allowed:.3g})",
                         error=margin, tolerance=allowed)
            return  # a genuine near tie: the sequences may part from here on
        cached = np.concatenate([cached, chosen[:, None]], axis=1)
