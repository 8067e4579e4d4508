"""The ecosystem adapters (nnspec.backends.ecosystem): their conventions converted at the boundary.

Each adapter's primitives are compared with the NumPy reference on small inputs with a mask,
causal or not; an adapter whose library is absent must be unavailable with the pip command.
torch-only adapters are always tested; the others skip without their library. keras fixes its
backend once per process, so the keras checks run in subprocesses of their own.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib

from nnspec.backends import Unavailable
from nnspec.backends.ecosystem import ADAPTERS, _convert
from nnspec.backends.numpy import NumpyBackend

REPOSITORY = Path(__file__).resolve().parent.parent
REFERENCE = NumpyBackend()
# module -> the library it adapts (None: torch, always present here)
LIBRARIES = {
    "torch_nn": None,
    "hf": "transformers",
    "flax_linen": "flax",
    "keras3": "keras",
    "rotary": "rotary_embedding_torch",
    "equinox_nn": "equinox",
}


def needs(library: str) -> None:
    """Skip without ``library``; found without importing it (importing keras would fix its backend)."""
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")


def load(name: str) -> type:
    module, _, cls = ADAPTERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def attention_inputs(rng: np.random.Generator, value_dim: int = 3) -> dict[str, np.ndarray]:
    batch, heads, q_len, k_len, dim = 2, 2, 4, 5, 4
    mask = rng.random((batch, 1, q_len, k_len)) > 0.3
    mask[..., 0] = True  # every row keeps a key: the fully masked row is the specs' business
    return {
        "q": rng.standard_normal((batch, heads, q_len, dim)),
        "k": rng.standard_normal((batch, heads, k_len, dim)),
        "v": rng.standard_normal((batch, heads, k_len, value_dim)),
        "mask": mask,
        "bias": rng.standard_normal((batch, heads, q_len, k_len)),
    }


def mha_params(rng: np.random.Generator, width: int = 8) -> dict[str, np.ndarray]:
    return {f"w_{n}": rng.standard_normal((width, width)) for n in "qkvo"} | {
        f"b_{n}": rng.standard_normal(width) for n in "qkvo"
    }


def on(backend: object, arrays: dict[str, np.ndarray]) -> dict[str, object]:
    return {name: backend.asarray(value) for name, value in arrays.items()}  # type: ignore[attr-defined]


def check_attention(
    backend: object, rng: np.random.Generator, atol: float, weights: bool = False, value_dim: int = 3
) -> None:
    """attention (and attention_with_bias, attention_weights) against the reference, masked, causal or not."""
    inputs = attention_inputs(rng, value_dim)
    ours = on(backend, inputs)
    to_numpy = backend.to_numpy  # type: ignore[attr-defined]
    for is_causal in (False, True):
        for mask in (None, "mask"):
            got = to_numpy(
                backend.attention(
                    ours["q"],
                    ours["k"],
                    ours["v"],  # type: ignore[attr-defined]
                    mask=None if mask is None else ours["mask"],
                    is_causal=is_causal,
                    scale=0.7,
                )
            )
            expected = REFERENCE.attention(
                inputs["q"],
                inputs["k"],
                inputs["v"],
                mask=None if mask is None else inputs["mask"],
                is_causal=is_causal,
                scale=0.7,
            )
            np.testing.assert_allclose(got, expected, atol=atol, err_msg=f"causal={is_causal}, mask={mask}")
    if backend.supports("attention_with_bias"):  # type: ignore[attr-defined]
        got = to_numpy(backend.attention_with_bias(ours["q"], ours["k"], ours["v"], ours["bias"]))  # type: ignore[attr-defined]
        np.testing.assert_allclose(
            got,
            REFERENCE.attention_with_bias(inputs["q"], inputs["k"], inputs["v"], inputs["bias"]),
            atol=atol,
        )
    if weights:
        got = to_numpy(backend.attention_weights(ours["q"], ours["k"], mask=ours["mask"], is_causal=True))  # type: ignore[attr-defined]
        np.testing.assert_allclose(
            got,
            REFERENCE.attention_weights(inputs["q"], inputs["k"], mask=inputs["mask"], is_causal=True),
            atol=atol,
        )


def check_cells(backend: object, rng: np.random.Generator, atol: float) -> None:
    """rnn_cell, lstm_cell and gru_cell against the reference: weight layouts and gate orders."""
    batch, inputs, hidden = 2, 3, 4
    x, h, c = (rng.standard_normal((batch, n)) for n in (inputs, hidden, hidden))
    cases = {
        "rnn_cell": {"w_ih": (hidden, inputs), "w_hh": (hidden, hidden), "b": (hidden,)},
        "lstm_cell": {"w_ih": (4 * hidden, inputs), "w_hh": (4 * hidden, hidden), "b": (4 * hidden,)},
        "gru_cell": {
            "w_ih": (3 * hidden, inputs),
            "w_hh": (3 * hidden, hidden),
            "b_ih": (3 * hidden,),
            "b_hh": (3 * hidden,),
        },
    }
    A, N = backend.asarray, backend.to_numpy  # type: ignore[attr-defined]
    for primitive, shapes in cases.items():
        params = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
        ours = on(backend, params)
        if primitive == "lstm_cell":
            got = backend.lstm_cell(A(x), A(h), A(c), ours)  # type: ignore[attr-defined]
            expected = REFERENCE.lstm_cell(x, h, c, params)
            for got_part, expected_part in zip(got, expected, strict=True):
                np.testing.assert_allclose(N(got_part), expected_part, atol=atol, err_msg=primitive)
        else:
            got = getattr(backend, primitive)(A(x), A(h), ours)
            np.testing.assert_allclose(
                N(got), getattr(REFERENCE, primitive)(x, h, params), atol=atol, err_msg=primitive
            )


def check_layer_norm(backend: object, rng: np.random.Generator, atol: float) -> None:
    x, weight, bias = rng.standard_normal((3, 8)), rng.standard_normal(8), rng.standard_normal(8)
    A = backend.asarray  # type: ignore[attr-defined]
    got = backend.to_numpy(backend.layer_norm(A(x), A(weight), A(bias), eps=1e-5))  # type: ignore[attr-defined]
    np.testing.assert_allclose(got, REFERENCE.layer_norm(x, weight, bias, eps=1e-5), atol=atol)


def check_mha(backend: object, rng: np.random.Generator, atol: float, self_attention: bool = False) -> None:
    """multi_head_attention against the reference: packed or per-head projections, mask polarity."""
    batch, q_len, k_len, heads = 2, 4, 5, 2
    x_q = rng.standard_normal((batch, q_len, 8))
    x_kv = x_q if self_attention else rng.standard_normal((batch, k_len, 8))
    mask = rng.random((batch, 1, q_len, x_kv.shape[1])) > 0.3
    mask[..., 0] = True
    params = mha_params(rng)
    A, N = backend.asarray, backend.to_numpy  # type: ignore[attr-defined]
    for is_causal in (False, True):
        got = backend.multi_head_attention(
            A(x_q),
            A(x_kv),
            on(backend, params),
            heads,
            mask=A(mask),  # type: ignore[attr-defined]
            is_causal=is_causal,
        )
        expected = REFERENCE.multi_head_attention(x_q, x_kv, params, heads, mask=mask, is_causal=is_causal)
        np.testing.assert_allclose(N(got), expected, atol=atol, err_msg=f"causal={is_causal}")


# -- every adapter ---------------------------------------------------------------------------------


def test_every_adapter_is_registered_as_an_entry_point_and_left_out_of_the_default_run() -> None:
    declared = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["entry-points"][
        "nnspec.backends"
    ]
    assert {name: declared.get(name) for name in ADAPTERS} == ADAPTERS
    for name in ADAPTERS:
        backend_class = load(name)
        assert backend_class.name == name
        assert backend_class.in_default_run is False
        assert Path(backend_class.divergences).is_file(), backend_class.divergences


@pytest.mark.parametrize("module", sorted(LIBRARIES))
def test_importing_an_adapter_module_imports_no_framework(module: str) -> None:
    code = (
        f"import sys; import nnspec.backends.ecosystem.{module}; "
        "print(sorted(m for m in ('torch', 'jax', 'flax', 'keras', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_each_adapter_is_constructible_or_unavailable_with_a_reason(name: str) -> None:
    backend_class = load(name)
    ok, reason = backend_class.available("cpu")
    if ok:
        backend = backend_class("cpu")
        assert backend.target == f"{name}:cpu"
        assert backend.variant is None
    else:
        assert "pip install" in reason or "keras" in reason, reason
        with pytest.raises(Unavailable):
            backend_class("cpu")


@pytest.mark.parametrize("name", ["hf-eager", "flax", "keras-jax", "rotary-embedding-torch"])
def test_an_absent_library_makes_the_adapter_unavailable_with_the_pip_command(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend_class = load(name)
    library = LIBRARIES[backend_class.__module__.rsplit(".", 1)[1]]
    pip_name = library.replace("_", "-")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda module, *args: None if module == library else real_find_spec(module, *args),
    )
    ok, reason = backend_class.available("cpu")
    assert not ok
    assert (
        reason == f"{library} is not installed: pip install 'nnspec[ecosystem]' (or: pip install {pip_name})"
    )
    with pytest.raises(Unavailable, match="pip install"):
        backend_class("cpu")


# -- the conversion helpers -------------------------------------------------------------------------


def test_permute_gates_reorders_blocks_and_round_trips() -> None:
    weight = np.repeat(np.arange(3.0), 2)[:, None] * np.ones((1, 5))  # blocks r=0, z=1, n=2
    keras_order = _convert.permute_gates(np, weight, "rzn", "zrn")
    assert keras_order[:, 0].tolist() == [1, 1, 0, 0, 2, 2]
    np.testing.assert_array_equal(_convert.permute_gates(np, keras_order, "zrn", "rzn"), weight)
    np.testing.assert_array_equal(_convert.permute_gates(np, weight.T, "rzn", "zrn", axis=-1), keras_order.T)
    with pytest.raises(ValueError, match="same gates"):
        _convert.permute_gates(np, weight, "rzn", "ifgo")


def test_masks_convert_to_additive_inverted_and_causal_forms() -> None:
    mask = np.array([[True, False, True], [False, False, True]])
    np.testing.assert_array_equal(
        _convert.additive_mask(np, mask, -np.inf, np.float64), [[0, -np.inf, 0], [-np.inf, -np.inf, 0]]
    )
    np.testing.assert_array_equal(_convert.disallowed_mask(mask), ~mask)
    np.testing.assert_array_equal(
        _convert.allowed_mask(np, mask, True, 2, 3), mask & np.tri(2, 3, dtype=bool)
    )
    assert _convert.allowed_mask(np, None, False, 2, 3) is None
    assert _convert.four_dimensional(mask).shape == (1, 1, 2, 3)
    x = np.zeros((1, 2, 3, 4))
    assert _convert.swap_heads_and_length(x).shape == (1, 3, 2, 4)


# -- torch modules (always tested) ---------------------------------------------------------------


def test_torch_multihead_attention_matches_the_reference_with_its_inverted_mask() -> None:
    check_mha(load("torch-mha")("cpu"), np.random.default_rng(1), atol=1e-10)


def test_torch_encoder_layer_blocks_match_the_reference() -> None:
    backend, rng = load("torch-encoder-layer")("cpu"), np.random.default_rng(2)
    check_mha(backend, rng, atol=1e-10, self_attention=True)
    check_layer_norm(backend, rng, atol=1e-12)
    x = rng.standard_normal((2, 4, 8))
    params = {
        "w_1": rng.standard_normal((16, 8)),
        "b_1": rng.standard_normal(16),
        "w_2": rng.standard_normal((8, 16)),
        "b_2": rng.standard_normal(8),
    }
    got = backend.to_numpy(backend.feed_forward(backend.asarray(x), on(backend, params)))
    np.testing.assert_allclose(got, REFERENCE.feed_forward(x, params), atol=1e-12)


def test_torch_encoder_layer_attention_module_takes_cross_attention() -> None:
    check_mha(load("torch-encoder-layer")("cpu"), np.random.default_rng(3), atol=1e-10)


@pytest.mark.parametrize("fast_path", [False, True])
def test_the_whole_encoder_layer_is_the_composition_of_its_blocks(fast_path: bool) -> None:
    """TransformerEncoderLayer (post-norm) = LN2(h + FF(h)), h = LN1(x + SA(x)), its fast path included."""
    import torch

    backend, rng = load("torch-encoder-layer")("cpu"), np.random.default_rng(4)
    width, heads = 8, 2
    params = mha_params(rng, width) | {
        "w_1": rng.standard_normal((16, width)),
        "b_1": rng.standard_normal(16),
        "w_2": rng.standard_normal((width, 16)),
        "b_2": rng.standard_normal(width),
        "norm1_weight": rng.standard_normal(width),
        "norm1_bias": rng.standard_normal(width),
        "norm2_weight": rng.standard_normal(width),
        "norm2_bias": rng.standard_normal(width),
    }
    x = rng.standard_normal((2, 5, width)).astype(np.float32)
    layer = backend.layer({k: backend.asarray(v.astype(np.float32)) for k, v in params.items()}, heads)
    with torch.inference_mode(fast_path):
        got = backend.to_numpy(layer(backend.asarray(x)))
    x64 = x.astype(np.float64)
    h = REFERENCE.layer_norm(
        x64 + REFERENCE.multi_head_attention(x64, x64, params, heads),
        params["norm1_weight"],
        params["norm1_bias"],
    )
    expected = REFERENCE.layer_norm(
        h + REFERENCE.feed_forward(h, params), params["norm2_weight"], params["norm2_bias"]
    )
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_flex_attention_matches_the_reference_through_its_score_mod() -> None:
    check_attention(load("torch-flex")("cpu"), np.random.default_rng(5), atol=1e-12)


def test_flex_attention_refuses_gradients_on_the_cpu() -> None:
    from nnspec.backends import InputNotSupported

    backend, rng = load("torch-flex")("cpu"), np.random.default_rng(6)
    inputs = on(backend, attention_inputs(rng))
    with pytest.raises(InputNotSupported, match="backward"):
        backend.vjp(lambda q: backend.attention(q, inputs["k"], inputs["v"]), inputs["q"])


# -- Hugging Face transformers -------------------------------------------------------------------------


def test_hf_eager_attention_matches_the_reference_with_its_additive_mask() -> None:
    needs("transformers")
    # eager_attention_forward computes its softmax in float32, whatever the input dtype.
    check_attention(load("hf-eager")("cpu"), np.random.default_rng(7), atol=1e-6, weights=True)


def test_hf_sdpa_attention_matches_the_reference_with_causal_folded_into_the_mask() -> None:
    needs("transformers")
    check_attention(load("hf-sdpa")("cpu"), np.random.default_rng(8), atol=1e-12)


def test_hf_rope_is_the_rotate_half_rotation() -> None:
    needs("transformers")
    backend, rng = load("hf-eager")("cpu"), np.random.default_rng(9)
    x, positions, base = rng.standard_normal((1, 2, 4, 8)), np.array([0, 1, 5, 11]), 100.0
    got = backend.to_numpy(backend.rope(backend.asarray(x), backend.asarray(positions), base))
    half = x.shape[-1] // 2
    angles = positions[:, None] * base ** (-np.arange(half) / half)
    cos, sin = np.cos(angles), np.sin(angles)
    first, second = x[..., :half], x[..., half:]  # rotate_half pairs dimension i with i + D/2
    expected = np.concatenate((first * cos - second * sin, second * cos + first * sin), axis=-1)
    np.testing.assert_allclose(got, expected, atol=1e-5)  # cos and sin are computed in float32


def test_rotary_embedding_torch_rope_is_the_interleaved_rotation() -> None:
    needs("rotary_embedding_torch")
    backend, rng = load("rotary-embedding-torch")("cpu"), np.random.default_rng(12)
    x, positions = rng.standard_normal((1, 2, 4, 8)), np.array([0, 1, 5, 11])
    got = backend.to_numpy(backend.rope(backend.asarray(x), backend.asarray(positions), 100.0))
    # Its frequencies are float32 whatever the input dtype.
    np.testing.assert_allclose(got, REFERENCE.rope(x, positions, 100.0), atol=1e-6)


def test_hf_rope_differentiates_under_torch_func() -> None:
    """The gradient properties call rope inside torch.func.vjp, where building a module fails."""
    needs("transformers")
    import torch

    backend = load("hf-sdpa")("cpu")
    x, positions = backend.asarray(np.ones((1, 1, 2, 4))), backend.asarray(np.array([0, 7]))
    out, vjp_fn = backend.vjp(lambda x: backend.rope(x, positions, 777.0), x)
    (gradient,) = vjp_fn(torch.ones_like(out))
    assert gradient.shape == x.shape and bool(torch.isfinite(gradient).all())


# -- flax -----------------------------------------------------------------------------------------


def test_flax_attention_heads_norm_and_cells_match_the_reference() -> None:
    needs("flax")
    backend, rng = load("flax")("cpu"), np.random.default_rng(10)
    check_attention(backend, rng, atol=1e-12, weights=True)
    check_mha(backend, rng, atol=1e-10)
    check_layer_norm(backend, rng, atol=1e-10)
    check_cells(backend, rng, atol=1e-12)


def test_equinox_cells_match_the_reference() -> None:
    needs("equinox")
    check_cells(load("equinox")("cpu"), np.random.default_rng(12), atol=1e-12)


# -- keras ------------------------------------------------------------------------------------------


def keras_check(class_name: str) -> None:
    """Run in a subprocess: keras's backend is fixed at its first import."""
    from nnspec.backends.ecosystem import keras3

    backend, rng = getattr(keras3, class_name)("cpu"), np.random.default_rng(11)
    x = rng.standard_normal((3, 7))
    np.testing.assert_allclose(
        backend.to_numpy(backend.softmax(backend.asarray(x))), REFERENCE.softmax(x), atol=1e-12
    )
    # keras computes dot_product_attention and its layers in float32 from float64 inputs.
    check_attention(backend, rng, atol=1e-5, value_dim=4)
    check_layer_norm(backend, rng, atol=1e-5)
    check_cells(backend, rng, atol=1e-5)
    print("ok", backend.keras.backend.backend())


