"""Splitting one run's (property, target) pairs into shards that run on separate machines.

``nnspec run --shard I/N`` runs shard I of N (1-based). Every shard of a run computes the same
partition, so the shards together hold each pair exactly once, and ``nnspec report`` (or
:func:`nnspec.reports.results.merge`) joins their documents into the document one run would have
written, timings aside. The partition depends only on the pairs (the catalogue, the property
selection and the targets), the profile, and the durations it is balanced by; every shard must be
given the same of each.

Balancing is the greedy longest-first rule: pairs are taken from the most to the least costly
(ties by property id, then target) and each goes to the shard with the least cost so far (ties to
the lowest shard number). A pair's cost is its time in a stored results document
(``--shard-durations``, any earlier run's ``.json`` or ``.jsonl``), scaled to the examples this run
will draw; a pair the document lacks gets :func:`static_cost`. With N at most the number of pairs,
no shard is empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nnspec import registry
from nnspec.errors import NnspecError
from nnspec.runner import RunOptions, RunPlan, examples_for
from nnspec.spec_loader import Property

_SHARD = re.compile(r"^(?P<index>\d+)/(?P<count>\d+)$")
#: Rough seconds per example and per pair (setup, and for JAX compiling) by backend family,
#: measured on a 2-core CPU; only their proportions matter for balancing.
_PER_EXAMPLE = {"numpy": 0.004, "torch": 0.008, "jax": 0.012}
_PER_PAIR = {"numpy": 0.02, "torch": 0.05, "jax": 0.5}
#: A statistical example draws thousands of samples.
_STATISTICAL_FACTOR = 40.0
#: No pair costs nothing, so no shard stays empty while another holds two pairs.
_FLOOR = 1e-3


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/4"`` as a :class:`Shard`; an :class:`NnspecError` naming the option and value otherwise."""
    match = _SHARD.match(text.strip())
    if match is None:
        raise NnspecError(f"--shard expects I/N with 1 <= I <= N, e.g. 2/4. Received: {text!r}")
    shard = Shard(int(match["index"]), int(match["count"]))
    if not 1 <= shard.index <= shard.count:
        raise NnspecError(
            f"--shard expects I/N with 1 <= I <= N (shards are numbered from 1). Received: {text!r}"
        )
    return shard


def static_cost(prop: Property, target: str, examples: int) -> float:
    """An estimate, in seconds, of one pair with no stored duration: its examples and its backend family."""
    family = target.split(":")[0]
    per_example = _PER_EXAMPLE.get(family, _PER_EXAMPLE["torch"])
    if registry.get(prop.check).statistical:
        per_example *= _STATISTICAL_FACTOR
    return _PER_PAIR.get(family, _PER_PAIR["torch"]) + per_example * examples


def stored_durations(path: str | Path) -> dict[tuple[str, str], tuple[float, int]]:
    """(property, target) -> (seconds, examples) from a results document or records stream.

    Records that ran no example (skips, not-applicable pairs) are kept with their time too: they
    are cheap, which is what balancing needs to know.
    """
    from nnspec.reports.results import load

    try:
        document = load(path)
    except NnspecError as error:
        raise NnspecError(f"--shard-durations: {error}") from None
    return {(r.property, r.backend): (float(r.time_s), int(r.examples)) for r in document.results}


def pair_cost(
    prop: Property, target: str, examples: int, durations: Mapping[tuple[str, str], tuple[float, int]]
) -> float:
    """The cost of one pair: its stored time scaled to ``examples``, else :func:`static_cost`."""
    stored = durations.get((prop.id, target))
    if stored is None:
        return max(static_cost(prop, target, examples), _FLOOR)
    seconds, ran = stored
    if ran > 0 and examples > 0:
        seconds *= examples / ran
    return max(seconds, _FLOOR)


def partition(costs: Mapping[tuple[str, str], float], count: int) -> list[set[tuple[str, str]]]:
    """Split the pairs into ``count`` sets of about equal total cost, deterministically."""
    shards: list[set[tuple[str, str]]] = [set() for _ in range(count)]
    loads = [0.0] * count
    for pair in sorted(costs, key=lambda key: (-costs[key], key)):
        lightest = min(range(count), key=lambda number: (loads[number], number))
        shards[lightest].add(pair)
        loads[lightest] += costs[pair]
    return shards


def select(costs: Mapping[tuple[str, str], float], shard: Shard) -> set[tuple[str, str]]:
    """The pairs of one shard."""
    return partition(costs, shard.count)[shard.index - 1]


def restrict(
    plan: RunPlan, options: RunOptions, shard: Shard, durations_path: str | Path | None = None
) -> int:
    """Narrow ``plan`` to the pairs of ``shard``; returns how many pairs the whole run has."""
    durations = stored_durations(durations_path) if durations_path else {}
    costs = {}
    for prop, _, target in plan.pairs():
        examples = examples_for(prop, options, registry.get(prop.check).statistical)
        costs[(prop.id, target.target)] = pair_cost(prop, target.target, examples, durations)
    plan.selected = select(costs, shard)
    return len(costs)
