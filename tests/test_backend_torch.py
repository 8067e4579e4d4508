"""The torch backend against float64 formulas written here, and its conventions pinned.

The references below are written from the protocol's docstrings, independently of both
backends. GPU tests run the real CUDA kernels and skip without a CUDA device.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nnspec.backends import PRIMITIVES, Backend, InputNotSupported, Unavailable  # noqa: E402
from nnspec.backends import torch as torch_module  # noqa: E402
from nnspec.backends.discovery import resolve  # noqa: E402
from nnspec.backends.numpy import NumpyBackend  # noqa: E402
from nnspec.backends.torch import TorchBackend  # noqa: E402
from nnspec.errors import BackendError  # noqa: E402

CPU_TARGETS = [t for t in TorchBackend.targets() if t.split("/")[0] == "cpu"]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    return TorchBackend("cpu")


@pytest.fixture(params=CPU_TARGETS)
def attention_backend(request: pytest.FixtureRequest) -> TorchBackend:
    device, _, variant = request.param.partition("/")
    return TorchBackend(device, variant or None)


def random(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def to_torch(backend: TorchBackend, *arrays: np.ndarray) -> list:
    return [backend.asarray(a) for a in arrays]


# -- float64 references, from the formulas ---------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def reference_weights(q, k, mask=None, is_causal=False, scale=None):
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = scale * np.einsum("bhld,bhsd->bhls", q, k)
    allowed = np.ones(logits.shape, dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, logits.shape)
    if is_causal:
        query, key = np.indices(logits.shape[-2:])
        allowed &= key <= query
    weights = np.zeros_like(logits)
    for index in np.ndindex(logits.shape[:-1]):
        row_allowed = allowed[index]
        if row_allowed.any():  # a fully masked row keeps zero weights
            e = np.exp(logits[index][row_allowed] - logits[index][row_allowed].max())
            weights[index][row_allowed] = e / e.sum()
    return weights


def reference_attention(q, k, v, mask=None, is_causal=False, scale=None):
    return reference_weights(q, k, mask, is_causal, scale) @ v


SHAPES = [(1, 1, 1, 1, 4), (2, 3, 5, 5, 8), (1, 2, 3, 7, 16), (2, 1, 6, 2, 4)]  # B, H, L, S, D


# -- the protocol surface --------------------------------------------------------------------


def test_primitives_are_defined_in_protocol_order() -> None:
    defined = [name for name in vars(TorchBackend) if name in PRIMITIVES]
    assert defined == list(PRIMITIVES)


def test_plain_target_supports_every_primitive_and_variants_only_attention(backend: TorchBackend) -> None:
    assert all(backend.supports(p) for p in PRIMITIVES)
    math_variant = TorchBackend("cpu", "math")
    assert {p for p in PRIMITIVES if math_variant.supports(p)} == {
        "attention", "multi_head_attention", "attention_with_bias", "vjp"
    }


class ThirdPartyAttention(TorchBackend):
    """A user's attention function in place of SDPA (here a plain formula): one target per device."""

    name = "third-party-attention"

    def attention(self, q, k, v, mask=None, is_causal=False, scale=None):  # type: ignore[no-untyped-def]
        weights = self.attention_weights(q, k, mask=mask, is_causal=is_causal, scale=scale)
        return weights @ v

    def attention_with_bias(self, q, k, v, bias, scale=None):  # type: ignore[no-untyped-def]
        scale = 1.0 / q.shape[-1] ** 0.5 if scale is None else scale
        return self.torch.softmax((q @ k.transpose(-1, -2)) * scale + bias, dim=-1) @ v


class OnlyAttentionReplaced(TorchBackend):
    name = "only-attention-replaced"
    attention = ThirdPartyAttention.attention


class RoutedThroughSdpa(ThirdPartyAttention):
    """An override that calls SDPA itself and says so: its variants stay."""

    name = "routed-through-sdpa"
    variant_primitives = frozenset({"attention", "multi_head_attention", "vjp"})


def test_variant_targets_only_where_the_subclass_still_reaches_sdpa() -> None:
    assert ThirdPartyAttention.targets() == ["cpu", "cuda"]
    assert [t.target for t in resolve("tests.test_backend_torch:ThirdPartyAttention")] == [
        "third-party-attention:cpu", "third-party-attention:cuda"]
    # attention_with_bias still is SDPA: the variants run it (and vjp), never the replaced attention
    # nor multi-head attention, which is composed from it.
    assert OnlyAttentionReplaced.variant_primitives_in_play() == {"attention_with_bias", "vjp"}
    variant = OnlyAttentionReplaced("cpu", "math")
    assert {p for p in PRIMITIVES if variant.supports(p)} == {"attention_with_bias", "vjp"}
    assert "cpu/math" in RoutedThroughSdpa.targets()
    assert RoutedThroughSdpa.variant_primitives_in_play() == {"attention", "multi_head_attention", "vjp"}


def test_a_selector_names_one_target_all_of_them_or_a_glob() -> None:
    assert [t.target for t in resolve("torch:cpu")] == ["torch:cpu"]
    assert [t.target for t in resolve("torch:cpu*")] == ["torch:cpu", "torch:cpu/math", "torch:cpu/flash"]
    assert [t.target for t in resolve("torch")] == [f"torch:{spec}" for spec in TorchBackend.targets()]
    assert [t.selector for t in resolve("torch:cpu/*")] == ["torch:cpu/math", "torch:cpu/flash"]
    with pytest.raises(BackendError, match="'cpu/nope' is not one of them"):
        resolve("torch:cpu/nope")


@pytest.mark.parametrize("backend_class", [NumpyBackend, TorchBackend])
def test_composites_go_through_the_backends_own_primitives_unless_declared_fused(backend_class: type) -> None:
    from tests.fixtures.composition import composition_problems

    assert composition_problems(backend_class()) == []
    assert TorchBackend.fused == {"lstm_sequence"}  # torch.nn.LSTM's own layer


def test_targets_name_device_and_kernel() -> None:
    assert TorchBackend("cpu", "flash").target == "torch:cpu/flash"
    assert {"cpu", "cpu/math", "cuda", "cuda/flash", "cuda/efficient", "cuda/cudnn"} <= set(TorchBackend.targets())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks behaviour without a CUDA device")
