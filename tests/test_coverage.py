"""Coverage of the documents' questions: sources cannot drift from the question list, every question
is covered or has a recorded reason, and the shipped list matches the documents."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from nnspec import coverage
from nnspec.cli import main as cli_main
from nnspec.documents import DOCUMENTS
from nnspec.spec_loader import Catalogue, Source

SEEDS = Path(__file__).resolve().parent.parent.parent / "shared" / "seeds"


@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"the source documents are not at {SEEDS}")
@pytest.mark.parametrize("title", sorted(DOCUMENTS))
def test_shipped_question_list_matches_the_documents(title: str) -> None:
    parsed = coverage.parse_questions((SEEDS / DOCUMENTS[title]).read_text(encoding="utf-8"))
    assert parsed == coverage.questions()[title], "regenerate with benchmarks/extract_questions.py"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# Doc\n## Part 1\n### Why scale?\nBecause.\n### 2. What next?\n",
         [("Part 1", "Why scale?"), ("Part 1", "2. What next?")]),
        ("Intro\nRNN: 20 Interview Questions\n1\nWhat is an RNN?\n⚡ Easy\nAnswer: ...\n",
         [("RNN: 20 Interview Questions", "1: What is an RNN?")]),
        ("Explore.\nQUESTION 01\nExplain attention.\nDEFINITION:\n", [("", "Explain attention.")]),
    ],
    ids=["headings", "numbered", "question-marker"],
)
def test_parse_questions_reads_each_layout(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(q["section"], q["question"]) for q in coverage.parse_questions(text)] == expected


def test_every_document_has_questions_and_no_duplicates() -> None:
    listed = coverage.questions()
    assert set(listed) == set(DOCUMENTS)
    for title, entries in listed.items():
        texts = [entry["question"] for entry in entries]
        assert len(texts) >= 10, title
        assert len(texts) == len(set(texts)), title


def test_every_property_and_claim_source_names_a_listed_question(catalogue: Catalogue) -> None:
    drift = coverage.unknown_sources(catalogue)
    assert drift == [], "\n".join(f"{d['kind']} {d['id']} ({d['path']}): {d['document']!r} / {d['question']!r}"
                                  for d in drift)


def test_every_question_is_covered_or_has_a_recorded_reason(catalogue: Catalogue) -> None:
    open_questions = [f"{r.document} / {r.question}" for r in coverage.coverage(catalogue) if r.status == "open"]
    assert open_questions == [], "add a property or claim, or a decision in conformance/coverage_decisions.yaml:\n" + \
        "\n".join(open_questions)


def test_decisions_name_listed_questions_and_known_kinds() -> None:
    found, skipped = coverage.decisions()
    assert found and skipped
    assert {decision.kind for decision in found} <= set(coverage.DECISION_KINDS)
    keys = [(decision.document, decision.question) for decision in found]
    assert len(keys) == len(set(keys))


def test_a_misspelt_source_is_reported_as_drift() -> None:
    entry = SimpleNamespace(id="attention.fake", path="spec/fake.yaml",
                            source=[Source("ANN Architecture - Interview Q&A", "Why do we scale by sqrt d_k?")])
    drift = coverage.unknown_sources(SimpleNamespace(properties=[entry], claims=[]))
    assert [(d["kind"], d["id"]) for d in drift] == [("property", "attention.fake")]


def test_coverage_records_which_entries_cite_a_question() -> None:
    question = "Why do we scale by √d_k?"
    entry = SimpleNamespace(id="scaling.fake", path="x", source=[Source("ANN Architecture - Interview Q&A", question)])
    records = coverage.coverage(SimpleNamespace(properties=[], claims=[entry]))
    cited = [r for r in records if r.question == question]
    assert [r.claims for r in cited] == [["scaling.fake"]]
    assert cited[0].status == "covered"
    others = [r for r in records if r.question != question]
    assert all(r.status in ("decided", "open") for r in others)
    assert any(r.status == "open" for r in others)  # without the catalogue, most questions are open


def test_cli_json_summary_adds_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["coverage", "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["unknown_sources"] == []
    for title, row in printed["summary"].items():
        assert row["covered"] + row["decided"] + row["open"] == row["questions"] == len(coverage.questions()[title])
    decided = [q for q in printed["questions"] if q["status"] == "decided"]
    assert decided and all(q["decision"]["kind"] in coverage.DECISION_KINDS for q in decided)


def test_cli_table_lists_questions_with_what_covers_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["coverage"]) == 0
    out = capsys.readouterr().out
    assert "== RNN, Transformers & Attention — Interview Q&A" in out
    assert "      claim    claims.softmax.worked_example_3_0_0" in out
    assert "not checked (duplicate)" in out


def test_a_question_a_claim_answers_is_not_filed_as_uncheckable(catalogue: Catalogue) -> None:
    """A question that a claim cites holds a checkable statement, so it cannot also be recorded as opinion,
    history, advice, analogy or workflow (a duplicate pointer to another question is kept for the record)."""
    cited = {(source.document, source.question) for claim in catalogue.claims for source in claim.source}
    recorded, _ = coverage.decisions()
    wrong = [(d.document, d.question, d.kind) for d in recorded if (d.document, d.question) in cited and d.kind != "duplicate"]
    assert wrong == []


@pytest.mark.parametrize(
    ("question", "phrase"),
    [
        ("What is masked language modeling (MLM)?", "15%"),
        ("20: Why initialize LSTM forget gate bias to 1?", "standard practice"),
        ("Draw transformer encoder and decoder architecture", "6 times"),
    ],
)
def test_statements_that_now_have_claims_are_not_skipped(question: str, phrase: str) -> None:
    _, skipped = coverage.decisions()
    assert not [s for s in skipped if s.question == question and phrase in s.statement]
