"""The JAX backend against float64 NumPy, its conventions pinned, and its JAX-specific set-up.

Every primitive is compared with the NumPy reference backend in float64; the conventions a
transposition or permutation would break (layout, mask polarity, causal alignment, gate order)
are pinned against formulas written here. JAX compiles once per input shape, so the shapes
below are few and shared between tests: the module runs in well under 20 s on two CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from nnspec.backends import PRIMITIVES, Backend, Unavailable  # noqa: E402
from nnspec.backends import jax as jax_module  # noqa: E402
from nnspec.backends.discovery import resolve  # noqa: E402
from nnspec.backends.jax import JaxBackend, compile_stats  # noqa: E402
from nnspec.backends.numpy import NumpyBackend  # noqa: E402
from nnspec.errors import BackendError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from mutants import jax_mutants  # noqa: E402

DIVERGENCES = Path(jax_module.__file__).parent / "divergences" / "jax.txt"
HAS_GPU = JaxBackend.available("gpu")[0]
B, H, L, S, D, DV = 2, 3, 5, 7, 4, 6  # distinct sizes: a swapped axis cannot go unnoticed


@pytest.fixture(scope="module")
def backend() -> JaxBackend:
    return JaxBackend("cpu")


@pytest.fixture(scope="module")
def reference() -> NumpyBackend:
    return NumpyBackend()


def random(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def run(backend: JaxBackend, primitive: str, *args: object, **kwargs: object) -> np.ndarray | tuple:
    """Call ``primitive`` on NumPy arguments (dicts of arrays included); return NumPy."""

    def to_jax(value: object) -> object:
        if isinstance(value, np.ndarray):
            return backend.asarray(value)
        if isinstance(value, dict):
            return {key: to_jax(item) for key, item in value.items()}
        if isinstance(value, list):
            return [to_jax(item) for item in value]
        return value

    out = getattr(backend, primitive)(*map(to_jax, args), **{k: to_jax(v) for k, v in kwargs.items()})
    if isinstance(out, (tuple, list)):
        return tuple(backend.to_numpy(o) for o in out)
    return backend.to_numpy(out)


# -- the protocol surface ----------------------------------------------------------------------


IMPLEMENTED = [name for name in vars(JaxBackend) if name in PRIMITIVES]


def test_primitives_are_defined_in_protocol_order() -> None:
    assert [p for p in PRIMITIVES if p in IMPLEMENTED] == IMPLEMENTED
    assert len(IMPLEMENTED) >= 15  # the first protocol's fifteen at least


def test_plain_target_supports_what_it_defines_and_variants_only_attention(backend: JaxBackend) -> None:
    assert [p for p in PRIMITIVES if backend.supports(p)] == IMPLEMENTED
    cudnn = Backend.__new__(JaxBackend)  # no GPU here: the table needs only device and variant
    Backend.__init__(cudnn, "gpu", "cudnn")
    assert {p for p in PRIMITIVES if cudnn.supports(p)} == {"attention", "multi_head_attention", "vjp"}
    assert cudnn.supports_dtype("bfloat16") and not cudnn.supports_dtype("float32")
    assert backend.supports_dtype("float64") and backend.supports_dtype("bfloat16")


def test_targets_and_their_names() -> None:
    assert JaxBackend.targets() == ["cpu", "gpu", "gpu/xla", "gpu/cudnn"]
    assert JaxBackend("cpu").target == "jax:cpu"


class DoubledAttention(JaxBackend):
    """An attention override (twice the right output): every composite built on it must show it."""

    name = "doubled-attention"

    def attention(self, q, k, v, mask=None, is_causal=False, scale=None):  # type: ignore[no-untyped-def]
        return 2 * JaxBackend.attention(self, q, k, v, mask=mask, is_causal=is_causal, scale=scale)


def test_multi_head_attention_goes_through_self_attention(backend: JaxBackend) -> None:
    from tests.fixtures.composition import composition_problems

    assert composition_problems(backend) == []
    args, kwargs = _cases()["multi_head_attention"]
    params = args[2]
    plain = np.asarray(backend.multi_head_attention(*args, **kwargs))
    doubled = np.asarray(DoubledAttention("cpu").multi_head_attention(*args, **kwargs))
    # out = heads @ w_o.T + b_o, so doubling the heads doubles out - b_o.
    np.testing.assert_allclose(doubled - params["b_o"], 2 * (plain - params["b_o"]), rtol=1e-10, atol=1e-10)
    assert DoubledAttention.targets() == ["cpu", "gpu"]  # no variant runs the override three times


@pytest.mark.skipif(HAS_GPU, reason="checks behaviour without a GPU")
def test_gpu_targets_are_unavailable_with_a_reason_without_a_gpu() -> None:
    for spec in JaxBackend.targets():
        ok, reason = JaxBackend.available(spec)
        assert ok == (spec == "cpu"), spec
        assert ok or reason.startswith("no gpu device visible to jax") or reason.startswith(
            "no cuda device visible to jax"
        ), reason
    assert "no cuda device" in JaxBackend.available("gpu/cudnn")[1]
    with pytest.raises(Unavailable, match="no gpu device visible to jax"):
        JaxBackend("gpu", "xla")
    reasons = {t.target: t.reason for t in resolve("jax:gpu*")}
    assert set(reasons) == {"jax:gpu", "jax:gpu/xla", "jax:gpu/cudnn"}
    assert all(reasons.values())


def test_unknown_device_and_variant_are_unavailable_not_crashes() -> None:
    ok, reason = JaxBackend.available("tpu")
    assert not ok and "Received: 'tpu'" in reason
    ok, reason = JaxBackend.available("cpu/cudnn")
    assert not ok and "no attention implementation 'cudnn' on cpu" in reason


def test_missing_jax_is_reported_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    jax_module._probe.cache_clear()
    monkeypatch.setitem(sys.modules, "jax", None)  # makes `import jax` raise ImportError
    try:
        assert JaxBackend.available("cpu") == (False, "jax is not installed: pip install nnspec[jax]")
        with pytest.raises(Unavailable, match=r"pip install nnspec\[jax\]"):
            JaxBackend("cpu")
    finally:
        jax_module._probe.cache_clear()


def test_importing_the_module_imports_no_jax() -> None:
    code = "import sys, nnspec.backends.jax, tests.mutants.jax_mutants; print('jax' in sys.modules)"
    root = Path(__file__).parent.parent
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert result.stdout.strip() == "False"


# -- the boundary and float64 ------------------------------------------------------------------


def test_x64_is_enabled_and_recorded(backend: JaxBackend) -> None:
    assert jax.config.jax_enable_x64
    environment = backend.environment()
    assert environment["jax_enable_x64"] == "True"
    assert environment["jax"] == jax.__version__ and "cpu" in environment["jax_devices"]


def test_float32_matmul_precision_is_highest_and_recorded(backend: JaxBackend) -> None:
    # Not TF32: on NVIDIA GPUs JAX's default float32 dot would be ~30x outside float32 tolerance.
    assert jax.config.jax_default_matmul_precision == "highest"
    environment = backend.environment()
    assert environment["jax_default_matmul_precision"] == "highest"
    assert environment["attention_implementation"] == "jax's own choice"
    assert environment["computes_on"] == str(jax.devices("cpu")[0])


def test_gpu_preallocation_is_off_before_jax_starts_a_gpu_client(backend: JaxBackend) -> None:
    assert os.environ[jax_module.PREALLOCATE_VARIABLE] == "false"
    assert backend.environment()[jax_module.PREALLOCATE_VARIABLE] == "false"
    code = ("import os, nnspec.backends.jax as m; m._import_jax(); "
            "print(os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'])")
    root = Path(__file__).parent.parent
    for preset, expected in ((None, "false"), ("true", "true")):  # a user's own setting is kept
        env = {k: v for k, v in os.environ.items() if k != jax_module.PREALLOCATE_VARIABLE}
        if preset is not None:
            env[jax_module.PREALLOCATE_VARIABLE] = preset
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                                env=env, check=True)
        assert result.stdout.strip() == expected


def test_the_cpu_target_computes_on_its_device_whatever_jax_defaults_to() -> None:
    # Two host devices stand in for a GPU host: JAX's default is set to the second, and the
    # backend's primitives (including one that makes its arrays itself) must still use the first.
    code = """
