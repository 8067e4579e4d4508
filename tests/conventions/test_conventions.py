"""No convention false alarms: correct implementations of other conventions pass what they should.

Each implementation in :mod:`tests.conventions.implementations` is run on every MUST property
that exercises the primitive it changes, and on the MAY properties that name its convention.
It must pass them all, except the ones listed in ``LEGITIMATE_FAILURES`` with the reason: those
state the protocol's own convention, which the implementation contradicts by design, and the
test checks that they do fail (so the list cannot go stale).
"""

from __future__ import annotations

import pytest

from nnspec import registry
from nnspec.runner import run_property
from nnspec.spec_loader import Catalogue, Property
from tests.conftest import quick_options
from tests.conventions import implementations as conventions

#: implementation -> (primitives whose properties it must pass, {property: why it legitimately fails})
CASES: dict[type, tuple[tuple[str, ...], dict[str, str]]] = {
    conventions.RotateHalfRope: (("rope",), {
        "positional.rope.matches_formula": "states the adjacent (x[2i], x[2i+1]) pairing of the protocol",
    }),
    conventions.BottomRightCausal: (("attention", "attention_weights", "multi_head_attention"), {
        "masking.causal.alignment_when_lengths_differ": "a MAY property naming top-left alignment, the protocol's",
    }),
    conventions.AuthorsAlibiSlopes: (("alibi_bias",), {}),
    conventions.PaddedOutputsAsComputed: (("lstm_sequence",), {}),
    conventions.OtherGateOrders: (("lstm_cell", "gru_cell"), {}),
}


def exercised(catalogue: Catalogue, primitives: tuple[str, ...], failures: dict[str, str]) -> list[Property]:
    chosen = []
    for prop in catalogue.properties:
        uses = set(registry.get(prop.check).requires) | set(prop.requires)
        if (prop.level == "MUST" and uses & set(primitives)) or prop.id in failures:
            chosen.append(prop)
    return chosen


@pytest.mark.parametrize("implementation", list(CASES), ids=lambda cls: cls.__name__)
def test_convention_passes_what_it_does_not_contradict(implementation: type, catalogue: Catalogue) -> None:
    primitives, failures = CASES[implementation]
    backend = implementation()
    chosen = exercised(catalogue, primitives, failures)
    assert chosen, f"{implementation.__name__}: no property exercises {primitives}"
    alarms, stale, passed = [], [], 0
    for prop in chosen:
        record = run_property(prop, backend, quick_options(seed=3))
        if prop.id in failures:
            if record.status != "fail":
                stale.append(f"{prop.id} ({record.status}): listed as failing because it {failures[prop.id]}")
        elif record.status not in ("pass", "skip"):
            alarms.append(f"{prop.id}: {record.status}: {record.message[:300]}")
        else:
            passed += record.status == "pass"
    assert not alarms, f"{implementation.__name__} ({implementation.__doc__}) false alarms:\n" + "\n".join(alarms)
    assert not stale, "listed failures that did not fail:\n" + "\n".join(stale)
    assert passed, f"{implementation.__name__}: nothing passed, so nothing was checked"