def test_cuda_targets_are_unavailable_with_a_reason_without_cuda() -> None:
    for spec in TorchBackend.targets():
        ok, reason = TorchBackend.available(spec)
        assert ok == spec.startswith("cpu"), spec
        assert reason == ("" if ok else torch_module._no_cuda_reason(torch))
        assert ok or reason.startswith("no CUDA device: "), reason
    with pytest.raises(Unavailable, match="no CUDA device"):
        TorchBackend("cuda", "flash")
    reasons = {t.target: t.reason for t in resolve("torch")}
    assert reasons["torch:cuda/cudnn"].startswith("no CUDA device")
    assert reasons["torch:cpu/math"] == ""


# -- GPU readiness, exercised on the CPU through stubs -------------------------------------------


class _Namespace:
    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)


def _fake_torch(cuda_build: str | None) -> _Namespace:
    return _Namespace(__version__="2.13.0", version=_Namespace(cuda=cuda_build))


def test_no_cuda_reason_names_a_cpu_only_wheel() -> None:
    reason = torch_module._no_cuda_reason(_fake_torch(None))
    assert "CPU-only build" in reason and "gpu-cuda13" in reason


def test_no_cuda_reason_names_a_driver_too_old_for_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    import nnspec.gpu

    monkeypatch.setattr(nnspec.gpu, "nvidia_driver_version", lambda: "550.54.15")
    reason = torch_module._no_cuda_reason(_fake_torch("13.0"))
    assert "driver 550.54.15 is too old" in reason and "CUDA 13.0" in reason and ">= 580.65" in reason
    assert "gpu-cuda12" in reason
    # The same driver runs a CUDA 12 build: then the cause is elsewhere, and said so.
    assert "present but torch (CUDA 12.6) sees no GPU" in torch_module._no_cuda_reason(_fake_torch("12.6"))


def test_no_cuda_reason_names_a_missing_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    import nnspec.gpu

    monkeypatch.setattr(nnspec.gpu, "nvidia_driver_version", lambda: None)
    assert "no NVIDIA driver found" in torch_module._no_cuda_reason(_fake_torch("13.0"))


def test_constructing_a_backend_sets_ieee_fp32_precision_and_records_it(backend: TorchBackend) -> None:
    for holder in (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn):
        holder.fp32_precision = "tf32"  # what torch 2.13 leaves on cuDNN convolutions and RNNs
    TorchBackend("cpu")
    environment = TorchBackend("cpu").environment()
    for path in ("cudnn", "cudnn.conv", "cudnn.rnn", "cuda.matmul"):
        assert environment[f"fp32_precision.{path}"] == "ieee", environment
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert environment["sdpa_kernel"] == "torch's own choice"
    assert TorchBackend("cpu", "math").environment()["sdpa_kernel"] == "MATH"


def test_precision_flags_are_read_without_the_legacy_allow_tf32_flags() -> None:
    torch_module.set_precision(torch)
    torch.backends.cudnn.rnn.fp32_precision = "tf32"  # conv and rnn now differ: allow_tf32 raises
    try:
        with pytest.raises(RuntimeError, match="allow_tf32"):
            _ = torch.backends.cudnn.allow_tf32
        flags = torch_module.precision_flags(torch)
        assert flags["fp32_precision.cudnn.rnn"] == "tf32" and flags["fp32_precision.cudnn.conv"] == "ieee"
    finally:
        torch_module.set_precision(torch)


def _refusing_torch(usable: bool, reason: str) -> _Namespace:
    def can_use(params: object, debug: bool) -> bool:
        assert debug is True
        if not usable:
            import warnings

            warnings.warn(f"{reason} (Triggered internally at sdp_utils.cpp)", UserWarning, stacklevel=1)
        return usable

    cuda = _Namespace(SDPAParams=lambda *args: args, can_use_flash_attention=can_use,
                      can_use_efficient_attention=can_use, can_use_cudnn_attention=can_use)
    return _Namespace(backends=_Namespace(cuda=cuda))


def test_kernel_refusal_gives_torchs_own_reasons() -> None:
    stub = _refusing_torch(False, "Flash attention does not support non-null attn_mask.")
    reason = torch_module.kernel_refusal(stub, "flash", None, None, None, object(), False)
    assert reason == "Flash attention does not support non-null attn_mask."
    assert torch_module.kernel_refusal(_refusing_torch(True, ""), "cudnn", None, None, None, None, False) == ""
    assert torch_module.kernel_refusal(stub, "math", None, None, None, None, False) == ""


def test_a_refusing_cuda_kernel_raises_input_not_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    flash = TorchBackend("cpu", "flash")
    q = flash.asarray(np.zeros((1, 1, 2, 4)))
    monkeypatch.setattr(flash, "device", "cuda")
    monkeypatch.setattr(torch_module, "kernel_refusal", lambda *args: "head dim 300 exceeds 256")
    with pytest.raises(InputNotSupported, match=r"'flash' on cuda does not take these inputs. Received: head dim 300"):
        flash.attention(q, q, q)


def test_a_cudnn_failure_at_run_time_is_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    flash = TorchBackend("cpu", "flash")

    def failing_sdpa(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cuDNN Frontend error: [cudnn_frontend] Error: No execution plans support the graph.")

    monkeypatch.setattr(flash.functional, "scaled_dot_product_attention", failing_sdpa)
    q = flash.asarray(np.zeros((1, 1, 2, 4)))
    with pytest.raises(InputNotSupported, match="cuDNN has no plan for these inputs"):
        flash.attention(q, q, q)
    monkeypatch.setattr(flash.functional, "scaled_dot_product_attention",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("CUDA error: illegal memory access")))
    with pytest.raises(RuntimeError, match="illegal memory access"):  # a real failure stays one
        flash.attention(q, q, q)


def test_unknown_device_and_variant_are_unavailable_not_crashes() -> None:
    ok, reason = TorchBackend.available("tpu")
    assert not ok and "Received: 'tpu'" in reason
    ok, reason = TorchBackend.available("cpu/efficient")
    assert not ok and "no SDPA kernel 'efficient' on cpu" in reason


def test_missing_torch_is_reported_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    torch_module._probe.cache_clear()
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    try:
        assert TorchBackend.available("cpu") == (False, "torch is not installed: pip install nnspec[torch]")
        with pytest.raises(Unavailable, match=r"pip install nnspec\[torch\]"):
            TorchBackend("cpu")
    finally:
        torch_module._probe.cache_clear()