import jax, numpy as np
jax.config.update("jax_default_device", jax.devices("cpu")[1])
from nnspec.backends.jax import JaxBackend
backend = JaxBackend("cpu")
made_inside = backend.sinusoidal_encoding(3, 4)
x = backend.asarray(np.ones((1, 1, 2, 4)))
out, pullback = backend.vjp(lambda q: backend.attention(q, q, q), x)
print(made_inside.devices(), backend.softmax(x).devices(), pullback(out)[0].devices(),
      jax.numpy.zeros(1).devices())
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    root = Path(__file__).parent.parent
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                            env=env, check=True)
    inside, softmax, gradient, default = result.stdout.strip().split("} {")
    assert "TFRT_CPU_1" in default or "CpuDevice(id=1)" in default, result.stdout
    for found in (inside, softmax, gradient):
        assert "id=0" in found and "id=1" not in found, result.stdout


def test_cudnn_refuses_what_it_documents_it_does_not_take() -> None:
    jnp = jax.numpy
    half = jnp.zeros((2, 5, 3, 8), dtype=jnp.float16)  # (B, T, N, H)
    with pytest.raises(jax_module.InputNotSupported, match=r"takes \['float16', 'bfloat16'\] only. Received: float32"):
        jax_module._cudnn_inputs(half.astype(jnp.float32), half, 8, None, None)
    with pytest.raises(jax_module.InputNotSupported, match=r"head widths up to 256\. Received: 264"):
        jax_module._cudnn_inputs(half, half, 264, None, None)
    # The (B, 1, 1, S) padding mask is widened to the full (T, S) cuDNN requires, not refused.
    keys = jnp.zeros((2, 7, 3, 8), dtype=jnp.float16)
    mask, bias = jax_module._cudnn_inputs(half, keys, 8, jnp.ones((2, 1, 1, 7), dtype=bool), None)
    assert mask.shape == (2, 1, 5, 7) and bias is None


