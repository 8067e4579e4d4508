"""Spec files: valid ones load, invalid ones fail with the file, line, property, field and value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nnspec.errors import SpecError
from nnspec.spec_loader import load_catalogue, load_file

VALID_PROPERTY = """
  - id: demo.softmax.rows
    title: Rows sum to one
    statement: Softmax rows sum to one.
    level: MUST
    source:
      - {document: "Transformer Architecture (topic-wise interview questions)", question: "What is the role of softmax in the attention mechanism?"}
    check: {name: softmax_rows_sum_to_one}
    inputs:
      batch: [1, 2]
      length: [1, 4]
      dtypes: [float64]
"""


def write_spec(tmp_path: Path, body: str, header: str = "nnspec: 1\ntopic: demo\ntitle: Demo\nproperties:\n") -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(header + textwrap.dedent(body).strip("\n").replace("\n", "\n") + "\n")
    return path


def mutate(replace: str, by: str) -> str:
    assert replace in VALID_PROPERTY
    return VALID_PROPERTY.replace(replace, by)


INVALID = [
    ("unknown-field", mutate("    level: MUST", "    level: MUST\n    colour: blue"),
     r"demo\.yaml.*property 'demo\.softmax\.rows'.*field 'colour'.*Received"),
    ("bad-level", mutate("level: MUST", "level: MUSTN'T"), r"field 'level'.*Received: \"MUSTN'T\""),
    ("missing-check", mutate("    check: {name: softmax_rows_sum_to_one}\n", ""), r"'check' is a required property"),
    ("bad-id", mutate("id: demo.softmax.rows", "id: Demo Softmax"), r"field 'id'.*Received: \"Demo Softmax\""),
    ("bad-dtype", mutate("dtypes: [float64]", "dtypes: [float8]"), r"field 'inputs\.dtypes\.0'.*Received: \"float8\""),
    ("bad-range", mutate("batch: [1, 2]", "batch: [1, 2, 3]"), r"field 'inputs\.batch'"),
    ("unknown-input", mutate("batch: [1, 2]", "batches: [1, 2]"), r"field 'inputs\.batches'"),
    ("unknown-document", mutate('document: "Transformer Architecture (topic-wise interview questions)"',
                                'document: "A blog post"'),
     r"field 'source\.0\.document'.*unknown document.*Received: 'A blog post'"),
    ("unknown-checker", mutate("softmax_rows_sum_to_one", "softmax_rows_sum_to_two"),
     r"field 'check\.name'.*unknown checker.*Received: 'softmax_rows_sum_to_two'"),
    ("unknown-dependency", mutate("    level: MUST", "    level: MUST\n    depends_on: [demo.nothing.here]"),
     r"field 'depends_on\.0'.*Received: 'demo\.nothing\.here'"),
    ("duplicate-id", VALID_PROPERTY + VALID_PROPERTY, r"duplicate property id"),
]


@pytest.mark.parametrize(("body", "message"), [(body, message) for _, body, message in INVALID],
                         ids=[name for name, _, _ in INVALID])
def test_invalid_spec_is_rejected_with_a_precise_message(tmp_path: Path, body: str, message: str) -> None:
    path = write_spec(tmp_path, body)
    with pytest.raises(SpecError, match=message):
        load_catalogue([path])


def test_valid_spec_loads_with_its_line(tmp_path: Path) -> None:
    path = write_spec(tmp_path, VALID_PROPERTY)
    topic, title, properties, claims = load_file(path)
    assert (topic, title, claims) == ("demo", "Demo", [])
    assert [p.id for p in properties] == ["demo.softmax.rows"]
    assert properties[0].line == 5


def test_error_names_the_line(tmp_path: Path) -> None:
    path = write_spec(tmp_path, mutate("level: MUST", "level: maybe"))
    with pytest.raises(SpecError, match=r"demo\.yaml:8") as raised:
        load_file(path)
    assert raised.value.line == 8 and raised.value.field == "level"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write_spec(tmp_path, VALID_PROPERTY + "    inputs: [unclosed\n")
    with pytest.raises(SpecError, match=r"demo\.yaml:\d+.*not valid YAML"):
        load_file(path)


def test_spec_error_is_a_value_error(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "", header="nnspec: 2\ntopic: demo\ntitle: Demo\n")
    with pytest.raises(ValueError, match=r"field 'nnspec'"):
        load_file(path)


def test_unsafe_yaml_is_not_executed(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "", header="!!python/object/apply:os.system ['echo owned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_file(path)


def test_shipped_catalogue_is_valid_and_sorted() -> None:
    catalogue = load_catalogue()
    ids = [p.id for p in catalogue.properties]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert len(ids) >= 20