def test_dtype_support_follows_the_kernel() -> None:
    assert all(TorchBackend("cpu", "flash").supports_dtype(d) for d in ("float64", "float32", "float16", "bfloat16"))
    # Without a GPU a CUDA target cannot be constructed; its dtype table needs only device and variant.
    flash, efficient = Backend.__new__(TorchBackend), Backend.__new__(TorchBackend)
    Backend.__init__(flash, "cuda", "flash")
    Backend.__init__(efficient, "cuda", "efficient")
    assert not flash.supports_dtype("float64") and not flash.supports_dtype("float32")
    assert flash.supports_dtype("bfloat16")
    assert efficient.supports_dtype("float32") and not efficient.supports_dtype("float64")


# -- the boundary ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bool", "int64"])
def test_asarray_keeps_dtype_and_values(backend: TorchBackend, dtype: str) -> None:
    x = (np.arange(6).reshape(2, 3) % 2).astype(dtype)
    tensor = backend.asarray(x)
    assert str(tensor.dtype) == f"torch.{dtype}"
    back = backend.to_numpy(tensor)
    assert back.dtype == x.dtype and np.array_equal(back, x)


def test_asarray_converts_to_a_named_dtype_bfloat16_included(backend: TorchBackend) -> None:
    values = np.array([1.0, 1.0 + 2.0**-7, -3.5], dtype=np.float32)  # exactly representable in bfloat16
    tensor = backend.asarray(values, "bfloat16")
    assert tensor.dtype == torch.bfloat16
    back = backend.to_numpy(tensor)
    assert back.dtype == np.float32 and np.array_equal(back, values)
    assert backend.asarray(values.astype(np.float64), "float16").dtype == torch.float16


def test_bfloat16_round_trips_through_ml_dtypes_and_cast(backend: TorchBackend) -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([1.5, -2.25, 3.0e-3, 65280.0], dtype=ml_dtypes.bfloat16)
    tensor = backend.asarray(x)
    assert tensor.dtype == torch.bfloat16
    back = backend.to_numpy(tensor)
    assert back.dtype == np.float32 and np.array_equal(back, x.astype(np.float32))
    cast = backend.cast(backend.asarray(np.array([1.0 + 2.0**-9])), "bfloat16")
    assert cast.dtype == torch.bfloat16 and backend.to_numpy(cast)[0] == 1.0  # rounded to 8 bits
    with pytest.raises(BackendError, match=r"\['float64', 'float32', 'float16', 'bfloat16'\]. Received: 'int8'"):
        backend.cast(tensor, "int8")


# -- attention -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("is_causal", [False, True])
def test_attention_matches_the_formula(attention_backend: TorchBackend, shape, is_causal: bool) -> None:
    b, h, q_len, k_len, d = shape
    rng = np.random.default_rng(sum(shape))
    q, k, v = random(rng, b, h, q_len, d), random(rng, b, h, k_len, d), random(rng, b, h, k_len, d)
    mask = rng.random((b, 1, q_len, k_len)) < 0.7
    for m in (None, mask):
        out = attention_backend.attention(*to_torch(attention_backend, q, k, v), mask=None if m is None else
                                          attention_backend.asarray(m), is_causal=is_causal)
        expected = reference_attention(q, k, v, m, is_causal)
        np.testing.assert_allclose(attention_backend.to_numpy(out), expected, rtol=1e-10, atol=1e-12)


def test_attention_explicit_scale(attention_backend: TorchBackend) -> None:
    rng = np.random.default_rng(1)
    q, k, v = random(rng, 1, 2, 4, 8), random(rng, 1, 2, 4, 8), random(rng, 1, 2, 4, 8)
    out = attention_backend.attention(*to_torch(attention_backend, q, k, v), scale=0.3)
    np.testing.assert_allclose(attention_backend.to_numpy(out), reference_attention(q, k, v, scale=0.3), rtol=1e-10)


def test_mask_polarity_true_means_may_attend(attention_backend: TorchBackend) -> None:
    rng = np.random.default_rng(2)
    q, k, v = random(rng, 1, 1, 3, 4), random(rng, 1, 1, 5, 4), random(rng, 1, 1, 5, 4)
    only_key_two = np.zeros((3, 5), dtype=bool)
    only_key_two[:, 2] = True
    out = attention_backend.attention(*to_torch(attention_backend, q, k, v), mask=attention_backend.asarray(only_key_two))
    np.testing.assert_allclose(attention_backend.to_numpy(out)[0, 0], np.repeat(v[0, 0, 2:3], 3, axis=0), rtol=1e-12)


@pytest.mark.parametrize(("q_len", "k_len"), [(2, 5), (5, 2)])
def test_causal_is_top_left_aligned_when_lengths_differ(attention_backend: TorchBackend, q_len: int, k_len: int) -> None:
    rng = np.random.default_rng(3)
    q, k, v = random(rng, 1, 1, q_len, 4), random(rng, 1, 1, k_len, 4), random(rng, 1, 1, k_len, 4)
    out = attention_backend.to_numpy(attention_backend.attention(*to_torch(attention_backend, q, k, v), is_causal=True))
    np.testing.assert_allclose(out[0, 0, 0], v[0, 0, 0], rtol=1e-12)  # query 0 sees key 0 only
    top_left = np.tril(np.ones((q_len, k_len), dtype=bool))
    np.testing.assert_allclose(out, reference_attention(q, k, v, mask=top_left), rtol=1e-10)