def test_jax_cudnn_errors_become_refusals(backend: JaxBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    def cudnn_refuses(*args: object, **kwargs: object) -> None:
        raise NotImplementedError("Unsupported sequence length Q 5, KV 7.")

    monkeypatch.setattr(jax.nn, "dot_product_attention", cudnn_refuses)
    half = jax.numpy.zeros((1, 5, 1, 8), dtype=jax.numpy.float16)
    monkeypatch.setattr(backend, "implementation", "cudnn")
    with pytest.raises(jax_module.InputNotSupported, match=r"cuDNN attention does not take these inputs\. "
                                                         "Received: Unsupported sequence length"):
        backend._dot_product_attention(half, half, half, None, False, None)
    monkeypatch.setattr(backend, "implementation", None)  # elsewhere the error is the backend's own
    with pytest.raises(NotImplementedError):
        backend._dot_product_attention(half, half, half, None, False, None)


def test_cpu_only_jaxlib_is_named_as_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jax_module, "_installed", lambda name: False)
    assert "jaxlib is CPU-only" in jax_module._cpu_only_hint("gpu")
    monkeypatch.setattr(jax_module, "_installed", lambda name: name == "jax-cuda12-plugin")
    assert "jax-cuda12-plugin is installed (check the NVIDIA driver)" in jax_module._cpu_only_hint("gpu")
    assert jax_module._cpu_only_hint("cpu") == ""


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bool", "int64"])
def test_asarray_keeps_dtype_and_values(backend: JaxBackend, dtype: str) -> None:
    x = (np.arange(6).reshape(2, 3) % 2).astype(dtype)
    array = backend.asarray(x)
    assert array.dtype == np.dtype(dtype)
    back = backend.to_numpy(array)
    assert back.dtype == x.dtype and np.array_equal(back, x)


def test_asarray_converts_to_a_named_dtype_bfloat16_included(backend: JaxBackend) -> None:
    values = np.array([1.0, 1.0 + 2.0**-7, -3.5], dtype=np.float32)  # exactly representable in bfloat16
    array = backend.asarray(values, "bfloat16")
    assert array.dtype.name == "bfloat16"
    back = backend.to_numpy(array)
    assert back.dtype == np.float32 and np.array_equal(back, values)
    assert backend.to_numpy(backend.cast(backend.asarray(np.array([1.0 + 2.0**-9])), "bfloat16"))[0] == 1.0
    with pytest.raises(BackendError, match=r"'bfloat16'\]. Received: 'int8'"):
        backend.cast(array, "int8")


def test_float64_inputs_compute_in_float64(backend: JaxBackend, reference: NumpyBackend) -> None:
    # 1 + 1e-10 is 1 in float32: only a float64 computation sees the difference.
    x = np.array([[0.0, 1e-10, 2e-10]])
    out = run(backend, "softmax", x)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, reference.softmax(x), rtol=1e-15, atol=0)
    assert out[0, 1] > out[0, 0]
    q, k = random(1, B, H, L, D), random(2, B, H, S, D)
    weights = run(backend, "attention_weights", q, k)
    assert np.max(np.abs(weights - reference.attention_weights(q, k))) < 1e-14