@pytest.mark.parametrize(
    ("class_name", "keras_backend"), [("KerasJaxBackend", "jax"), ("KerasTorchBackend", "torch")]
)
def test_keras_ops_and_layers_match_the_reference(class_name: str, keras_backend: str) -> None:
    needs("keras")
    code = f"from tests.test_ecosystem import keras_check; keras_check({class_name!r})"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPOSITORY, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"ok {keras_backend}"


def test_a_keras_adapter_is_unavailable_once_keras_runs_on_another_backend() -> None:
    needs("keras")
    code = (
        "from nnspec.backends.ecosystem.keras3 import KerasJaxBackend, KerasTorchBackend; "
        "KerasJaxBackend('cpu').softmax(KerasJaxBackend('cpu').asarray(__import__('numpy').ones(2))); "
        "print(KerasTorchBackend.available('cpu'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPOSITORY, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already imported in this process with the 'jax' backend" in result.stdout


# -- the matrix ----------------------------------------------------------------------------------


def test_the_matrix_runs_an_adapter_on_the_properties_its_own_primitives_reach() -> None:
    from nnspec.backends.ecosystem import __main__ as matrix

    mha = load("torch-mha")
    assert matrix.own_primitives(mha) == ["multi_head_attention"]
    properties = matrix.reaching_properties(matrix.reached(mha, ["multi_head_attention"]))
    assert "multihead.formula.concatenated_heads" in properties
    assert not any(prop.startswith(("softmax.", "lstm.")) for prop in properties)
    # The torch backend composes multi-head attention from self.attention: an attention override reaches it.
    assert "multi_head_attention" in matrix.reached(load("hf-sdpa"), ["attention"])


def test_the_matrix_counts_failures_by_level_and_divergences_apart() -> None:
    from nnspec.backends.ecosystem import __main__ as matrix

    records = [
        {"property": "a", "backend": "x:cpu", "status": "pass", "level": "MUST", "message": ""},
        {"property": "b", "backend": "x:cpu", "status": "fail", "level": "MUST", "message": "off by 1"},
        {"property": "c", "backend": "x:cpu", "status": "error", "level": "SHOULD", "message": "raised"},
        {
            "property": "d",
            "backend": "x:cpu",
            "status": "xfail",
            "level": "MUST",
            "message": "known divergence: why. more",
        },
        {"property": "e", "backend": "x:cpu", "status": "skip", "level": "MUST", "message": "n/a"},
    ]
    assert matrix.tally(records) == {
        "pass": 1,
        "MUST fail": 1,
        "SHOULD/MAY fail": 1,
        "divergent": 1,
        "not applicable": 1,
    }
    text = matrix.markdown(
        [{"name": "x", "own": ["softmax"], "reason": "", "records": records, "seconds": 2.0}], "quick", 0
    )
    assert "| `x` | softmax | 1 | 1 | 1 | 1 | 1 | 2 |" in text
    assert "- `x:cpu` `b` (MUST, fail): off by 1" in text
    assert "- `x`, 1: why: `d`" in text
