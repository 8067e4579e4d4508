"""Spec files: valid ones load, invalid ones fail with the file, line, property, field and value."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nnspec import spec_loader
from nnspec.errors import SpecError
from nnspec.spec_loader import SpecErrors, check_catalogue, load_catalogue, load_file

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


def with_check(check: str) -> str:
    return mutate("check: {name: softmax_rows_sum_to_one}", f"check: {check}")


SECOND_PROPERTY = VALID_PROPERTY.replace("demo.softmax.rows", "demo.softmax.other")


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
    ("unknown-input-suggests", mutate("batch: [1, 2]", "batches: [1, 2]"),
     r"field 'inputs\.batches'.*did you mean 'batch'"),
    ("unknown-param", with_check("{name: lstm_long_horizon_gradient, params: {forget_bais: 8.0}}"),
     r"demo\.yaml:\d+, property 'demo\.softmax\.rows', field 'check\.params\.forget_bais'.*"
     r"did you mean 'forget_bias'.*Received: forget_bais: 8\.0"),
    ("param-on-checker-without-params", with_check("{name: softmax_rows_sum_to_one, params: {axis: 0}}"),
     r"field 'check\.params\.axis'.*takes no parameters"),
    ("mistyped-param", with_check("{name: lstm_long_horizon_gradient, params: {forget_bias: eight}}"),
     r"field 'check\.params\.forget_bias'.*expected a number, not str.*Received: \"eight\""),
    ("bool-is-not-a-number", with_check("{name: lstm_long_horizon_gradient, params: {forget_bias: true}}"),
     r"field 'check\.params\.forget_bias'.*expected a number, not bool"),
    ("param-out-of-range", with_check("{name: lstm_long_horizon_gradient, params: {retention_floor: 2.0}}"),
     r"field 'check\.params\.retention_floor'.*at most 1\.0.*Received: 2\.0"),
    ("param-not-a-choice", with_check("{name: residual_block_matches_oracle, params: {order: pree}}"),
     r"field 'check\.params\.order'.*one of \['pre', 'post'\].*did you mean 'pre'"),
    ("list-item-not-a-choice", with_check("{name: residual_block_matches_oracle, params: {sublayers: [attn]}}"),
     r"field 'check\.params\.sublayers'.*not 'attn'"),
    ("required-param-missing", with_check("{name: sparse_pattern_independence}"),
     r"field 'check\.params'.*requires the parameter 'pattern'"),
    ("unknown-checker-suggests", mutate("softmax_rows_sum_to_one", "softmax_row_sum_to_one"),
     r"unknown checker \(did you mean 'softmax_rows_sum_to_one'\?\)"),
    ("reversed-range", mutate("batch: [1, 2]", "batch: [3, 1]"),
     r"demo\.yaml:\d+, property 'demo\.softmax\.rows', field 'inputs\.batch'.*minimum is larger.*Received: \[3, 1\]"),
    ("reversed-scale", mutate("batch: [1, 2]", "batch: [1, 2]\n      scale: [2.0, 0.5]"),
     r"field 'inputs\.scale'.*minimum is larger.*Received: \[2\.0, 0\.5\]"),
    ("zero-size", mutate("length: [1, 4]", "length: [0, 4]"),
     r"field 'inputs\.length\.0'.*less than the minimum of 1.*Received: 0"),
    ("absurd-size", mutate("length: [1, 4]", "length: [1, 100000000]"),
     r"field 'inputs\.length\.1'.*greater than the maximum of 4096.*Received: 100000000"),
    ("absurd-examples", mutate("    level: MUST", "    level: MUST\n    examples: 100000000"),
     r"field 'examples'.*maximum.*Received: 100000000"),
    ("duplicate-key", mutate("    level: MUST", "    level: MUST\n    level: MAY"),
     r"demo\.yaml:9, property 'demo\.softmax\.rows', field 'level'.*duplicate key 'level' \(first at line 8\)"),
    ("requires-typo", mutate("    level: MUST", "    level: MUST\n    requires: [softmx]"),
     r"field 'requires\.0'.*not a backend primitive \(did you mean 'softmax'\?\).*Received: 'softmx'"),
    ("dependency-typo", mutate("    level: MUST", "    level: MUST\n    depends_on: [demo.softmax.row]"),
     r"field 'depends_on\.0'.*did you mean 'demo\.softmax\.rows'"),
    ("depends-on-itself", mutate("    level: MUST", "    level: MUST\n    depends_on: [demo.softmax.rows]"),
     r"depends_on forms a cycle: demo\.softmax\.rows -> demo\.softmax\.rows"),
    ("depends-on-cycle",
     mutate("    level: MUST", "    level: MUST\n    depends_on: [demo.softmax.other]")
     + SECOND_PROPERTY.replace("    level: MUST", "    level: MUST\n    depends_on: [demo.softmax.rows]"),
     r"cycle: demo\.softmax\.other -> demo\.softmax\.rows -> demo\.softmax\.other"),
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


def test_every_error_of_every_file_is_collected(tmp_path: Path) -> None:
    body = mutate("batch: [1, 2]", "batch: [3, 1]").replace("level: MUST", "level: MUST\n    requires: [softmx]")
    first = write_spec(tmp_path, body)
    second = tmp_path / "other.yaml"
    second.write_text(first.read_text().replace("topic: demo", "topic: other").replace("batch: [3, 1]", "batch: [0, 1]"))
    catalogue, errors, files = check_catalogue([tmp_path])
    assert len(files) == 2 and catalogue.properties == []
    found = sorted((Path(e.path).name, e.field) for e in errors)
    assert found == [("demo.yaml", "inputs.batch"), ("demo.yaml", "requires.0"),
                     ("other.yaml", "inputs.batch.0"), ("other.yaml", "requires.0")]
    with pytest.raises(SpecErrors, match=r"4 errors in the spec files") as raised:
        load_catalogue([tmp_path])
    assert len(raised.value.errors) == 4 and isinstance(raised.value, ValueError)


def test_duplicate_id_across_files_names_both(tmp_path: Path) -> None:
    write_spec(tmp_path, VALID_PROPERTY)
    (tmp_path / "other.yaml").write_text((tmp_path / "demo.yaml").read_text().replace("topic: demo", "topic: other"))
    with pytest.raises(SpecError, match=r"other\.yaml:5, property 'demo\.softmax\.rows', field 'id': "
                                        r"duplicate property id, first defined in .*demo\.yaml"):
        load_catalogue([tmp_path])


def test_alias_bomb_is_refused_at_the_alias_budget(tmp_path: Path) -> None:
    lines = ["nnspec: 1", "topic: bomb", "title: Bomb", 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")  # 9**9 strings once expanded
    with pytest.raises(SpecError, match=r"bomb\.yaml:\d+: more than 100 uses of YAML aliases"):
        load_file(path)


def test_node_budget_counts_expanded_aliases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_loader, "MAX_NODES", 50)
    path = write_spec(tmp_path, "", header="nnspec: 1\ntopic: demo\ntitle: Demo\nx: &x [1, 2, 3, 4, 5, 6, 7, 8]\n"
                                           "y: [*x, *x, *x, *x, *x, *x, *x]\n")
    with pytest.raises(SpecError, match=r"more than 50 YAML nodes, aliases expanded"):
        load_file(path)


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "", header="nnspec: 1\ntopic: demo\ntitle: Demo\nx: &x [1, *x]\n")
    with pytest.raises(SpecError, match=r"demo\.yaml:4: a YAML alias refers to a node that contains it"):
        load_file(path)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "", header="nnspec: 1\ntopic: demo\ntitle: Demo\nx: " + "[" * 200 + "]" * 200 + "\n")
    with pytest.raises(SpecError, match=r"nested more than 64 levels deep"):
        load_file(path)


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write_spec(tmp_path, VALID_PROPERTY)
    path.write_text(path.read_text() + "#" * spec_loader.MAX_FILE_BYTES)
    with pytest.raises(SpecError, match=r"demo\.yaml: the file is larger than the 1048576 bytes"):
        load_file(path)


def test_undecodable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"nnspec: 1\ntopic: demo\ntitle: caf\xe9\n")
    with pytest.raises(SpecError, match=r"latin1\.yaml:3: not UTF-8 text: byte 0xe9 at offset 32"):
        load_file(path)


def test_shipped_anchors_and_aliases_still_load() -> None:
    catalogue = load_catalogue()
    assert "inputs: *sparse_inputs" in (spec_loader.default_spec_dir() / "sparse.yaml").read_text()
    sparse = {p.id: p for p in catalogue.properties if p.check == "sparse_pattern_independence"}
    assert sparse["sparse.dilated_window.independence"].inputs == sparse["sparse.sliding_window.independence"].inputs


# Checker parameter declarations ------------------------------------------------------------------

CHECKERS_DIR = Path(spec_loader.__file__).resolve().parent / "checkers"


def _reads(tree: ast.Module, module: str) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, dict[str, Any]], list[str]]:
    """Per top-level function or class: the ``case.params`` keys it reads, the names it calls, and the
    literal defaults it reads them with; plus every read whose key is not a literal."""
    keys: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    defaults: dict[str, dict[str, Any]] = {}
    opaque: list[str] = []
    for definition in tree.body:
        if not isinstance(definition, (ast.FunctionDef, ast.ClassDef)):
            continue
        name = definition.name
        keys[name], calls[name], defaults[name] = set(), set(), {}
        handled: set[int] = set()
        for node in ast.walk(definition):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                calls[name].add(node.func.id)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                target = node.func.value
                if isinstance(target, ast.Attribute) and target.attr == "params" and ast.unparse(target.value).endswith("case"):
                    handled.add(id(target))
                    if node.args and isinstance(node.args[0], ast.Constant):
                        keys[name].add(node.args[0].value)
                        default = ast.literal_eval(node.args[1]) if len(node.args) > 1 else None
                        defaults[name][node.args[0].value] = default
                    else:
                        opaque.append(f"{module}.{name}: {ast.unparse(node)}")
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "params" \
                    and ast.unparse(node.value.value).endswith("case"):
                handled.add(id(node.value))
                if isinstance(node.slice, ast.Constant):
                    keys[name].add(node.slice.value)
                else:
                    opaque.append(f"{module}.{name}: {ast.unparse(node)}")
        for node in ast.walk(definition):
            if isinstance(node, ast.Attribute) and node.attr == "params" and ast.unparse(node.value).endswith("case") \
                    and id(node) not in handled:
                opaque.append(f"{module}.{name}: {ast.unparse(node)} used other than by .get(KEY) or [KEY]")
    return keys, calls, defaults, opaque


def test_every_parameter_a_checker_reads_is_declared_with_its_default() -> None:
    """An AST scan of the checker modules, following calls into helpers (also across modules)."""
    from nnspec.registry import get

    keys: dict[tuple[str, str], set[str]] = {}
    calls: dict[tuple[str, str], set[tuple[str, str]]] = {}
    defaults: dict[tuple[str, str], dict[str, Any]] = {}
    registered: dict[tuple[str, str], str] = {}
    opaque: list[str] = []
    for path in sorted(CHECKERS_DIR.glob("*.py")):
        module = path.stem
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.asname or alias.name: (node.module.rsplit(".", 1)[-1], alias.name)
                    for node in tree.body if isinstance(node, ast.ImportFrom)
                    and (node.module or "").startswith("nnspec.checkers.") for alias in node.names}
        local_keys, local_calls, local_defaults, local_opaque = _reads(tree, module)
        opaque += local_opaque
        for name in local_keys:
            keys[(module, name)], defaults[(module, name)] = local_keys[name], local_defaults[name]
            calls[(module, name)] = {(module, c) if c in local_keys else imported[c]
                                     for c in local_calls[name] if c in local_keys or c in imported}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                for decorator in node.decorator_list:
                    if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "checker":
                        registered[(module, node.name)] = ast.literal_eval(decorator.args[0])
    assert not opaque, f"checkers read case.params in a way the declarations cannot follow: {opaque}"
    assert len(registered) >= 90

    def reach(start: tuple[str, str]) -> set[tuple[str, str]]:
        seen, todo = {start}, [start]
        while todo:
            for callee in calls.get(todo.pop(), set()):
                if callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
        return seen

    drift = []
    for function, name in sorted(registered.items()):
        reached = reach(function)
        read = set().union(*(keys.get(f, set()) for f in reached))
        declared = get(name).params
        if read != set(declared):
            drift.append(f"{name}: reads {sorted(read)}, declares {sorted(declared)}")
        for f in reached:
            for key, default in defaults.get(f, {}).items():
                if key in declared and not declared[key].required and declared[key].default != default:
                    drift.append(f"{name}: {key} defaults to {default!r} in the body, {declared[key].default!r} declared")
    assert not drift, drift
    assert set(get("lstm_long_horizon_gradient").params) == {"forget_bias", "retention_floor"}


def test_param_declarations_are_checked() -> None:
    from nnspec.errors import NnspecError
    from nnspec.registry import Param, checker

    with pytest.raises(NnspecError, match=r"must be declared with Param"):
        checker("demo_bad_declaration", params={"x": 1.0})  # type: ignore[dict-item]
    with pytest.raises(NnspecError, match=r"kind must be one of .*Received: <class 'dict'>"):
        Param(dict)
    assert Param(float, default=1.0).problem(2) is None  # an integer is a number
    assert Param(int, default=1).problem(True) == "expected an integer, not bool"


def test_third_party_checkers_register_through_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnspec import registry

    class EntryPoint:
        name, value = "demo", "demo_checkers"

        def load(self) -> None:
            @registry.checker("demo_third_party", params={"width": registry.Param(int, default=2, minimum=1)})
            def demo_third_party(case: Any) -> None:
                case.require(int(case.params.get("width", 2)) >= 1, "width")

    groups: list[str] = []
    monkeypatch.setattr(registry, "entry_points", lambda group: groups.append(group) or [EntryPoint()])
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "_CHECKERS", dict(registry._CHECKERS))
    assert "demo_third_party" in registry.checker_names()
    assert groups == ["nnspec.checkers"]
    assert registry.get("demo_third_party").params["width"].problem(0) == "expected at least 1"


def test_a_broken_checker_entry_point_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnspec import registry
    from nnspec.errors import NnspecError

    class EntryPoint:
        name, value = "broken", "missing_module:checkers"

        def load(self) -> None:
            raise ModuleNotFoundError("No module named 'missing_module'")

    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint()])
    monkeypatch.setattr(registry, "_loaded", False)
    with pytest.raises(NnspecError, match=r"nnspec\.checkers entry point 'broken' \(missing_module:checkers\) "
                                          r"could not be loaded: ModuleNotFoundError"):
        registry.checker_names()


def test_every_checker_requires_only_protocol_primitives() -> None:
    from nnspec.backends.base import PRIMITIVES
    from nnspec.registry import checker_names, get

    wrong = {name: get(name).requires for name in checker_names() if not set(get(name).requires) <= set(PRIMITIVES)}
    assert not wrong