def test_dot_product_attention_softmax_is_float32_even_for_float64(backend: JaxBackend) -> None:
    # Pinned divergence (divergences/jax.txt): jax.nn.dot_product_attention's xla implementation
    # casts the logits to float32 for the softmax, whatever the input dtype. If this starts
    # failing, JAX fixed it: delete the entry.
    q, k, v = random(3, B, H, L, D) * 3, random(4, B, H, S, D) * 3, random(5, B, H, S, DV)
    out = run(backend, "attention", q, k, v)
    assert out.dtype == np.float64
    error = np.max(np.abs(out - NumpyBackend().attention(q, k, v)))
    assert 1e-12 < error < 1e-5
    assert "float32" in DIVERGENCES.read_text()


def test_jitted_float16_dot_product_attention_still_fails_on_cpu() -> None:
    # JaxBackend runs float16 attention eagerly on the CPU because of this JAX bug; when this
    # test fails, JAX fixed it: drop `eager_when=_float16_on_cpu` from the backend.
    # Pinned to the CPU: on a GPU host the default device is the GPU, where this call works.
    cpu = jax.devices("cpu")[0]
    with jax.default_device(cpu):
        x = jax.device_put(np.ones((1, 4, 2, 8), dtype=np.float16), cpu)
        with pytest.raises(ValueError, match="F16_F16_F32"):
            jax.jit(jax.nn.dot_product_attention)(x, x, x)


# -- every primitive against the float64 reference -----------------------------------------


def _mask() -> np.ndarray:
    mask = np.random.default_rng(6).random((B, 1, L, S)) < 0.6
    mask[..., 0] = True  # every row keeps a key (fully masked rows are pinned separately)
    return mask


def _cases() -> dict[str, tuple[tuple, dict]]:
    q, k, v = random(10, B, H, L, D), random(11, B, H, S, D), random(12, B, H, S, DV)
    model_width, hidden, inputs = 6, 4, 3
    projections = {f"w_{n}": random(13 + i, model_width, model_width) for i, n in enumerate("qkvo")}
    projections |= {f"b_{n}": random(17 + i, model_width) for i, n in enumerate("qkvo")}
    x_seq, x_state = random(21, B, L, model_width), random(22, B, hidden)
    x_in = random(23, B, inputs)

    def cell(blocks: int) -> dict[str, np.ndarray]:
        return {"w_ih": random(24, blocks * hidden, inputs), "w_hh": random(25, blocks * hidden, hidden),
                "b": random(26, blocks * hidden)}

    gru = {"w_ih": random(27, 3 * hidden, inputs), "w_hh": random(28, 3 * hidden, hidden),
           "b_ih": random(29, 3 * hidden), "b_hh": random(30, 3 * hidden)}
    ffn = {"w_1": random(31, 10, model_width), "b_1": random(32, 10),
           "w_2": random(33, model_width, 10), "b_2": random(34, model_width)}
    return {
        "softmax": ((random(35, B, L, S) * 4,), {"axis": 1}),
        "attention_weights": ((q, k), {"mask": _mask(), "is_causal": True}),
        "attention": ((q, k, v), {"mask": _mask(), "scale": 0.7}),
        "tiled_attention": ((q, k, v, 2, 3), {"is_causal": True}),
        "multi_head_attention": ((x_seq, random(36, B, S, model_width), projections, 3), {"mask": _mask()}),
        "linear_attention": ((q, k, v), {"is_causal": True}),
        "layer_norm": ((x_seq * 2 + 1, random(37, model_width), random(38, model_width)), {"eps": 1e-3}),
        "feed_forward": ((x_seq, ffn), {}),
        "sinusoidal_encoding": ((9, 7), {}),
        "rope": ((q, np.arange(L) * 3 + 2), {"base": 100.0}),
        "alibi_bias": ((H, L, S), {}),
        "rnn_cell": ((x_in, x_state, cell(1)), {}),
        "lstm_cell": ((x_in, x_state, random(39, B, hidden), cell(4)), {}),
        "gru_cell": ((x_in, x_state, gru), {}),
        "peephole_lstm_cell": ((x_in, x_state, random(39, B, hidden),
                                cell(4) | {f"p_{g}": random(40 + i, hidden) for i, g in enumerate("ifo")}), {}),
        "lstm_sequence": ((random(43, 3, L, inputs), random(44, 3, hidden), random(45, 3, hidden), cell(4)),
                          {"lengths": np.array([L, 2, 3]), "reverse": True}),
        "clip_grad_norm": (([random(46, 3, 2), random(47, 4)], 0.5), {}),
        "warmup_schedule": ((np.arange(1, 30), 16, 7), {}),
        "additive_attention_scores": ((random(48, B, 3), random(49, B, S, 4),
                                       {"w_query": random(50, 6, 3), "w_key": random(51, 6, 4), "v": random(52, 6)}), {}),
        "luong_scores": ((random(53, B, 3), random(54, B, S, 4), random(55, 3, 4)), {}),
        "beam_search": ((np.log(np.full(4, 0.25)) + random(56, 4) * 0.1, random(57, 3, 4, 4)), {"beam_width": 3}),
        "patch_embed": ((random(58, B, 3, 6, 4), random(59, 5, 3, 2, 2), random(60, 5)), {}),
        "gat_attention": ((random(61, 5, 3), np.eye(5, dtype=bool) | (np.random.default_rng(62).random((5, 5)) < 0.5),
                           random(63, 4, 3), random(64, 8)), {"negative_slope": 0.1}),
        "attention_with_bias": ((q, k, v, np.where(_mask(), random(65, B, 1, L, S), -np.inf)), {"scale": 0.9}),
    }


