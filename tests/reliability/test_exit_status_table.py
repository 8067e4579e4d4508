"""README's exit-status table matches what ``nnspec run`` does, row by row."""

from __future__ import annotations

import re
from pathlib import Path

from tests.reliability.conftest import REPOSITORY, nnspec

F = "tests.reliability.faulty:"
ONE = ["-p", "softmax.rows.sum_to_one", "--max-examples", "2", "--no-claims", "-q"]

#: For each code of the table, a run that must end with it.
RUNS = {
    0: ["run", "-b", "numpy", *ONE],
    1: ["run", "-b", F + "OsExit", *ONE],
    2: ["run", "-b", "numpy", "--topic", "nosuch", *ONE],
}


def readme_codes() -> dict[int, str]:
    text = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = text.split("## Exit status", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d) \| (.+) \|$", section, re.MULTILINE)}


def test_readme_table_lists_exactly_the_codes_the_runner_defines() -> None:
    from nnspec import runner

    codes = readme_codes()
    assert sorted(codes) == sorted({runner.EXIT_PASSED, runner.EXIT_FAILED, runner.EXIT_USAGE,
                                    runner.EXIT_INCOMPLETE})
    assert "interrupted" in codes[runner.EXIT_INCOMPLETE]
    assert "MUST" in codes[runner.EXIT_FAILED] and "MUST" in codes[runner.EXIT_PASSED]
    assert "usage" in codes[runner.EXIT_USAGE]


def test_each_code_of_the_table_is_what_a_run_returns(tmp_path: Path) -> None:
    codes = readme_codes()
    for code, args in RUNS.items():
        folder = tmp_path / str(code)
        folder.mkdir()
        outcome = nnspec(args, folder)
        assert outcome.code == code, (codes[code], outcome.out)
    # Code 3 (interrupted) is exercised by test_runs.py::test_interrupted_run_writes_every_output.
