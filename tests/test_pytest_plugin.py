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


def test_a_node_id_from_collect_only_selects_exactly_that_item(spec_copy: pytest.Pytester) -> None:
    # A target whose name holds what a node id cannot (a space, "::", brackets), with a variant.
    spec_copy.makepyfile(odd="""
        from nnspec.backends.numpy import NumpyBackend

        class Odd(NumpyBackend):
            name = "odd kernel::v[2]"
            variant_primitives = frozenset({"softmax"})  # its "fast" variant runs softmax

            @classmethod
            def targets(cls):
                return ["cpu", "cpu/fast"]
    """)
    spec_copy.syspathinsert()
    listed = spec_copy.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "--backend", "odd:Odd",
                                 "softmax.yaml")
    ids = [line for line in listed.outlines if "::" in line]
    chosen = next(line for line in ids if "softmax.rows.sum_to_one" in line and "/fast" in line)
    assert chosen == "softmax.yaml::softmax.rows.sum_to_one[odd_kernel_:v_2_:cpu/fast]"
    again = spec_copy.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "--backend", "odd:Odd", chosen)
    assert [line for line in again.outlines if "::" in line] == [chosen]
    result = spec_copy.runpytest("-v", "-p", "no:cacheprovider", "--backend", "odd:Odd", "--nnspec-profile",
                                 "quick", chosen)
    result.assert_outcomes(passed=1)
    assert any(line.startswith(f"{chosen} PASSED") for line in result.outlines), result.outlines


@pytest.mark.parametrize("how", [["--nnspec"], ["--pyargs", "nnspec.spec"]], ids=["nnspec-flag", "pyargs"])
def test_the_shipped_catalogue_is_collected_without_a_path(pytester: pytest.Pytester, how: list[str]) -> None:
    from nnspec.spec_loader import load_catalogue

    pytester.makepyfile(test_unrelated="def test_unrelated():\n    pass\n")  # not collected by --nnspec alone
    listed = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", *how)
    ids = [line for line in listed.outlines if "::" in line]
    assert len(ids) == len(load_catalogue().properties)
    assert not [line for line in ids if "test_unrelated" in line]
    # Outside the rootdir the file is named by its absolute path, so the id can be given back.
    chosen = next(line for line in ids if "softmax.rows.sum_to_one" in line)
    assert Path(chosen.split("::")[0]).is_absolute()
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "--nnspec-profile", "quick", chosen)
    result.assert_outcomes(passed=1)


def test_a_spec_file_alone_takes_its_dependencies_from_the_shipped_catalogue(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", masking=(SPEC_DIR / "masking.yaml").read_text())  # depends on attention, softmax
    listed = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "masking.yaml")
    assert listed.ret == 0, listed.stdout.str()
    assert "depends on an unknown property" not in listed.stdout.str()
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "--nnspec-profile", "quick",
                                "masking.yaml::masking.causal.upper_triangle_zero[numpy:cpu]")
    result.assert_outcomes(passed=1)


def test_junit_failures_carry_statement_worst_error_counterexample_and_reproduce(spec_copy: pytest.Pytester) -> None:
    from xml.etree import ElementTree

    spec_copy.makepyfile(broken="""
        from nnspec.backends.numpy import NumpyBackend

        class Unscaled(NumpyBackend):
            name = "unscaled"
            def softmax(self, x, axis=-1):
                return super().softmax(2.0 * x, axis)
    """)
    spec_copy.syspathinsert()
    spec_copy.runpytest("-p", "no:cacheprovider", "--backend", "broken:Unscaled", "--nnspec-profile", "quick",
                        "--junitxml", "junit.xml", "softmax.yaml::softmax.formula.matches")
    root = ElementTree.parse(spec_copy.path / "junit.xml").getroot()
    (failure,) = root.iter("failure")
    text = failure.text or ""
    for fragment in ("The backend's softmax along the last axis equals", "against tolerance", "minimal example:",
                     "reproduce: nnspec run --backend broken:Unscaled@cpu --property softmax.formula.matches"):
        assert fragment in text, (fragment, text)


def test_a_pair_past_the_memory_limit_is_an_error_and_the_session_goes_on(spec_copy: pytest.Pytester) -> None:
    result = spec_copy.runpytest("-p", "no:cacheprovider", "--backend", "tests.reliability.faulty:MemoryHog",
                                 "--nnspec-memory-limit", "300", "--nnspec-profile", "quick",
                                 "softmax.yaml::softmax.formula.matches", "softmax.yaml::softmax.rows.sum_to_one")
    result.assert_outcomes(failed=2)  # the second ran on a fresh worker
    result.stdout.fnmatch_lines(["*exceeded the memory limit of 300 MB (--memory-limit)*"])