def test_fully_masked_row_gives_zero_on_cpu_kernels(attention_backend: TorchBackend) -> None:
    rng = np.random.default_rng(4)
    q, k, v = random(rng, 1, 1, 3, 4), random(rng, 1, 1, 4, 4), random(rng, 1, 1, 4, 4)
    mask = np.ones((3, 4), dtype=bool)
    mask[1] = False
    out = attention_backend.to_numpy(
        attention_backend.attention(*to_torch(attention_backend, q, k, v), mask=attention_backend.asarray(mask))
    )
    assert np.array_equal(out[0, 0, 1], np.zeros(4))
    np.testing.assert_allclose(out, reference_attention(q, k, v, mask=mask), rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_fully_masked_row_has_zero_finite_gradients(attention_backend: TorchBackend, dtype: str) -> None:
    rng = np.random.default_rng(20)
    q, k, v = (attention_backend.asarray(random(rng, 1, 1, 3, 4), dtype) for _ in range(3))
    mask = np.ones((3, 3), dtype=bool)
    mask[1] = False
    out, vjp_fn = attention_backend.vjp(
        lambda q, k, v: attention_backend.attention(q, k, v, mask=attention_backend.asarray(mask)), q, k, v
    )
    grad_q, grad_k, grad_v = (attention_backend.to_numpy(g) for g in vjp_fn(torch.ones_like(out)))
    assert all(np.isfinite(g).all() for g in (grad_q, grad_k, grad_v))
    assert np.array_equal(grad_q[0, 0, 1], np.zeros(4))  # the masked query influences nothing


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_attention_weights_match_and_zero_fully_masked_rows(backend: TorchBackend, shape) -> None:
    b, h, q_len, k_len, d = shape
    rng = np.random.default_rng(5 + sum(shape))
    q, k = random(rng, b, h, q_len, d), random(rng, b, h, k_len, d)
    mask = rng.random((b, h, q_len, k_len)) < 0.5
    mask[..., 0, :] = False
    for is_causal in (False, True):
        weights = backend.attention_weights(*to_torch(backend, q, k), mask=backend.asarray(mask), is_causal=is_causal)
        np.testing.assert_allclose(
            backend.to_numpy(weights), reference_weights(q, k, mask, is_causal), rtol=1e-10, atol=1e-15
        )


@pytest.mark.parametrize("blocks", [(1, 1), (2, 3), (4, 2), (16, 16)])
@pytest.mark.parametrize("is_causal", [False, True])
def test_tiled_attention_matches_the_formula(backend: TorchBackend, blocks, is_causal: bool) -> None:
    rng = np.random.default_rng(6)
    q, k, v = 3 * random(rng, 2, 2, 7, 4), 3 * random(rng, 2, 2, 5, 4), random(rng, 2, 2, 5, 3)
    out = backend.tiled_attention(*to_torch(backend, q, k, v), *blocks, is_causal=is_causal)
    np.testing.assert_allclose(backend.to_numpy(out), reference_attention(q, k, v, is_causal=is_causal), rtol=1e-10)


def test_multi_head_attention_splits_heads_contiguously(backend: TorchBackend) -> None:
    rng = np.random.default_rng(7)
    batch, q_len, k_len, width, heads = 2, 4, 3, 6, 3
    x_q, x_kv = random(rng, batch, q_len, width), random(rng, batch, k_len, width)
    params = {f"w_{n}": random(rng, width, width) for n in "qkvo"} | {f"b_{n}": random(rng, width) for n in "qkvo"}
    mask = rng.random((batch, 1, q_len, k_len)) < 0.8

    def heads_of(x):  # (B, T, M) -> (B, H, T, M/H), contiguous slices
        return np.stack([x[..., i * 2 : (i + 1) * 2] for i in range(heads)], axis=1)

    per_head = reference_attention(
        heads_of(x_q @ params["w_q"].T + params["b_q"]), heads_of(x_kv @ params["w_k"].T + params["b_k"]),
        heads_of(x_kv @ params["w_v"].T + params["b_v"]), mask=mask,
    )
    expected = np.concatenate(list(np.moveaxis(per_head, 1, 0)), axis=-1) @ params["w_o"].T + params["b_o"]
    out = backend.multi_head_attention(
        *to_torch(backend, x_q, x_kv), {n: backend.asarray(p) for n, p in params.items()}, heads,
        mask=backend.asarray(mask),
    )
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-10)


@pytest.mark.parametrize("is_causal", [False, True])
def test_linear_attention_matches_the_formula(backend: TorchBackend, is_causal: bool) -> None:
    rng = np.random.default_rng(8)
    q, k, v = random(rng, 1, 2, 5, 3), random(rng, 1, 2, 5, 3), random(rng, 1, 2, 5, 4)

    def phi(x):
        return np.where(x > 0, x + 1, np.exp(x))

    expected = np.zeros((1, 2, 5, 4))
    for head in range(2):
        for i in range(5):
            keys = range(i + 1) if is_causal else range(5)
            numerator = sum(phi(q[0, head, i]) @ np.outer(phi(k[0, head, j]), v[0, head, j]) for j in keys)
            denominator = sum(phi(q[0, head, i]) @ phi(k[0, head, j]) for j in keys)
            expected[0, head, i] = numerator / denominator
    out = backend.linear_attention(*to_torch(backend, q, k, v), is_causal=is_causal)
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-10)


# -- softmax, normalisation, feed-forward, positions -----------------------------------------


def test_softmax_along_an_axis(backend: TorchBackend) -> None:
    x = np.array([[3.0, 0.0, 0.0], [1000.0, 1000.0, -1000.0]])
    out = backend.to_numpy(backend.softmax(backend.asarray(x), axis=-1))
    np.testing.assert_allclose(out[0], np.exp([3, 0, 0]) / np.exp([3, 0, 0]).sum(), rtol=1e-12)
    np.testing.assert_allclose(out[1], [0.5, 0.5, 0.0], atol=1e-300)
    columns = backend.to_numpy(backend.softmax(backend.asarray(x[:, :2]), axis=0))
    np.testing.assert_allclose(columns.sum(axis=0), [1.0, 1.0], rtol=1e-12)


def test_layer_norm_and_feed_forward(backend: TorchBackend) -> None:
    rng = np.random.default_rng(9)
    x, weight, bias = random(rng, 2, 3, 6), random(rng, 6), random(rng, 6)
    normalised = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3)
    out = backend.layer_norm(*to_torch(backend, x, weight, bias), eps=1e-3)
    np.testing.assert_allclose(backend.to_numpy(out), normalised * weight + bias, rtol=1e-10)
    params = {"w_1": random(rng, 8, 6), "b_1": random(rng, 8), "w_2": random(rng, 6, 8), "b_2": random(rng, 6)}
    expected = np.maximum(x @ params["w_1"].T + params["b_1"], 0) @ params["w_2"].T + params["b_2"]
    out = backend.feed_forward(backend.asarray(x), {n: backend.asarray(p) for n, p in params.items()})
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-10)


