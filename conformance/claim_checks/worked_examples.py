"""Claim checks of the documents' worked examples in words, and of BERT's masking fractions."""

from __future__ import annotations

import math
from typing import Any

from nnspec.claim_checks._common import _torch, _z
from nnspec.claims import Measurement, claim_check


@claim_check("word_positions")
def word_positions(sentence: str) -> Measurement:
    """0-based positions of the words of a sentence split on spaces (each word's first occurrence)."""
    words = sentence.split()
    positions = {word: words.index(word) for word in words}
    return Measurement(positions, f"{words}: " + ", ".join(f"{w} at {p}" for w, p in positions.items()) + ".")


@claim_check("word_distance")
def word_distance(sentence: str, first: str, second: str) -> Measurement:
    """Word count of a sentence and how many positions apart two of its words are."""
    words = sentence.strip(".").split()
    computed = {"words": len(words), "distance": words.index(second) - words.index(first)}
    return Measurement(computed, f"the sentence has {computed['words']} words and {second!r} is "
                                 f"{computed['distance']} positions after {first!r}; subword tokenizers keep these "
                                 f"common words whole.")


@claim_check("masking_fractions")
def masking_fractions(tokens: int = 200_000, vocab: int = 30_000, seed: int = 0, false_alarm: float = 1e-3) -> Measurement:
    """Run Hugging Face's DataCollatorForLanguageModeling (its default settings) on ``tokens`` token ids and
    measure the share selected, and of those the shares turned into [MASK], a random token, or kept."""
    names = ("selected", "mask", "random", "unchanged")
    torch = _torch()
    try:
        from tokenizers import Tokenizer, models
        from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast
    except ImportError:
        return Measurement(dict.fromkeys(names), "transformers (with torch) is not installed, so BERT's masking "
                                                 "recipe as Hugging Face implements it is not run.")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    table = {token: index for index, token in enumerate(specials + [f"w{i}" for i in range(vocab - len(specials))])}
    fast_tokenizer: Any = PreTrainedTokenizerFast
    tokenizer = fast_tokenizer(tokenizer_object=Tokenizer(models.WordLevel(table, unk_token="[UNK]")),
                                        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                        mask_token="[MASK]")
    collator = DataCollatorForLanguageModeling(tokenizer)
    torch.manual_seed(seed)
    ids = torch.randint(len(specials), vocab, (tokens // 500, 500))
    batch = collator([{"input_ids": row} for row in ids])
    selected = batch["labels"] != -100
    out, original = batch["input_ids"][selected], ids[selected]
    count = int(selected.sum())
    shares = {"selected": count / ids.numel(), "mask": float((out == tokenizer.mask_token_id).float().mean()),
              "unchanged": float((out == original).float().mean())}
    shares["random"] = 1 - shares["mask"] - shares["unchanged"]
    bands = {name: _z(false_alarm) * math.sqrt(max(p, 1e-6) * (1 - p) / (ids.numel() if name == "selected" else count))
             for name, p in shares.items()}
    return Measurement(shares, f"DataCollatorForLanguageModeling selected {shares['selected']:.2%} of {ids.numel():,} "
                               f"tokens; of those {shares['mask']:.2%} became [MASK], {shares['random']:.2%} a random "
                               f"token, {shares['unchanged']:.2%} stayed (a random draw of the same token counts as "
                               f"kept); binomial test bands at false-alarm rate {false_alarm:g}.", tolerance=bands)
