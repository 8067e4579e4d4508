"""The pytest plugin, driven through pytester as a user's pytest run."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
SPEC_DIR = Path(__file__).resolve().parent.parent / "spec"


@pytest.fixture
def spec_copy(pytester: pytest.Pytester) -> pytest.Pytester:
    for name in ("softmax.yaml", "masking.yaml", "attention.yaml"):  # masking depends on attention
        pytester.makefile(".yaml", **{name[:-5]: (SPEC_DIR / name).read_text()})
    return pytester


def test_items_are_named_property_and_target(spec_copy: pytest.Pytester) -> None:
    result = spec_copy.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["masking.yaml::masking.causal.upper_triangle_zero[[]numpy:cpu[]]",
                                 "softmax.yaml::softmax.rows.sum_to_one[[]numpy:cpu[]]"])


def test_reference_passes_and_k_selects(spec_copy: pytest.Pytester) -> None:
    listed = spec_copy.runpytest("--collect-only", "-q", "-k", "softmax", "-p", "no:cacheprovider")
    selected = [line for line in listed.outlines if "::" in line]
    assert selected and all("softmax" in line for line in selected)
    result = spec_copy.runpytest("-q", "-k", "softmax", "--nnspec-profile", "quick", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(selected))


def test_mutant_fails_with_explanation_and_x_stops(spec_copy: pytest.Pytester) -> None:
    spec_copy.makepyfile(broken="""
        import numpy as np
        from nnspec.backends.numpy import NumpyBackend

        class Leaky(NumpyBackend):
            name = "leaky"
            def attention_weights(self, q, k, mask=None, is_causal=False, scale=None):
                return super().attention_weights(q, k, None, False, scale)
    """)
    spec_copy.syspathinsert()
    result = spec_copy.runpytest("-x", "--backend", "broken:Leaky", "--nnspec-profile", "quick",
                                 "-p", "no:cacheprovider", "masking.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL: masking.*[[]leaky:cpu[]]*", "*reproduce: nnspec run --backend broken:Leaky*"])


def test_invalid_spec_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bad="nnspec: 1\ntopic: bad\ntitle: Bad\nproperties:\n  - id: bad.one.two\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*bad.yaml*property 'bad.one.two'*required property*"])
    assert result.ret != 0


def test_other_yaml_files_are_ignored(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", config="name: something else\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
