"""Regenerate ``conformance/questions.json``: the question titles of the five source documents.

Only the titles are shipped (``nnspec coverage`` needs them to list what each question is covered
by); the documents themselves stay out of the package. Run from the repository root:

    .venv/bin/python benchmarks/extract_questions.py [SEEDS_DIR]

SEEDS_DIR defaults to ``../shared/seeds`` beside the repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nnspec.coverage import parse_questions
from nnspec.documents import DOCUMENTS

REPOSITORY = Path(__file__).resolve().parent.parent


def extract(seeds: Path) -> dict[str, list[dict[str, str]]]:
    return {title: parse_questions((seeds / filename).read_text(encoding="utf-8"))
            for title, filename in DOCUMENTS.items()}


def main() -> None:
    seeds = Path(sys.argv[1]) if len(sys.argv) > 1 else REPOSITORY.parent / "shared" / "seeds"
    listing = extract(seeds)
    target = REPOSITORY / "conformance" / "questions.json"
    target.write_text(json.dumps(listing, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{target}: " + ", ".join(f"{len(q)} from {title!r}" for title, q in listing.items()))


if __name__ == "__main__":
    main()