@pytest.mark.parametrize("d_model", [1, 4, 7])
def test_sinusoidal_encoding(backend: TorchBackend, d_model: int) -> None:
    out = backend.to_numpy(backend.sinusoidal_encoding(9, d_model, dtype="float64"))
    for position in range(9):
        for column in range(d_model):
            angle = position / 10000 ** ((column - column % 2) / d_model)
            expected = np.sin(angle) if column % 2 == 0 else np.cos(angle)
            assert out[position, column] == pytest.approx(expected, abs=1e-12)
    assert backend.sinusoidal_encoding(3, 4, dtype="float16").dtype == torch.float16


def test_rope_rotates_interleaved_pairs(backend: TorchBackend) -> None:
    rng = np.random.default_rng(10)
    x, positions = random(rng, 1, 2, 5, 6), np.array([0, 3, 1, 7, 2])
    out = backend.to_numpy(backend.rope(backend.asarray(x), backend.asarray(positions), base=100.0))
    for i in range(3):
        angle = positions * 100.0 ** (-2 * i / 6)
        even, odd = x[..., 2 * i], x[..., 2 * i + 1]
        np.testing.assert_allclose(out[..., 2 * i], even * np.cos(angle) - odd * np.sin(angle), rtol=1e-10)
        np.testing.assert_allclose(out[..., 2 * i + 1], even * np.sin(angle) + odd * np.cos(angle), rtol=1e-10)


def test_alibi_bias(backend: TorchBackend) -> None:
    out = backend.to_numpy(backend.alibi_bias(4, 3, 5))
    for head in range(4):
        slope = 2.0 ** (-8.0 * (head + 1) / 4)
        for i in range(3):
            for j in range(5):
                assert out[head, i, j] == pytest.approx(-slope * (i - j) if j <= i else 0.0, abs=1e-15)


# -- recurrent cells -------------------------------------------------------------------------


def test_rnn_cell(backend: TorchBackend) -> None:
    rng = np.random.default_rng(11)
    x, h = random(rng, 3, 4), random(rng, 3, 5)
    params = {"w_ih": random(rng, 5, 4), "w_hh": random(rng, 5, 5), "b": random(rng, 5)}
    out = backend.rnn_cell(*to_torch(backend, x, h), {n: backend.asarray(p) for n, p in params.items()})
    expected = np.tanh(x @ params["w_ih"].T + h @ params["w_hh"].T + params["b"])
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-10)


def test_lstm_cell(backend: TorchBackend) -> None:
    rng = np.random.default_rng(12)
    x, h, c = random(rng, 3, 4), random(rng, 3, 5), random(rng, 3, 5)
    params = {"w_ih": random(rng, 20, 4), "w_hh": random(rng, 20, 5), "b": random(rng, 20)}
    gates = x @ params["w_ih"].T + h @ params["w_hh"].T + params["b"]
    i, f, g, o = sigmoid(gates[:, :5]), sigmoid(gates[:, 5:10]), np.tanh(gates[:, 10:15]), sigmoid(gates[:, 15:])
    c_next = f * c + i * g
    h_out, c_out = backend.lstm_cell(*to_torch(backend, x, h, c), {n: backend.asarray(p) for n, p in params.items()})
    np.testing.assert_allclose(backend.to_numpy(c_out), c_next, rtol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(h_out), o * np.tanh(c_next), rtol=1e-10)


@pytest.mark.parametrize(("open_gate", "expected"), [("f", "c"), ("i", "g")])
def test_lstm_gate_order_is_i_f_g_o(backend: TorchBackend, open_gate: str, expected: str) -> None:
    # Only biases: one gate saturated open, the others shut; g's block sets the candidate to 0.5.
    hidden = 3
    blocks = {"i": -40.0, "f": -40.0, "g": np.arctanh(0.5), "o": 40.0} | {open_gate: 40.0}
    params = {
        "w_ih": np.zeros((4 * hidden, 2)),
        "w_hh": np.zeros((4 * hidden, hidden)),
        "b": np.repeat([blocks[name] for name in "ifgo"], hidden),
    }
    c = np.array([[0.2, -0.7, 0.9]])
    _, c_out = backend.lstm_cell(
        *to_torch(backend, np.ones((1, 2)), np.zeros((1, hidden)), c), {n: backend.asarray(p) for n, p in params.items()}
    )
    np.testing.assert_allclose(backend.to_numpy(c_out), c if expected == "c" else np.full((1, hidden), 0.5), atol=1e-12)