# dot_product_attention's softmax runs in float32 (see above): attention and MHA are float32-close.
_FLOAT32_SOFTMAX = {"attention", "multi_head_attention", "attention_with_bias"}
# Tested on their own below: vjp and stop_gradient through gradients, mlm_corrupt by its law.
_NOT_BY_VALUE = {"vjp", "stop_gradient", "mlm_corrupt"}


def test_every_defined_primitive_is_compared_with_the_reference() -> None:
    assert set(IMPLEMENTED) - _NOT_BY_VALUE == set(_cases())


@pytest.mark.parametrize("primitive", [p for p in IMPLEMENTED if p not in _NOT_BY_VALUE])
def test_primitive_matches_the_float64_reference(backend: JaxBackend, reference: NumpyBackend, primitive: str) -> None:
    args, kwargs = _cases()[primitive]
    actual = run(backend, primitive, *args, **kwargs)
    expected = getattr(reference, primitive)(*args, **kwargs)
    tolerance = 1e-5 if primitive in _FLOAT32_SOFTMAX else 1e-12
    pairs = zip(actual, expected, strict=True) if isinstance(actual, (tuple, list)) else [(actual, expected)]
    for a, e in pairs:
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance)


def test_mlm_corrupt_follows_the_bert_law(backend: JaxBackend) -> None:
    tokens = np.random.default_rng(66).integers(0, 100, (100, 100))
    corrupted, selected = run(backend, "mlm_corrupt", tokens, 100, 103, 7)
    assert selected.dtype == bool and corrupted.dtype == tokens.dtype
    # 10^4 positions: every fraction below lies within six standard deviations of its law.
    assert 0.15 - 0.022 < selected.mean() < 0.15 + 0.022
    masked = corrupted[selected] == 103
    assert 0.8 - 0.06 < masked.mean() < 0.8 + 0.06
    assert np.array_equal(corrupted[~selected], tokens[~selected])
    again, _ = run(backend, "mlm_corrupt", tokens, 100, 103, 7)
    other, _ = run(backend, "mlm_corrupt", tokens, 100, 103, 8)
    assert np.array_equal(again, corrupted) and not np.array_equal(other, corrupted)


def test_stop_gradient_keeps_the_value_and_blocks_the_gradient(backend: JaxBackend) -> None:
    x = backend.asarray(random(67, 4))
    out, pullback = backend.vjp(lambda x: backend.stop_gradient(x) * x, x)
    np.testing.assert_array_equal(backend.to_numpy(out), backend.to_numpy(x) ** 2)
    (grad,) = pullback(jax.numpy.ones(4))
    np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(x))  # d(c * x)/dx = c, not 2x


@pytest.mark.parametrize("primitive", ["attention", "tiled_attention"])
def test_half_precision_keeps_its_dtype(backend: JaxBackend, primitive: str) -> None:
    q, k, v = random(40, B, H, L, D), random(41, B, H, S, D), random(42, B, H, S, DV)
    extra = (2, 3) if primitive == "tiled_attention" else ()
    expected = NumpyBackend().attention(q, k, v)
    for dtype, tolerance in (("float16", 1e-2), ("bfloat16", 5e-2)):
        arrays = [backend.asarray(a, dtype) for a in (q, k, v)]
        out = getattr(backend, primitive)(*arrays, *extra)
        assert out.dtype.name == dtype
        np.testing.assert_allclose(backend.to_numpy(out), expected, atol=tolerance * 4)


