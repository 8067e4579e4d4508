"""``nnspec run --shard I/N``: a deterministic, balanced split whose merged shards equal one run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from nnspec.cli import main
from nnspec.errors import NnspecError
from nnspec.reports.results import Record, RunDocument, load
from nnspec.sharding import Shard, pair_cost, parse_shard, partition, stored_durations
from nnspec.spec_loader import load_catalogue

SELECTION = [
    "--backend",
    "numpy",
    "--property",
    "softmax.*",
    "--property",
    "masking.causal.*",
    "--profile",
    "quick",
    "--no-claims",
    "-q",
]
TIMINGS = ("time_s", "compile_s")


@pytest.mark.parametrize(
    ("text", "expected"), [("1/1", Shard(1, 1)), ("2/4", Shard(2, 4)), (" 3/3 ", Shard(3, 3))]
)
def test_parse_shard(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    "text",
    ["0/3", "4/3", "1/0", "2", "a/b", "1/2/3", "-1/2", ""],
    ids=[
        "zero index",
        "index past count",
        "zero count",
        "no count",
        "letters",
        "three parts",
        "negative",
        "empty",
    ],
)
def test_bad_shard_names_the_option_and_value(text: str) -> None:
    with pytest.raises(NnspecError, match=r"--shard expects I/N .*Received: " + re.escape(repr(text))):
        parse_shard(text)


def _costs(count: int) -> dict[tuple[str, str], float]:
    # Uneven costs with ties, so both the longest-first order and its tie-breaks matter.
    return {
        (f"p{index:02d}", "numpy:cpu" if index % 2 else "jax:cpu"): float(1 + (index * 7) % 5)
        for index in range(count)
    }


@pytest.mark.parametrize(("pairs", "shards"), [(1, 1), (5, 2), (17, 4), (30, 7), (8, 8)])
def test_partition_covers_every_pair_once_and_balances(pairs: int, shards: int) -> None:
    costs = _costs(pairs)
    parts = partition(costs, shards)
    assert parts == partition(dict(reversed(list(costs.items()))), shards)  # input order does not matter
    assert sorted(pair for part in parts for pair in part) == sorted(costs)
    assert all(parts), "with at most as many shards as pairs, no shard is empty"
    loads = [sum(costs[pair] for pair in part) for part in parts]
    # Longest-first never leaves two shards further apart than the costliest pair.
    assert max(loads) - min(loads) <= max(costs.values())


def test_more_shards_than_pairs_leaves_the_extra_shards_empty() -> None:
    parts = partition(_costs(3), 5)
    assert [len(part) for part in parts] == [1, 1, 1, 0, 0]


def test_stored_durations_drive_the_split(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    props = [
        catalogue.property(pid)
        for pid in (
            "softmax.attention_weights.rows_sum_to_one",
            "softmax.shift.invariance",
            "softmax.rows.sum_to_one",
        )
    ]
    stored = RunDocument(
        results=[Record(property=props[0].id, backend="numpy:cpu", status="pass", examples=10, time_s=30.0)]
    )
    stored.write(tmp_path / "durations.json")
    durations = stored_durations(tmp_path / "durations.json")
    # Scaled to the examples this run draws: 30 s for 10 examples is 120 s for 40.
    assert pair_cost(props[0], "numpy:cpu", 40, durations) == pytest.approx(120.0)
    costs = {(prop.id, "numpy:cpu"): pair_cost(prop, "numpy:cpu", 40, durations) for prop in props}
    assert partition(costs, 2)[0] == {(props[0].id, "numpy:cpu")}  # the slow pair has a shard to itself


def test_unreadable_durations_name_the_option(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(NnspecError, match=r"--shard-durations: .*bad.json"):
        stored_durations(tmp_path / "bad.json")


def _without_timings(document: RunDocument) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in record.to_json().items() if key not in TIMINGS}
        for record in document.results
    ]


def test_merged_shards_equal_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *SELECTION, "--json", str(tmp_path / "whole.json")]) == 0
    whole = load(tmp_path / "whole.json")
    assert len(whole.results) >= 6
    for durations in ([], ["--shard-durations", str(tmp_path / "whole.json")]):
        shards = []
        for index in (1, 2, 3):
            out = tmp_path / f"shard{index}.json"
            assert main(["run", *SELECTION, "--shard", f"{index}/3", *durations, "--json", str(out)]) == 0
            shards.append(load(out))
            assert shards[-1].results, "every shard of a split with fewer shards than pairs checks something"
        merged_path = tmp_path / "merged.json"
        assert (
            main(
                [
                    "report",
                    *(str(tmp_path / f"shard{i}.json") for i in (1, 2, 3)),
                    "-o",
                    str(tmp_path / "merged.html"),
                    "--json",
                    str(merged_path),
                ]
            )
            == 0
        )
        merged = load(merged_path)
        assert _without_timings(merged) == _without_timings(whole)
        assert merged.properties == whole.properties and merged.status == whole.status == "complete"
        assert not [w for w in merged.warnings if w.startswith("conflict:")]
    capsys.readouterr()


def test_a_shard_beyond_the_pairs_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "empty.json"
    code = main(
        [
            "run",
            "--backend",
            "numpy",
            "--property",
            "softmax.shift.invariance",
            "--profile",
            "quick",
            "--no-claims",
            "--shard",
            "2/2",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    assert "shard 2/2 has no pair: 1 pairs split into 2 shards" in capsys.readouterr().err
    assert json.loads(out.read_text())["results"] == []


def test_bad_shard_and_stray_durations_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "r.json")
    assert main(["run", *SELECTION, "--shard", "4/3", "--json", out]) == 2
    assert "--shard expects I/N" in capsys.readouterr().err
    assert main(["run", *SELECTION, "--shard-durations", out, "--json", out]) == 2
    assert "only read with --shard" in capsys.readouterr().err