def test_gru_cell_and_reset_inside_the_hidden_product(backend: TorchBackend) -> None:
    rng = np.random.default_rng(13)
    x, h = random(rng, 3, 4), random(rng, 3, 5)
    params = {"w_ih": random(rng, 15, 4), "w_hh": random(rng, 15, 5), "b_ih": random(rng, 15), "b_hh": random(rng, 15)}
    gi = x @ params["w_ih"].T + params["b_ih"]
    gh = h @ params["w_hh"].T + params["b_hh"]
    r, z = sigmoid(gi[:, :5] + gh[:, :5]), sigmoid(gi[:, 5:10] + gh[:, 5:10])
    n = np.tanh(gi[:, 10:] + r * gh[:, 10:])
    out = backend.gru_cell(*to_torch(backend, x, h), {name: backend.asarray(p) for name, p in params.items()})
    np.testing.assert_allclose(backend.to_numpy(out), (1 - z) * n + z * h, rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_cells_run_in_low_precision_close_to_float64(backend: TorchBackend, dtype: str) -> None:
    rng = np.random.default_rng(14)
    x, h, c = random(rng, 2, 3), random(rng, 2, 4), random(rng, 2, 4)
    params = {"w_ih": random(rng, 16, 3), "w_hh": random(rng, 16, 4), "b": random(rng, 16)}
    exact = backend.lstm_cell(*to_torch(backend, x, h, c), {n: backend.asarray(p) for n, p in params.items()})

    def low(a):
        return backend.cast(backend.asarray(a), dtype)

    rounded = backend.lstm_cell(low(x), low(h), low(c), {n: low(p) for n, p in params.items()})
    assert rounded[0].dtype == getattr(torch, dtype)
    eps = float(torch.finfo(getattr(torch, dtype)).eps)
    np.testing.assert_allclose(backend.to_numpy(rounded[1]), backend.to_numpy(exact[1]), atol=40 * eps)


# -- gradients ---------------------------------------------------------------------------------


def finite_difference(function, x: np.ndarray, cotangent: np.ndarray, step: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        grad[index] = np.sum((function(plus) - function(minus)) * cotangent) / (2 * step)
    return grad


def test_vjp_of_attention_matches_finite_differences(attention_backend: TorchBackend) -> None:
    rng = np.random.default_rng(15)
    q, k, v = random(rng, 1, 2, 3, 4), random(rng, 1, 2, 4, 4), random(rng, 1, 2, 4, 4)
    mask = attention_backend.asarray(rng.random((1, 1, 3, 4)) < 0.8)
    kt, vt = to_torch(attention_backend, k, v)
    cotangent = random(rng, 1, 2, 3, 4)

    def forward(q_t):
        return attention_backend.attention(q_t, kt, vt, mask=mask, is_causal=True)

    _, vjp_fn = attention_backend.vjp(forward, attention_backend.asarray(q))
    (grad_q,) = vjp_fn(attention_backend.asarray(cotangent))
    numeric = finite_difference(
        lambda a: attention_backend.to_numpy(forward(attention_backend.asarray(a))), q, cotangent
    )
    np.testing.assert_allclose(attention_backend.to_numpy(grad_q), numeric, rtol=1e-6, atol=1e-8)


def test_vjp_of_lstm_cell_state_is_the_forget_gate(backend: TorchBackend) -> None:
    rng = np.random.default_rng(16)
    x, h, c = random(rng, 2, 3), random(rng, 2, 4), random(rng, 2, 4)
    params = {n: backend.asarray(p) for n, p in
              {"w_ih": random(rng, 16, 3), "w_hh": random(rng, 16, 4), "b": random(rng, 16)}.items()}
    xt, ht = to_torch(backend, x, h)
    _, vjp_fn = backend.vjp(lambda c_t: backend.lstm_cell(xt, ht, c_t, params)[1], backend.asarray(c))
    (grad_c,) = vjp_fn(torch.ones(2, 4, dtype=torch.float64))
    gates = x @ backend.to_numpy(params["w_ih"]).T + h @ backend.to_numpy(params["w_hh"]).T + backend.to_numpy(params["b"])
    np.testing.assert_allclose(backend.to_numpy(grad_c), sigmoid(gates[:, 4:8]), rtol=1e-12)


def test_vjp_of_two_outputs_and_two_inputs(backend: TorchBackend) -> None:
    rng = np.random.default_rng(17)
    x, h, c = random(rng, 1, 2), random(rng, 1, 3), random(rng, 1, 3)
    params = {n: backend.asarray(p) for n, p in
              {"w_ih": random(rng, 12, 2), "w_hh": random(rng, 12, 3), "b": random(rng, 12)}.items()}
    xt = backend.asarray(x)
    cot_h, cot_c = random(rng, 1, 3), random(rng, 1, 3)
    _, vjp_fn = backend.vjp(lambda h_t, c_t: backend.lstm_cell(xt, h_t, c_t, params), *to_torch(backend, h, c))
    grad_h, grad_c = vjp_fn(tuple(to_torch(backend, cot_h, cot_c)))

    def both(h_a, c_a):
        out = backend.lstm_cell(xt, *to_torch(backend, h_a, c_a), params)
        return np.concatenate([backend.to_numpy(o) for o in out], axis=-1)

    cotangent = np.concatenate([cot_h, cot_c], axis=-1)
    np.testing.assert_allclose(backend.to_numpy(grad_h), finite_difference(lambda a: both(a, c), h, cotangent), rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(grad_c), finite_difference(lambda a: both(h, a), c, cotangent), rtol=1e-6)


# -- against the NumPy reference: the primitives added as the catalogue grew ---------------------


@pytest.fixture(scope="module")
def reference() -> NumpyBackend:
    return NumpyBackend()


def tensors(backend: TorchBackend, params: dict[str, np.ndarray]) -> dict:
    return {name: backend.asarray(value) for name, value in params.items()}


def lstm_params(rng: np.random.Generator, inputs: int, hidden: int) -> dict[str, np.ndarray]:
    return {"w_ih": random(rng, 4 * hidden, inputs), "w_hh": random(rng, 4 * hidden, hidden), "b": random(rng, 4 * hidden)}


def test_peephole_lstm_cell_agrees_with_numpy(backend: TorchBackend, reference: NumpyBackend) -> None:
    rng = np.random.default_rng(30)
    x, h, c = random(rng, 3, 4), random(rng, 3, 5), random(rng, 3, 5)
    params = lstm_params(rng, 4, 5) | {name: random(rng, 5) for name in ("p_i", "p_f", "p_o")}
    actual = backend.peephole_lstm_cell(*to_torch(backend, x, h, c), tensors(backend, params))
    for got, want in zip(actual, reference.peephole_lstm_cell(x, h, c, params), strict=True):
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [6, 1, 4]], ids=["full", "padded"])
def test_lstm_sequence_agrees_with_numpy(backend: TorchBackend, reference: NumpyBackend, lengths, reverse: bool) -> None:
    rng = np.random.default_rng(31)
    xs, h0, c0 = random(rng, 3, 6, 4), random(rng, 3, 5), random(rng, 3, 5)
    params = lstm_params(rng, 4, 5)
    lengths = None if lengths is None else np.array(lengths)
    if lengths is not None:  # padding holds garbage that a layer reading it would show
        xs = np.where(np.arange(6)[None, :, None] >= lengths[:, None, None], 1e3, xs)
    actual = backend.lstm_sequence(
        *to_torch(backend, xs, h0, c0), tensors(backend, params),
        lengths=None if lengths is None else backend.asarray(lengths), reverse=reverse,
    )
    expected = reference.lstm_sequence(xs, h0, c0, params, lengths=lengths, reverse=reverse)
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ratio", [0.5, 3.0])
def test_clip_grad_norm_agrees_with_numpy_and_leaves_inputs_alone(
    backend: TorchBackend, reference: NumpyBackend, ratio: float
) -> None:
    rng = np.random.default_rng(32)
    grads = [random(rng, 3, 2), random(rng, 4), random(rng, 1, 1)]
    norm = np.sqrt(sum(np.sum(g**2) for g in grads))
    grads = [g * (ratio * 2.0 / norm) for g in grads]  # global norm = ratio * max_norm
    inputs = to_torch(backend, *grads)
    clipped = backend.clip_grad_norm(inputs, 2.0)
    for got, want, given, original in zip(clipped, reference.clip_grad_norm(grads, 2.0), inputs, grads, strict=True):
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-6)  # torch divides by norm + 1e-6
        assert np.array_equal(backend.to_numpy(given), original)