# -- conventions, pinned against formulas written here -------------------------------------


def test_attention_layout_is_batch_heads_length_dim(backend: JaxBackend) -> None:
    # Each (batch, head) slice attends on its own: changing head 1 of batch 0 changes only that slice.
    q, k, v = random(50, B, H, L, D), random(51, B, H, S, D), random(52, B, H, S, DV)
    before = run(backend, "attention", q, k, v)
    k2 = k.copy()
    k2[0, 1] = random(53, S, D)
    after = run(backend, "attention", q, k2, v)
    changed = np.abs(after - before).max(axis=(2, 3)) > 1e-9
    assert changed.tolist() == [[False, True, False], [False, False, False]]


def test_mask_polarity_true_means_may_attend(backend: JaxBackend) -> None:
    q, k, v = random(54, 1, 1, 3, D), random(55, 1, 1, S, D), random(56, 1, 1, S, DV)
    only_key_two = np.zeros((1, 1, 3, S), dtype=bool)
    only_key_two[..., 2] = True
    out = run(backend, "attention", q, k, v, mask=only_key_two)
    np.testing.assert_allclose(out, np.broadcast_to(v[:, :, 2:3], out.shape), rtol=1e-6)
    weights = run(backend, "attention_weights", q, k, mask=only_key_two)
    assert np.array_equal(weights, only_key_two.astype(float))


@pytest.mark.parametrize("q_len, k_len", [(3, 6), (6, 3)])
@pytest.mark.parametrize("primitive", ["attention", "tiled_attention", "linear_attention"])
def test_is_causal_is_top_left_aligned(backend: JaxBackend, primitive: str, q_len: int, k_len: int) -> None:
    # Top-left: query i sees keys j <= i. Changing key j must move exactly the queries i >= j.
    q, k, v = random(57, 1, 1, q_len, D), random(58, 1, 1, k_len, D), random(59, 1, 1, k_len, D)
    extra = (2, 2) if primitive == "tiled_attention" else ()
    before = run(backend, primitive, q, k, v, *extra, is_causal=True)
    for j in range(k_len):
        v2 = v.copy()
        v2[..., j, :] += 5.0
        after = run(backend, primitive, q, k, v2, *extra, is_causal=True)
        moved = np.abs(after - before).max(axis=-1)[0, 0] > 1e-12
        assert moved.tolist() == [i >= j for i in range(q_len)], (j, moved)
    weights = run(backend, "attention_weights", q, k, is_causal=True)[0, 0]
    assert np.array_equal(weights > 0, np.tril(np.ones((q_len, k_len), dtype=bool)))


def test_fully_masked_query_row(backend: JaxBackend) -> None:
    # The protocol's weights are 0 on a row with no admissible key (attention_weights does that);
    # jax.nn.dot_product_attention gives the row uniform weights, so its output is mean(v).
    q, k, v = random(60, 1, 2, 3, D), random(61, 1, 2, S, D), random(62, 1, 2, S, DV)
    mask = np.ones((1, 1, 3, S), dtype=bool)
    mask[..., 1, :] = False
    weights = run(backend, "attention_weights", q, k, mask=mask)
    assert np.array_equal(weights[..., 1, :], np.zeros((1, 2, S)))
    out = run(backend, "attention", q, k, v, mask=mask)
    np.testing.assert_allclose(out[..., 1, :], v.mean(axis=-2), rtol=1e-6)
    assert "fully masked" in DIVERGENCES.read_text()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_lstm_gate_order_is_i_f_g_o(backend: JaxBackend) -> None:
    hidden, inputs = 4, 3
    x, h, c = random(63, 2, inputs), random(64, 2, hidden), random(65, 2, hidden)
    w_ih, w_hh = random(66, 4 * hidden, inputs), random(67, 4 * hidden, hidden)
    b = random(68, 4 * hidden)
    h_next, c_next = run(backend, "lstm_cell", x, h, c, {"w_ih": w_ih, "w_hh": w_hh, "b": b})
    i, f, g, o = np.split(x @ w_ih.T + h @ w_hh.T + b, 4, axis=-1)
    expected_c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(c_next, expected_c, rtol=1e-12)
    np.testing.assert_allclose(h_next, _sigmoid(o) * np.tanh(expected_c), rtol=1e-12)
    # A forget gate held open and an input gate held shut keep the cell state exactly.
    saturating = np.concatenate([np.full(hidden, -40.0), np.full(hidden, 40.0), np.zeros(2 * hidden)])
    zero = {"w_ih": np.zeros_like(w_ih), "w_hh": np.zeros_like(w_hh), "b": saturating}
    _, kept = run(backend, "lstm_cell", x, h, c, zero)
    np.testing.assert_allclose(kept, c, rtol=1e-15)


