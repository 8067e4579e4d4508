"""Which of the documents' questions the catalogue covers, and why the rest are not checked.

Every property and claim names its sources (document title and question text). ``nnspec coverage``
lists, per document and question, the properties and claims that cite it; for a question nobody
cites, the decision recorded in ``coverage_decisions.yaml`` says why it holds nothing checkable
(opinion, history, advice, a method named only in passing, an empirical result that needs a trained
model or hardware, or a duplicate of another question).

The question list ships as ``questions.json`` (titles only, not the documents' text). It is
generated from the documents by ``benchmarks/extract_questions.py`` with :func:`parse_questions`.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from nnspec.documents import DOCUMENTS
from nnspec.errors import SpecError

#: Why a question holds nothing to check.
DECISION_KINDS = {
    "opinion": "a judgement or recommendation, not a mathematical statement",
    "history": "who introduced what, which models use what: facts about the literature, not computable",
    "advice": "training or design advice (hyperparameters, recipes) whose effect needs experiments",
    "named_in_passing": "methods named without a statement precise enough to check",
    "empirical": "a result that needs a trained model, a data set or a hardware benchmark",
    "duplicate": "the document refers to another of its own questions for the answer",
    "analogy": "an intuition or analogy (search engine, database lookup), not a statement to compute",
    "workflow": "describes a procedure (data flow, shapes, decoding loop) with no mathematical claim beyond those checked elsewhere",
}

_QUESTION_NUMBER = re.compile(r"^\d{1,2}$")
_QUESTION_MARKER = re.compile(r"^QUESTION \d+$")


def parse_questions(text: str) -> list[dict[str, str]]:
    """The questions of one document, in order, as the specs cite them: ``{section, question}``.

    Three layouts occur: Markdown headings (``### 4. Why ...``, kept as written), a number on its
    own line followed by the question (cited as ``"4: Why ..."``), and ``QUESTION 04`` followed by
    the question (cited as the question alone).
    """
    lines = [line.strip() for line in text.splitlines()]
    questions: list[dict[str, str]] = []
    section = ""
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("### "):
            questions.append({"section": section, "question": line[4:].strip()})
        elif line.endswith("Interview Questions") and not line.startswith("#"):
            section = line
        elif _QUESTION_MARKER.match(line) and following:
            questions.append({"section": section, "question": following})
        elif _QUESTION_NUMBER.match(line) and following:
            questions.append({"section": section, "question": f"{line}: {following}"})
    return questions


@cache
def questions() -> dict[str, list[dict[str, str]]]:
    """The shipped question list: document title -> ``[{section, question}, ...]``."""
    text = resources.files("nnspec").joinpath("questions.json").read_text(encoding="utf-8")
    loaded: dict[str, list[dict[str, str]]] = json.loads(text)
    return loaded


@dataclass(frozen=True)
class Decision:
    document: str
    question: str
    kind: str
    why: str


@dataclass(frozen=True)
class SkippedClaim:
    document: str
    question: str
    statement: str
    why: str


@cache
def decisions() -> tuple[tuple[Decision, ...], tuple[SkippedClaim, ...]]:
    """The recorded decisions: questions with nothing to check, and claims left unchecked, with reasons."""
    name = "coverage_decisions.yaml"
    data = yaml.safe_load(resources.files("nnspec").joinpath(name).read_text(encoding="utf-8"))
    known = questions()
    found: list[Decision] = []
    for index, raw in enumerate(data.get("questions", [])):
        _require_question(known, raw, name, f"questions.{index}")
        if raw.get("kind") not in DECISION_KINDS:
            raise SpecError(f"expected a kind among {sorted(DECISION_KINDS)}. Received: {raw.get('kind')!r}",
                            path=name, field=f"questions.{index}.kind")
        found.append(Decision(raw["document"], raw["question"], raw["kind"], raw["why"].strip()))
    skipped: list[SkippedClaim] = []
    for index, raw in enumerate(data.get("skipped_claims", [])):
        _require_question(known, raw, name, f"skipped_claims.{index}")
        skipped.append(SkippedClaim(raw["document"], raw["question"], raw["statement"].strip(), raw["why"].strip()))
    return tuple(found), tuple(skipped)


def _require_question(known: dict[str, list[dict[str, str]]], raw: dict[str, Any], path: str, where: str) -> None:
    if raw.get("document") not in known:
        raise SpecError(f"unknown document; expected one of {sorted(known)}. Received: {raw.get('document')!r}",
                        path=path, field=f"{where}.document")
    if raw.get("question") not in {q["question"] for q in known[raw["document"]]}:
        raise SpecError(f"no such question in {raw['document']!r}. Received: {raw.get('question')!r}",
                        path=path, field=f"{where}.question")


@dataclass
class QuestionCoverage:
    document: str
    section: str
    question: str
    properties: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    decision: Decision | None = None
    skipped: list[SkippedClaim] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``covered`` (cited by a property or claim), ``decided`` (reason recorded) or ``open``."""
        if self.properties or self.claims:
            return "covered"
        return "decided" if self.decision else "open"

    def as_dict(self) -> dict[str, Any]:
        return {
            "document": self.document, "section": self.section, "question": self.question, "status": self.status,
            "properties": self.properties, "claims": self.claims,
            "decision": {"kind": self.decision.kind, "why": self.decision.why} if self.decision else None,
            "skipped_claims": [{"statement": s.statement, "why": s.why} for s in self.skipped],
        }


def unknown_sources(catalogue: Any) -> list[dict[str, str]]:
    """Sources of properties and claims that name no question in the question list (drift)."""
    known = questions()
    wrong = []
    for kind, entries in (("property", catalogue.properties), ("claim", catalogue.claims)):
        for entry in entries:
            for source in entry.source:
                listed = {q["question"] for q in known.get(source.document, [])}
                if source.question not in listed:
                    wrong.append({"kind": kind, "id": entry.id, "document": source.document,
                                  "question": source.question, "path": entry.path})
    return wrong


def coverage(catalogue: Any) -> list[QuestionCoverage]:
    """One record per question of every document, in document order."""
    records = {(document, q["question"]): QuestionCoverage(document, q["section"], q["question"])
               for document in DOCUMENTS for q in questions().get(document, [])}
    for attribute, entries in (("properties", catalogue.properties), ("claims", catalogue.claims)):
        for entry in sorted(entries, key=lambda e: e.id):
            for source in entry.source:
                record = records.get((source.document, source.question))
                if record is not None and entry.id not in getattr(record, attribute):
                    getattr(record, attribute).append(entry.id)
    found, skipped = decisions()
    for decision in found:
        records[(decision.document, decision.question)].decision = decision
    for claim in skipped:
        records[(claim.document, claim.question)].skipped.append(claim)
    return list(records.values())


def summary(records: list[QuestionCoverage]) -> dict[str, dict[str, int]]:
    """Per document: how many questions are covered, decided and open."""
    table: dict[str, dict[str, int]] = {}
    for record in records:
        row = table.setdefault(record.document, {"questions": 0, "covered": 0, "decided": 0, "open": 0})
        row["questions"] += 1
        row[record.status] += 1
    return table


def main(args: argparse.Namespace) -> int:
    """``nnspec coverage``: per document and question, what covers it or why nothing does."""
    from nnspec.spec_loader import load_catalogue

    catalogue = load_catalogue(args.spec)
    records, drift = coverage(catalogue), unknown_sources(catalogue)
    if args.format == "json":
        print(json.dumps({"summary": summary(records), "questions": [r.as_dict() for r in records],
                          "unknown_sources": drift}, indent=1, ensure_ascii=False))
        return 1 if drift else 0
    document = None
    for record in records:
        if record.document != document:
            document = record.document
            print(f"\n== {document}")
        mark = {"covered": "+", "decided": "-", "open": "?"}[record.status]
        print(f"{mark} {record.question}")
        for property_id in record.properties:
            print(f"      property {property_id}")
        for claim_id in record.claims:
            print(f"      claim    {claim_id}")
        if record.decision and record.status == "decided":
            print(f"      not checked ({record.decision.kind}): {record.decision.why}")
        for skipped in record.skipped:
            print(f"      claim not checked: {skipped.statement} ({skipped.why})")
    print()
    for title, row in summary(records).items():
        print(f"{title}: {row['covered']} covered, {row['decided']} with nothing to check, "
              f"{row['open']} open, of {row['questions']}")
    for wrong in drift:
        print(f"unknown source: {wrong['kind']} {wrong['id']} ({wrong['path']}) cites {wrong['document']!r} / "
              f"{wrong['question']!r}, which is not a question of that document")
    return 1 if drift else 0