def test_stop_gradient_keeps_the_value_and_blocks_the_gradient(backend: TorchBackend) -> None:
    rng = np.random.default_rng(33)
    x = backend.asarray(random(rng, 4))
    out, vjp_fn = backend.vjp(lambda a: backend.stop_gradient(a) * a, x)
    (grad,) = vjp_fn(torch.ones_like(out))
    np.testing.assert_array_equal(backend.to_numpy(out), backend.to_numpy(x) ** 2)
    np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(x))  # d(c * a)/da = c, not 2a


def test_warmup_schedule_agrees_with_numpy(backend: TorchBackend, reference: NumpyBackend) -> None:
    steps = np.array([1, 2, 399, 400, 401, 1600, 12345])
    actual = backend.to_numpy(backend.warmup_schedule(backend.asarray(steps), 512, 400))
    np.testing.assert_allclose(actual, reference.warmup_schedule(steps, 512, 400), rtol=1e-14)


def test_additive_attention_scores_agree_with_numpy(backend: TorchBackend, reference: NumpyBackend) -> None:
    rng = np.random.default_rng(34)
    query, keys = random(rng, 2, 3), random(rng, 2, 5, 4)
    params = {"w_query": random(rng, 6, 3), "w_key": random(rng, 6, 4), "v": random(rng, 6)}
    actual = backend.additive_attention_scores(*to_torch(backend, query, keys), tensors(backend, params))
    np.testing.assert_allclose(
        backend.to_numpy(actual), reference.additive_attention_scores(query, keys, params), rtol=1e-10
    )


@pytest.mark.parametrize("general", [False, True], ids=["dot", "general"])
def test_luong_scores_agree_with_numpy(backend: TorchBackend, reference: NumpyBackend, general: bool) -> None:
    rng = np.random.default_rng(35)
    query, keys = random(rng, 2, 3), random(rng, 2, 5, 4 if general else 3)
    weight = random(rng, 3, 4) if general else None
    actual = backend.luong_scores(*to_torch(backend, query, keys), None if weight is None else backend.asarray(weight))
    np.testing.assert_allclose(backend.to_numpy(actual), reference.luong_scores(query, keys, weight), rtol=1e-10)


@pytest.mark.parametrize("beam_width", [1, 3, 20])
@pytest.mark.parametrize("ties", [False, True])
def test_beam_search_agrees_with_numpy(
    backend: TorchBackend, reference: NumpyBackend, beam_width: int, ties: bool
) -> None:
    rng = np.random.default_rng(36 + beam_width)
    initial, transitions = random(rng, 4), random(rng, 3, 4, 4)
    if ties:  # a few distinct values: the tie-breaking rule decides which sequences are kept
        initial, transitions = np.round(initial), np.round(transitions)
    tokens, scores = backend.beam_search(*to_torch(backend, initial, transitions), beam_width)
    expected_tokens, expected_scores = reference.beam_search(initial, transitions, beam_width)
    np.testing.assert_array_equal(backend.to_numpy(tokens), expected_tokens)
    np.testing.assert_allclose(backend.to_numpy(scores), expected_scores, rtol=1e-12)


def test_mlm_corrupt_follows_the_law_and_the_seed(backend: TorchBackend) -> None:
    # torch's random stream is not NumPy's: the law is checked, not the draw.
    rng = np.random.default_rng(37)
    tokens = rng.integers(1, 50, (200, 250))
    corrupted, selected = (backend.to_numpy(a) for a in backend.mlm_corrupt(backend.asarray(tokens), 50, 0, seed=7))
    assert selected.dtype == bool and corrupted.dtype == tokens.dtype
    assert np.array_equal(corrupted[~selected], tokens[~selected])
    total, chosen = tokens.size, int(selected.sum())
    assert abs(chosen - 0.15 * total) < 5 * np.sqrt(0.15 * 0.85 * total)
    masked = int(np.sum(corrupted[selected] == 0))
    assert abs(masked - 0.8 * chosen) < 5 * np.sqrt(0.8 * 0.2 * chosen)
    again, _ = backend.mlm_corrupt(backend.asarray(tokens), 50, 0, seed=7)
    other, _ = backend.mlm_corrupt(backend.asarray(tokens), 50, 0, seed=8)
    assert np.array_equal(backend.to_numpy(again), corrupted)
    assert not np.array_equal(backend.to_numpy(other), corrupted)


def test_patch_embed_agrees_with_numpy(backend: TorchBackend, reference: NumpyBackend) -> None:
    rng = np.random.default_rng(38)
    images, weight, bias = random(rng, 2, 3, 6, 9), random(rng, 5, 3, 3, 3), random(rng, 5)
    actual = backend.patch_embed(*to_torch(backend, images, weight, bias))
    np.testing.assert_allclose(backend.to_numpy(actual), reference.patch_embed(images, weight, bias), rtol=1e-10)


def test_gat_attention_agrees_with_numpy(backend: TorchBackend, reference: NumpyBackend) -> None:
    rng = np.random.default_rng(39)
    h, w, a = random(rng, 6, 4), random(rng, 3, 4), random(rng, 6)
    adjacency = (rng.random((6, 6)) < 0.4) | np.eye(6, dtype=bool)
    actual = backend.to_numpy(backend.gat_attention(*to_torch(backend, h, adjacency, w, a), negative_slope=0.1))
    np.testing.assert_allclose(actual, reference.gat_attention(h, adjacency, w, a, negative_slope=0.1), rtol=1e-10)
    assert np.all(actual[~adjacency] == 0.0)