def test_gru_gate_order_is_r_z_n_with_reset_after_the_matmul(backend: JaxBackend) -> None:
    hidden, inputs = 4, 3
    x, h = random(69, 2, inputs), random(70, 2, hidden)
    params = {"w_ih": random(71, 3 * hidden, inputs), "w_hh": random(72, 3 * hidden, hidden),
              "b_ih": random(73, 3 * hidden), "b_hh": random(74, 3 * hidden)}
    out = run(backend, "gru_cell", x, h, params)
    x_r, x_z, x_n = np.split(x @ params["w_ih"].T + params["b_ih"], 3, axis=-1)
    h_r, h_z, h_n = np.split(h @ params["w_hh"].T + params["b_hh"], 3, axis=-1)
    r, z = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z)
    np.testing.assert_allclose(out, (1 - z) * np.tanh(x_n + r * h_n) + z * h, rtol=1e-12)


def test_rope_rotates_adjacent_pairs(backend: JaxBackend) -> None:
    x = np.zeros((1, 1, 1, 4))
    x[..., 0] = 1.0  # the pair (x[0], x[1]) at angle 2 * base^0 = 2
    out = run(backend, "rope", x, np.array([2]))
    np.testing.assert_allclose(out[0, 0, 0], [np.cos(2.0), np.sin(2.0), 0.0, 0.0], atol=1e-15)


def test_tiled_attention_never_materialises_the_full_weights(backend: JaxBackend) -> None:
    q = backend.asarray(random(75, 1, 1, 48, D))
    jaxpr = jax.make_jaxpr(lambda q: backend.tiled_attention(q, q, q, 8, 8))(q)
    assert "48,48]" not in str(jaxpr)
    dense = jax.make_jaxpr(lambda q: backend.attention_weights(q, q))(q)
    assert "48,48]" in str(dense)  # the check above can see an (L, S) array when there is one


# -- gradients ---------------------------------------------------------------------------------


def _finite_difference_vjp(function, primals: list[np.ndarray], cotangent: np.ndarray, step: float = 1e-6):
    grads = []
    for index, primal in enumerate(primals):
        grad = np.zeros_like(primal)
        for position in np.ndindex(primal.shape):
            plus, minus = [p.copy() for p in primals], [p.copy() for p in primals]
            plus[index][position] += step
            minus[index][position] -= step
            grad[position] = np.sum((function(*plus) - function(*minus)) * cotangent) / (2 * step)
        grads.append(grad)
    return grads


@pytest.mark.parametrize("primitive", ["lstm_cell", "attention_weights", "tiled_attention", "layer_norm"])
def test_vjp_agrees_with_finite_differences(backend: JaxBackend, primitive: str) -> None:
    hidden = 3
    if primitive == "lstm_cell":
        params = {"w_ih": random(80, 4 * hidden, 2), "w_hh": random(81, 4 * hidden, hidden), "b": random(82, 4 * hidden)}
        primals = [random(83, 1, 2), random(84, 1, hidden), random(85, 1, hidden)]

        def build(lib, call, x, h, c):  # both outputs, so the cell-state path is in the gradient
            h_next, c_next = call(x, h, c, lib(params))
            return h_next + 2.0 * c_next
    elif primitive == "layer_norm":
        primals = [random(86, 2, 5), random(87, 5), random(88, 5)]

        def build(lib, call, *xs):
            return call(*xs)
    else:
        primals = [random(89, 1, 2, 3, 2), random(90, 1, 2, 4, 2)]
        extra = (primals[1], 2, 2) if primitive == "tiled_attention" else ()

        def build(lib, call, q, k):
            return call(q, k, *(lib(e) for e in extra), is_causal=True)

    jax_call, numpy_call = getattr(backend, primitive), getattr(NumpyBackend(), primitive)

    def to_jax(value):
        if isinstance(value, dict):
            return {key: backend.asarray(item) for key, item in value.items()}
        return backend.asarray(value) if isinstance(value, np.ndarray) else value

    out, pullback = backend.vjp(lambda *xs: build(to_jax, jax_call, *xs), *map(backend.asarray, primals))
    cotangent = random(91, *out.shape)
    grads = [backend.to_numpy(g) for g in pullback(backend.asarray(cotangent))]
    expected = _finite_difference_vjp(lambda *xs: build(lambda a: a, numpy_call, *xs), primals, cotangent)
    for grad, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-8)


