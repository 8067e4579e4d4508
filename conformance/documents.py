"""The five source documents the specifications formalise, by title."""

from __future__ import annotations

#: Title as a spec's ``source.document`` names it -> the file in ``shared/seeds/``.
DOCUMENTS: dict[str, str] = {
    "ANN Architecture - Interview Q&A": "000_3d34413d690102c6.txt",
    "RNN, Transformers & Attention — Interview Q&A": "001_91856a749d1f1b73.txt",
    "Transformer Architecture Interview Guide": "002_cf28a3dabc43edc9.txt",
    "Day 31: Transformers - Interview Questions": "003_869128102d8f8592.txt",
    "Transformer Architecture (topic-wise interview questions)": "004_1740e54aa1063e74.txt",
}