@pytest.mark.parametrize("bias_kind", ["alibi", "additive_mask"])
def test_attention_with_bias_agrees_with_numpy(
    attention_backend: TorchBackend, reference: NumpyBackend, bias_kind: str
) -> None:
    rng = np.random.default_rng(40)
    q, k, v = random(rng, 2, 2, 4, 8), random(rng, 2, 2, 5, 8), random(rng, 2, 2, 5, 8)
    if bias_kind == "alibi":
        bias = reference.alibi_bias(2, 4, 5)  # (H, L, S), broadcast over the batch
    else:
        allowed = rng.random((2, 1, 4, 5)) < 0.5
        allowed[..., 0] = True  # every row keeps a key
        bias = np.where(allowed, 0.0, -np.inf)
    actual = attention_backend.attention_with_bias(*to_torch(attention_backend, q, k, v, bias), scale=0.4)
    np.testing.assert_allclose(
        attention_backend.to_numpy(actual), reference.attention_with_bias(q, k, v, bias, scale=0.4), rtol=1e-10
    )


def test_a_kernel_that_refuses_inputs_raises_input_not_supported() -> None:
    flash = TorchBackend("cpu", "flash")  # torch's CPU flash kernel needs Dv == D
    rng = np.random.default_rng(41)
    q, k, v = to_torch(flash, random(rng, 1, 1, 3, 4), random(rng, 1, 1, 3, 4), random(rng, 1, 1, 3, 2))
    with pytest.raises(InputNotSupported, match="'flash' on cpu does not take these inputs"):
        flash.attention(q, k, v)
    np.testing.assert_allclose(  # the plain target's own kernel choice takes them
        TorchBackend("cpu").to_numpy(TorchBackend("cpu").attention(q, k, v)),
        reference_attention(*(flash.to_numpy(t) for t in (q, k, v))), rtol=1e-10,
    )


# -- the real CUDA kernels -----------------------------------------------------------------------

CUDA_KERNEL_CASES = [
    ("flash", "float16"), ("flash", "bfloat16"), ("efficient", "float16"), ("efficient", "bfloat16"),
    ("efficient", "float32"), ("cudnn", "float16"), ("cudnn", "bfloat16"), ("math", "float64"),
]


@needs_cuda
@pytest.mark.parametrize(("variant", "dtype"), CUDA_KERNEL_CASES)
@pytest.mark.parametrize("is_causal", [False, True])
def test_cuda_kernel_error_is_within_the_dense_error_in_its_precision(variant: str, dtype: str, is_causal: bool) -> None:
    ok, reason = TorchBackend.available(f"cuda/{variant}")
    if not ok:
        pytest.skip(reason)
    gpu = TorchBackend("cuda", variant)
    rng = np.random.default_rng(18)
    q, k, v = (random(rng, 2, 4, 128, 64) for _ in range(3))
    expected = reference_attention(q, k, v, is_causal=is_causal)
    low = [gpu.cast(gpu.asarray(a), dtype) for a in (q, k, v)]
    kernel_error = np.abs(gpu.to_numpy(gpu.attention(*low, is_causal=is_causal)).astype(np.float64) - expected).max()
    # The yardstick: a plain dense implementation in the same precision (matmul, softmax, matmul).
    q_l, k_l, v_l = low
    logits = (q_l @ k_l.transpose(-1, -2)) * (1.0 / 8.0)
    if is_causal:
        logits = logits.masked_fill(~torch.ones(128, 128, dtype=torch.bool, device="cuda").tril(), float("-inf"))
    dense = gpu.to_numpy(torch.softmax(logits, dim=-1) @ v_l).astype(np.float64)
    dense_error = np.abs(dense - expected).max()
    eps = float(torch.finfo(getattr(torch, dtype)).eps)
    assert kernel_error <= 4 * dense_error + 4 * eps, (kernel_error, dense_error)


@needs_cuda
def test_cuda_fully_masked_rows_per_kernel_are_recorded() -> None:
    # Not an assertion of one answer: what each kernel returns is a divergence to record.
    rng = np.random.default_rng(19)
    q, k, v = (random(rng, 1, 1, 8, 64) for _ in range(3))
    mask = np.ones((8, 8), dtype=bool)
    mask[3] = False
    for variant in ("math", "efficient", "cudnn"):
        if not TorchBackend.available(f"cuda/{variant}")[0]:
            continue
        gpu = TorchBackend("cuda", variant)
        low = [gpu.cast(gpu.asarray(a), "float16") for a in (q, k, v)]
        try:
            row = gpu.to_numpy(gpu.attention(*low, mask=gpu.asarray(mask)))[0, 0, 3]
        except (RuntimeError, InputNotSupported) as error:  # a kernel may refuse boolean masks outright
            print(f"cuda/{variant}: refuses the mask: {error}")
            continue
        print(f"cuda/{variant}: fully masked row -> {row[:4]}")
        # 0 (math's safe softmax), NaN, or mean(v): cuDNN fills masked logits with a finite
        # large negative number, so a fully masked row weights every key equally.
        mean_v = gpu.to_numpy(low[2])[0, 0].astype(np.float64).mean(axis=0)
        assert (np.all(row == 0) or np.all(np.isnan(row))
                or np.allclose(row.astype(np.float64), mean_v, atol=1e-2)), row


def test_preferred_kernels_follow_torchs_priority_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stub CUDA: torch's real priority order (flash, efficient, math, cudnn, ...), a flash kernel
    # that takes half precision only, and an efficient kernel that takes float32.
    stub = _Namespace(
        _C=_Namespace(_get_sdp_priority_order=torch._C._get_sdp_priority_order),
        zeros=lambda shape, dtype, device: _Namespace(dtype=dtype, shape=shape, device=device),
        float32="float32", float16="float16", bfloat16="bfloat16",
    )

    def refusal(torch_: object, variant: str, q: _Namespace, *rest: object) -> str:
        assert q.device == "cuda"
        takes = {"flash": ("float16", "bfloat16"), "efficient": ("float32",), "cudnn": ()}[variant]
        return "" if q.dtype in takes else f"{variant} takes no {q.dtype}"

    monkeypatch.setattr(torch_module, "kernel_refusal", refusal)
    found = torch_module.preferred_kernels(stub)
    assert found["sdpa_priority_order"].startswith("FLASH_ATTENTION, EFFICIENT_ATTENTION, MATH")
    assert found["sdpa_preferred.float16.2x4x128x64"] == "flash"
    assert found["sdpa_preferred.float32.2x4x128x64"] == "efficient"
    assert len([key for key in found if key.startswith("sdpa_preferred.")]) == 9
