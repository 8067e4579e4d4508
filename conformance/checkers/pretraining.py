"""Checkers for BERT's masked-LM corruption: which tokens are selected and what they become.

The rates are judged with exact binomial tests (``scipy.stats.binomtest``). Given ``m`` selected
tokens that never equal ``mask_id``, each selected token independently becomes ``mask_id`` with
probability ``0.8 + 0.1 / V``, stays itself with ``0.1 + 0.1 / V`` (the random replacement is
uniform over all ``V`` ids, so it can draw either), and becomes some other id with
``0.1 (V - 2) / V``. Each category count is exactly binomial given ``m``; the three tests share
the example's false-alarm rate by Bonferroni, so the stated rate is an upper bound.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from nnspec.case import Case
from nnspec.registry import Param, checker

#: What every checker that corrupts through ``_corrupt`` reads from ``check.params``.
CORRUPTION_PARAMS = {"tokens": Param(int, default=4096, minimum=1), "mask_id_not_last": Param(bool, default=None)}


def _corrupt(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    samples = int(case.prop.statistical.get("samples", case.params.get("tokens", 4096)))
    vocab = case.size("vocab", (5, 30000))
    # The uniformity check keeps the last id a regular token (mask_id 0 or mid-vocabulary), so a
    # replacement draw that can never reach V - 1 shows.
    options = [0, vocab // 2] if case.params.get("mask_id_not_last") else [vocab - 1, 0]
    mask_id = int(case.choice("mask_id", options))
    rows = 64
    # Input text never holds the mask id itself.
    tokens = case.rng.integers(0, vocab - 1, (rows, max(1, samples // rows))).astype(np.int64)
    tokens = case.keep("tokens", np.where(tokens >= mask_id, tokens + 1, tokens))
    seed = int(case.rng.integers(0, 2**31 - 1))
    case.drawn["corruption_seed"] = seed
    corrupted, selected = case.call("mlm_corrupt", tokens, vocab, mask_id, seed)
    corrupted = np.asarray(corrupted).astype(np.int64)
    selected = np.asarray(selected).astype(bool)
    case.require(corrupted.shape == tokens.shape and selected.shape == tokens.shape,
                 f"expected corrupted and selected of shape {tokens.shape}. "
                 f"Received: {corrupted.shape} and {selected.shape}")
    return tokens, corrupted, selected, vocab, mask_id


@checker("mlm_unselected_unchanged", requires=("mlm_corrupt",), params=CORRUPTION_PARAMS)
def mlm_unselected_unchanged(case: Case) -> None:
    """Unselected tokens are exactly unchanged, and every output is a valid id."""
    tokens, corrupted, selected, vocab, _ = _corrupt(case)
    changed = int(np.sum((corrupted != tokens) & ~selected))
    case.require(changed == 0, f"{changed} tokens changed without being selected", error=float(changed), tolerance=0.0)
    invalid = int(np.sum((corrupted < 0) | (corrupted >= vocab)))
    case.require(invalid == 0, f"{invalid} corrupted tokens are outside 0 .. {vocab - 1}")


@checker("mlm_selection_rate", requires=("mlm_corrupt",), statistical=True, params=CORRUPTION_PARAMS)
def mlm_selection_rate(case: Case) -> None:
    """Each token is selected independently with probability 0.15 (exact binomial test)."""
    _, _, selected, _, _ = _corrupt(case)
    count, total = int(selected.sum()), selected.size
    p_value = stats.binomtest(count, total, 0.15).pvalue
    case.significance(f"selected {count} of {total} tokens (expected rate 0.15)", p_value, count / total)


@checker("mlm_replacement_split", requires=("mlm_corrupt",), statistical=True, params=CORRUPTION_PARAMS)
def mlm_replacement_split(case: Case) -> None:
    """Selected tokens become [MASK] 80%, a uniform random id 10%, stay unchanged 10% (exact binomial tests)."""
    tokens, corrupted, selected, vocab, mask_id = _corrupt(case)
    chosen_before, chosen_after = tokens[selected], corrupted[selected]
    selected_count = int(selected.sum())
    counts = {
        "[MASK]": int(np.sum(chosen_after == mask_id)),
        "unchanged": int(np.sum(chosen_after == chosen_before)),
        "another id": int(np.sum((chosen_after != mask_id) & (chosen_after != chosen_before))),
    }
    rates = {"[MASK]": 0.8 + 0.1 / vocab, "unchanged": 0.1 + 0.1 / vocab, "another id": 0.1 * (vocab - 2) / vocab}
    p_values = {name: stats.binomtest(counts[name], max(selected_count, 1), rates[name]).pvalue for name in counts}
    worst = min(p_values, key=lambda name: p_values[name])
    observed = counts[worst] / max(selected_count, 1)
    case.significance(f"of {selected_count} selected tokens, {counts[worst]} became {worst} "
                      f"(observed share {observed:.4f}, expected {rates[worst]:.4f}; all counts {counts})",
                      min(1.0, 3.0 * p_values[worst]), observed)


# mask_id_not_last (read by _corrupt): the mask id is drawn from 0 and V // 2, never V - 1.
@checker("mlm_replacement_uniform", requires=("mlm_corrupt",), statistical=True, params=CORRUPTION_PARAMS)
def mlm_replacement_uniform(case: Case) -> None:
    """Random replacements are uniform over every id 0 .. V-1, the last included (Pearson chi-squared).

    A selected token that became neither [MASK] nor itself was replaced by an id drawn uniformly
    from all V ids and landing on neither its original nor ``mask_id``: so given its original
    ``o``, it is uniform over the other ``V - 2`` ids. Each id's expected count is the sum of
    ``1 / (V - 2)`` over the replaced tokens whose original is not that id.
    """
    tokens, corrupted, selected, vocab, mask_id = _corrupt(case)
    before, after = tokens[selected], corrupted[selected]
    replaced = (after != mask_id) & (after != before)
    originals, values = before[replaced], after[replaced]
    case.require(len(values) > 0, "no selected token was replaced by a random id")
    ids = np.array([i for i in range(vocab) if i != mask_id])
    observed = np.array([np.sum(values == i) for i in ids], dtype=np.float64)
    expected = np.array([np.sum(originals != i) for i in ids], dtype=np.float64) / (vocab - 2)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    p_value = float(stats.chi2.sf(statistic, len(ids) - 1))
    rarest = int(ids[int(np.argmin(observed / expected))])
    case.significance(f"{len(values)} random replacements over {vocab} ids (id {rarest} drawn "
                      f"{int(observed[ids == rarest][0])} times, expected {float(expected[ids == rarest][0]):.1f})",
                      p_value, statistic)


@checker("mlm_selection_per_row", requires=("mlm_corrupt",), statistical=True)
def mlm_selection_per_row(case: Case) -> None:
    """Selection is independent per token, so per-row counts are binomial: their dispersion across
    rows, over several sequence lengths, is that of Binomial(L, 0.15) (two-sided chi-squared)."""
    vocab = case.size("vocab", (5, 30000))
    rows = int(case.prop.statistical.get("samples", 2048))
    statistic, df = 0.0, 0
    lengths = []
    for call in range(4):
        length = int(case.rng.integers(4, 257))
        lengths.append(length)
        tokens = case.rng.integers(1, vocab, (rows, length)).astype(np.int64)
        seed = int(case.rng.integers(0, 2**31 - 1))
        _, selected = case.call("mlm_corrupt", tokens, vocab, 0, seed + call)
        counts = np.asarray(selected).astype(bool).sum(axis=1).astype(np.float64)
        mean, variance = 0.15 * length, 0.15 * 0.85 * length
        statistic += float(np.sum((counts - mean) ** 2) / variance)
        df += rows
    case.drawn["lengths"] = lengths
    lower, upper = stats.chi2.cdf(statistic, df), stats.chi2.sf(statistic, df)
    case.significance(f"dispersion of per-row selection counts over lengths {lengths}: statistic {statistic:.1f} "
                      f"on {df} rows (expected about {df})", min(1.0, 2.0 * min(lower, upper)), statistic / df)
