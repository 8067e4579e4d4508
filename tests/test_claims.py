"""The documents' claims: each check computes what it says, verdicts are pinned to numbers
computed here independently, and bad claim entries are rejected with a useful message."""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from nnspec import claim_checks, claims
from nnspec.claim_checks._counting import OperationCounter, fit_exponent
from nnspec.cli import main as cli_main
from nnspec.errors import NnspecError, SpecError
from nnspec.spec_loader import Catalogue, load_catalogue


@pytest.fixture(scope="module")
def results(catalogue: Catalogue) -> dict[str, dict]:
    return {result["id"]: result for result in claims.check_all(catalogue)}


# --- pinned verdicts, with the numbers recomputed here by hand ---------------------------------------


def test_softmax_of_3_0_0_is_refuted_with_the_true_weights(results: dict[str, dict]) -> None:
    first = math.exp(3) / (math.exp(3) + 2)
    result = results["claims.softmax.worked_example_3_0_0"]
    assert result["verdict"] == "refuted"
    assert result["computed"]["weights"][0] == pytest.approx(0.9094, abs=1e-4)
    assert result["computed"]["weights"][0] == pytest.approx(first, rel=1e-5)
    assert result["computed"]["weights"][1] == pytest.approx(1 / (math.exp(3) + 2), rel=1e-5)


def test_gradient_at_3_0_0_is_p_times_one_minus_p(results: dict[str, dict]) -> None:
    p = 1 / (math.exp(3) + 2)
    result = results["claims.softmax.worked_example_3_0_0_gradient"]
    assert result["verdict"] == "refuted"
    assert result["computed"]["derivatives"] == pytest.approx([p * (1 - p)] * 2, rel=1e-5)


def test_worked_example_weights_are_rounded_too_far(results: dict[str, dict]) -> None:
    exponentials = [math.exp(x) for x in (2.0, 1.0, 0.1, -0.5)]
    result = results["claims.softmax.worked_example_weights"]
    assert result["verdict"] == "imprecise"
    assert result["computed"]["weights"][0] == pytest.approx(exponentials[0] / sum(exponentials), rel=1e-5)
    assert round(exponentials[0] / sum(exponentials), 2) == 0.63  # not the 0.62 the document prints
    assert results["claims.softmax.worked_example_sum"]["computed"]["sum"] == pytest.approx(sum(exponentials), rel=1e-5)


def test_three_standard_deviations_of_a_64_dimensional_dot_product(results: dict[str, dict]) -> None:
    result = results["claims.scaling.unscaled_range_d64"]
    assert result["verdict"] == "holds"
    assert result["computed"]["range"] == pytest.approx([-24.0, 24.0], abs=0.2)  # sampled
    assert 0.99 < result["computed"]["share_inside"] < 1.0


def test_attention_score_memory_for_128k_context_is_refuted(results: dict[str, dict]) -> None:
    result = results["claims.flash.bytes_128k_32_heads_32_layers"]
    assert result["verdict"] == "refuted"
    assert result["computed"]["value"] == pytest.approx(128_000**2 * 32 * 32 * 2, rel=1e-5)


def test_sparse_attention_counts_hold(results: dict[str, dict]) -> None:
    assert results["claims.sparse.scores_100k_window_256"]["computed"]["value"] == pytest.approx(100_000 * 256)
    assert results["claims.sparse.scores_100k_window_256"]["verdict"] == "holds"
    assert results["claims.complexity.minutes_300k_32_layers"]["computed"]["value"] == pytest.approx(300_000**2 * 32e-9 / 60)


def test_gpt3_allreduce_traffic_is_refuted(results: dict[str, dict]) -> None:
    result = results["claims.scale.gpt3_allreduce"]
    assert result["verdict"] == "refuted"
    assert result["computed"]["gradient_bytes"] == pytest.approx(175e9 * 2)
    assert result["computed"]["bytes_per_worker"] == pytest.approx(2 * 999 / 1000 * 350e9, rel=1e-5)


def test_twelve_l_d_squared_leaves_out_embeddings(results: dict[str, dict]) -> None:
    result = results["claims.scale.parameters_12_l_d2"]
    assert result["verdict"] == "imprecise"
    pytest.importorskip("torch")
    assert result["computed"]["BERT-base"] > 1.2  # parameters with embeddings over 12 L d^2