# -- compilation: the clock and the persistent cache --------------------------------------


def test_compile_clock_counts_new_shapes_only(backend: JaxBackend) -> None:
    x = random(92, 3, 11, 13)  # a shape no other test uses
    before = compile_stats()
    run(backend, "softmax", x)
    after_first = compile_stats()
    run(backend, "softmax", x + 1.0)
    after_second = compile_stats()
    assert after_first["compilations"] >= before["compilations"] + 1
    assert after_first["compile_seconds"] > before["compile_seconds"]
    assert after_second["compilations"] == after_first["compilations"]
    assert backend.compile_seconds() == pytest.approx(compile_stats()["compile_seconds"])


def test_persistent_cache_directory_follows_the_environment_variable(tmp_path: Path) -> None:
    code = (
        "import json, numpy as np\n"
        "from nnspec.backends.jax import JaxBackend, compile_stats\n"
        "backend = JaxBackend()\n"
        "backend.to_numpy(backend.softmax(backend.asarray(np.ones((2, 17)))))\n"
        "print(json.dumps([backend.environment()['jax_compilation_cache'], compile_stats()]))\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    outputs = []
    for value in (str(tmp_path / "cache"), str(tmp_path / "cache"), "off"):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env={**environment, "NNSPEC_JAX_CACHE": value})
        outputs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    (first_dir, first), (second_dir, second), (off_dir, _) = outputs
    assert first_dir == second_dir == str(tmp_path / "cache") and off_dir == "off"
    assert any((tmp_path / "cache").iterdir())
    assert first["persistent_cache_hits"] == 0 and second["persistent_cache_hits"] >= 1


# -- the mutants differ from the backend where their names say -------------------------------


def test_stop_gradient_lstm_has_the_right_forward_and_a_cut_cell_state_gradient(backend: JaxBackend) -> None:
    mutant = jax_mutants.StopGradientCellStateLSTM()
    hidden = 3
    params = {n: backend.asarray(random(93 + i, 4 * hidden, s)) for i, (n, s) in enumerate((("w_ih", 2), ("w_hh", hidden)))}
    params["b"] = backend.asarray(random(95, 4 * hidden))
    x, h, c = (backend.asarray(random(96 + i, 1, s)) for i, s in enumerate((2, hidden, hidden)))

    def cell_state_gradient(which: JaxBackend) -> np.ndarray:
        forward, pullback = which.vjp(lambda c: which.lstm_cell(x, h, c, params)[1], c)
        return forward, backend.to_numpy(pullback(jax.numpy.ones_like(forward))[0])

    (right_c, right_grad), (mutant_c, mutant_grad) = cell_state_gradient(backend), cell_state_gradient(mutant)
    np.testing.assert_array_equal(backend.to_numpy(mutant_c), backend.to_numpy(right_c))
    assert np.all(right_grad > 0) and np.all(mutant_grad == 0)


@pytest.mark.parametrize("mutant_class, primitive", [
    (jax_mutants.AttentionScaledByDim, "attention"),
    (jax_mutants.SoftmaxOverFirstAxis, "softmax"),
    (jax_mutants.AttentionLayoutNotTransposed, "attention"),
    (jax_mutants.RopeRotatesHalves, "rope"),
    (jax_mutants.LayerNormUnbiasedVariance, "layer_norm"),
    (jax_mutants.GRUResetBeforeMatmul, "gru_cell"),
], ids=lambda value: getattr(value, "__name__", value))
def test_each_forward_mutant_departs_from_the_backend(backend: JaxBackend, mutant_class: type, primitive: str) -> None:
    args, kwargs = _cases()[primitive]
    if primitive == "attention":
        q = random(97, B, H, S, D)  # L == S and no mask: the untransposed layout still fits
        args, kwargs = (q, args[1], args[2]), {}
    right, wrong = run(backend, primitive, *args, **kwargs), run(mutant_class(), primitive, *args, **kwargs)
    assert right.shape == wrong.shape and np.max(np.abs(right - wrong)) > 1e-3
    assert mutant_class in jax_mutants.REJECTED_BY