def test_word_positions_in_the_example_are_off_by_one(results: dict[str, dict]) -> None:
    words = ["The", "cat", "sat", "on", "the", "mat", "and", "the", "dog", "slept"]
    result = results["claims.examples.word_positions"]
    assert result["verdict"] == "refuted"
    for word in ("cat", "sat", "mat", "dog", "slept"):
        assert result["computed"][word] == words.index(word)


def test_self_attention_is_equivariant_not_invariant(results: dict[str, dict]) -> None:
    assert results["claims.attention.permutation_invariant"]["verdict"] == "imprecise"
    assert results["claims.attention.permutation_equivariant"]["verdict"] == "holds"
    assert results["claims.attention.permutation_invariant"]["computed"]["equivariance_gap"] < 1e-12


# --- the checks can disagree: the same measurement gives other verdicts for other claims ----------------


@pytest.mark.parametrize(
    ("check", "claimed", "params", "verdict"),
    [
        ("softmax_values", [0.9094, 0.0453, 0.0453], {"logits": [3, 0, 0]}, "holds"),
        ("softmax_values", [0.92, 0.045, 0.045], {"logits": [3, 0, 0]}, "imprecise"),
        ("attention_scores", "16.4B", {"n": 128_000}, "holds"),
        ("attention_scores", "17.2B", {"n": 128_000}, "imprecise"),
        ("attention_scores", "1T", {"n": 128_000}, "refuted"),
        ("measured_exponent", {"n": 1}, {"computation": "attention_time", "variables": ["n"]}, "refuted"),
        ("measured_exponent", {"n": 2}, {"computation": "attention_time", "variables": ["n"]}, "holds"),
        ("self_attention_permutation", {"proposition": "equivariant", "is": True}, {}, "holds"),
        ("self_attention_permutation", {"proposition": "invariant", "is": True}, {}, "imprecise"),
        ("self_attention_permutation", {"proposition": "invariant", "is": False}, {}, "holds"),
        ("causal_visibility", {"2": [0, 1, 2]}, {"length": 4}, "holds"),
        ("causal_visibility", {"2": [0, 1]}, {"length": 4}, "refuted"),
        ("training_memory", "350GB", {"parameters": 175e9, "parts": ["weights_fp16"]}, "holds"),
        ("training_memory", "175GB", {"parameters": 175e9, "parts": ["weights_fp16"]}, "refuted"),
        ("softmax_saturation", {"relation": "<", "left": "jacobian_norm_unscaled", "right": "jacobian_norm_scaled"},
         {"d_k": 64}, "holds"),
        ("softmax_saturation", {"relation": ">=", "left": "jacobian_norm_unscaled", "right": "jacobian_norm_scaled"},
         {"d_k": 64}, "refuted"),
        ("dot_product_variance", 64, {"d_k": 64}, "holds"),
        ("dot_product_variance", 66, {"d_k": 64}, "refuted"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_check_verdict_follows_the_claim(check: str, claimed: object, params: dict, verdict: str) -> None:
    measurement = claims.get(check).function(**params)
    found, why = claims.judge(claimed, measurement)
    assert found == verdict, why


def test_a_check_that_takes_the_claimed_value_is_refused() -> None:
    with pytest.raises(NnspecError, match="computes without the claimed value"):
        @claims.claim_check("peeks_at_the_claim")
        def peeks(claimed: float) -> claims.Measurement:
            return claims.Measurement({"value": claimed}, "", primary="value")


def test_fit_exponent_reports_a_wider_uncertainty_before_the_asymptote() -> None:
    sizes = [16, 32, 64, 128, 256]
    exact, exact_uncertainty = fit_exponent(sizes, [n**2 for n in sizes])
    mixed, mixed_uncertainty = fit_exponent(sizes, [n**2 + 200 * n for n in sizes])
    assert exact == pytest.approx(2.0) and exact_uncertainty == pytest.approx(0.05)
    assert mixed < 1.9 and mixed_uncertainty > 0.1


def test_operation_counter_counts_from_the_shapes_it_gets() -> None:
    counter = OperationCounter()
    counter.matmul(np.ones((3, 4)), np.ones((4, 5)))
    assert counter.operations == 3 * 4 * 5


@pytest.mark.parametrize(
    ("written", "value", "half_unit"),
    [("16.8TB", 16.8e12, 0.05e12), ("262K", 262e3, 500), ("10B", 1e10, 5e9), (0.62, 0.62, 0.005),
     (350, 350, 5), ("16x", 16, 0.5), ("4.2M", 4.2e6, 0.05e6), ("350MB", 350e6, 5e6)],
    ids=str,
)
def test_quantity_reads_value_and_stated_precision(written: object, value: float, half_unit: float) -> None:
    stated = claims.quantity(written)
    assert stated.value == pytest.approx(value)
    assert stated.half_unit == pytest.approx(half_unit)


def test_judge_number_grades_by_stated_precision() -> None:
    assert claims.judge_number(11.819, 11.82)[0] == "holds"
    assert claims.judge_number(11.819, 11.83)[0] == "imprecise"
    assert claims.judge_number(0.045, 0.025)[0] == "refuted"


def test_every_claim_has_the_documented_keys_and_a_verdict(results: dict[str, dict]) -> None:
    expected = {"id", "source", "claim", "quote", "claimed", "kind", "computed", "verdict", "explanation", "code"}
    assert len(results) >= 40
    for result in results.values():
        assert expected <= set(result), result["id"]
        assert result["verdict"] in claims.VERDICTS
        assert result["code"].startswith(result["check"]["name"] + "(")
        assert "def " in result["code"]
    json.dumps(list(results.values()))  # a results document can embed them as they are


def test_every_registered_check_is_used(catalogue: Catalogue) -> None:
    used = {claim.check for claim in catalogue.claims}
    assert claims.check_names() - used == set()


# --- rejecting malformed claims -------------------------------------------------------------------------


CLAIM_FILE = """\
nnspec: 1
topic: broken
title: Broken claims
claims:
  - id: broken.claim.one
    source:
      - {{document: "ANN Architecture - Interview Q&A", question: "Why do we scale by √d_k?"}}
    claim: sqrt(64) is 8.
    claimed: 8
    check: {check}
"""


def test_unknown_check_name_names_file_claim_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(CLAIM_FILE.format(check="{name: no_such_check}"), encoding="utf-8")
    with pytest.raises(SpecError, match=r"broken\.yaml:\d+, property 'broken\.claim\.one', field 'check\.name': "
                                        r"unknown claim check; .* Received: 'no_such_check'"):
        load_catalogue([path])  # rejected on load, so `nnspec lint` catches it


def test_wrong_parameters_name_the_params_field(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(CLAIM_FILE.format(check="{name: square_root, params: {radicand: 64}}"), encoding="utf-8")
    with pytest.raises(SpecError, match=r"field 'check\.params': the claim check 'square_root' does not take "
                                        r"these parameters .* Received: \{'radicand': 64\}"):
        claims.check_all(load_catalogue([path]))


def test_a_claim_check_must_return_a_known_verdict() -> None:
    with pytest.raises(Exception, match="Received: 'maybe'"):
        claims.Finding("maybe", 1, "")


# --- the command line ------------------------------------------------------------------------------------


def test_cli_json_filters_by_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["claims", "--format", "json", "--verdict", "refuted"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed and {r["verdict"] for r in printed} == {"refuted"}
    assert {"id", "source", "claimed", "computed", "explanation", "code"} <= set(printed[0])
    assert set(printed[0]["source"][0]) == {"document", "question"}


def test_cli_table_shows_claimed_beside_computed_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["claims"]) == 0
    out = capsys.readouterr().out
    assert "REFUTED   claims.softmax.worked_example_3_0_0" in out
    assert "claimed:   [0.95, 0.025, 0.025]" in out
    assert "check:     softmax_values(logits=[3, 0, 0])" in out
    assert out.rstrip().splitlines()[-1].endswith("claims")


def _claim_check_modules() -> list[ModuleType]:
    return [importlib.import_module(f"{claim_checks.__name__}.{info.name}")
            for info in pkgutil.iter_modules(claim_checks.__path__)]


def test_checks_modules_import_no_framework() -> None:
    modules = _claim_check_modules()
    assert len(modules) > 5
    for module in modules:
        assert module.__name__ in sys.modules
        assert "torch" not in module.__dict__ and "jax" not in module.__dict__, module.__name__


@pytest.mark.parametrize(
    "claimed",
    ['"comparable magnitudes"', "{proposition: equivariant}", '{relation: "~", left: a, right: b}', "{}"],
    ids=["prose", "proposition-without-truth", "unknown-relation", "empty"],
)
def test_claimed_must_be_data(tmp_path: Path, claimed: str) -> None:
    path = tmp_path / "broken.yaml"
    text = CLAIM_FILE.format(check="{name: square_root, params: {value: 64}}").replace("claimed: 8", f"claimed: {claimed}")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match=r"broken\.yaml.*claimed"):
        load_catalogue([path])


def test_a_claimed_quantity_the_measurement_lacks_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    text = CLAIM_FILE.format(check="{name: square_root, params: {value: 64}}").replace("claimed: 8", "claimed: {cube: 4}")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match=r"field 'claimed': the measurement has no quantity 'cube'.*Received: 'cube'"):
        claims.check_all(load_catalogue([path]))


# --- the verdicts the issue asked to re-examine, with their evidence ---------------------------------------------


def test_eigenvalues_below_one_do_not_stop_a_tanh_rnn_exploding(results: dict[str, dict]) -> None:
    result = results["claims.recurrent.eigenvalues_decide"]
    skewed = result["computed"]["gradient_norms"]["non-normal, |eigenvalues| 0.31"]
    assert skewed["eigenvalue_moduli"] == pytest.approx(0.31, abs=1e-6)
    assert skewed["tanh_rnn"] > 1e20 and skewed["linear_rnn"] < 1e-20
    assert result["verdict"] == "imprecise" and "linear RNN" in result["explanation"]


def test_shared_query_key_matrix_gives_symmetric_scores(results: dict[str, dict]) -> None:
    result = results["claims.attention.shared_projection_symmetric"]
    assert result["verdict"] == "holds"
    assert result["computed"]["scores_asymmetry"] < 1e-9 < result["computed"]["weights_asymmetry"]


def test_heads_add_operations_but_not_parameters(results: dict[str, dict]) -> None:
    pytest.importorskip("torch")
    result = results["claims.scale.each_head_adds_parameters"]
    assert result["verdict"] == "refuted"
    assert result["computed"]["parameters_grow_with_heads"] is False
    assert result["computed"]["operations_grow_with_heads"] is True
    assert result["computed"]["matrix_products_grow_with_heads"] is False


def test_strided_sparse_attention_grows_as_n_to_the_1_5(results: dict[str, dict]) -> None:
    result = results["claims.sparse.strided_pattern_linear"]
    assert result["verdict"] == "refuted"
    assert result["computed"]["n"] == pytest.approx(1.5, abs=0.05)


def test_unit_norm_queries_and_keys_give_variance_one_over_d_squared(results: dict[str, dict]) -> None:
    result = results["claims.scaling.normalised_inputs_unit_variance"]
    assert result["verdict"] == "imprecise"
    assert result["computed"]["scaled_variance"] == pytest.approx(1 / 64**2, rel=0.05)
    assert result["computed"]["scaled_variance_unit_variance_entries"] == pytest.approx(1, abs=0.02)


def test_a_claim_about_an_absent_framework_is_unchecked_not_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    patched = [module for module in _claim_check_modules() if hasattr(module, "_torch")]
    assert patched
    for module in patched:
        monkeypatch.setattr(module, "_torch", lambda: None)
    cases = [("forget_bias_default", {}, {"pytorch_default_forget_bias_is_one": True}),
             ("recurrent_parameter_saving", {"input_size": 8, "hidden": 16}, 0.25),
             ("torch_transformer_layers", {}, {"encoder_layers": 6, "decoder_layers": 6})]
    for check, params, claimed in cases:
        assert claims.judge(claimed, claims.get(check).function(**params))[0] == "unchecked"
