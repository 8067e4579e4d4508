"""The JAX backend: JAX's own kernels, jitted, adapted to the protocol's conventions.

Targets are ``cpu`` and ``gpu`` (JAX's default attention implementation) and one variant per
``jax.nn.dot_product_attention`` implementation on the GPU (``gpu/xla``, ``gpu/cudnn``). As with
the torch backend, a variant target supports only the primitives whose result depends on that
implementation (``attention``, ``multi_head_attention``, and ``vjp`` through them).

Three things about JAX shape this adapter:

- float64: JAX silently computes in float32 unless x64 is enabled. Constructing a backend turns
  ``jax_enable_x64`` on for the process, and :meth:`JaxBackend.environment` records the flag.
- Layout: ``jax.nn.dot_product_attention`` takes ``(B, L, H, D)``; the protocol's ``(B, H, L, D)``
  is transposed at the boundary of :meth:`JaxBackend.attention`.
- Compilation: every primitive is jitted, so JAX compiles once per input shape (a few hundred ms
  on a CPU). A persistent compilation cache (``$NNSPEC_JAX_CACHE``, default
  ``~/.cache/nnspec/jax``; ``off`` disables it) keeps compiled shapes across processes, and
  :func:`compile_stats` reports the time spent compiling, as measured by ``jax.monitoring``.

- Precision: on NVIDIA GPUs JAX runs float32 dots and convolutions in TF32 by default, whose
  error is some thirty times the float32 tolerance. Constructing a backend sets
  ``jax_default_matmul_precision`` to ``"highest"`` (true float32) for the process.
- GPU memory: JAX preallocates 75% of a GPU's memory at first use, which starves a second worker
  or torch in the same job. Unless the user set it, ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` is put
  in the environment before JAX is imported.
- Devices: every primitive runs under ``jax.default_device`` of its target, so ``jax:cpu``
  computes on the CPU on a GPU host too (arrays made inside a primitive included).

All of these are recorded by :meth:`JaxBackend.environment`.

JAX is imported only inside the constructor and the methods: ``import nnspec`` never imports it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from nnspec.backends import _formulas
from nnspec.backends.base import Backend, InputNotSupported, Unavailable
from nnspec.errors import BackendError

Array = Any  # jax.Array; jax is imported only inside functions

INSTALL_HINT = "jax is not installed: pip install nnspec[jax]"
CACHE_ENVIRONMENT_VARIABLE = "NNSPEC_JAX_CACHE"
#: float32 matmuls and convolutions in true float32, not TF32 (see the module docstring).
MATMUL_PRECISION = "highest"
PREALLOCATE_VARIABLE = "XLA_PYTHON_CLIENT_PREALLOCATE"
# cuDNN's fused attention takes head widths up to this (256 from Hopper on; 128 is safe everywhere).
_CUDNN_MAX_HEAD_DIM = 256

_ALL_DTYPES: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
# device -> the jax.nn.dot_product_attention implementations offered there as variants.
_DEVICE_VARIANTS: dict[str, tuple[str, ...]] = {"cpu": (), "gpu": ("xla", "cudnn")}
# cuDNN's fused attention takes half precision only (JAX raises for float32 and float64).
_VARIANT_DTYPES: dict[str, tuple[str, ...]] = {"xla": _ALL_DTYPES, "cudnn": ("float16", "bfloat16")}
# What a variant target implements: the primitives whose result depends on the implementation.
_VARIANT_PRIMITIVES = frozenset({"attention", "multi_head_attention", "vjp"})


# -- process-wide set-up: x64, the persistent cache, the compile-time clock ----------------------


def default_cache_dir() -> str | None:
    """The persistent compilation cache directory, or None when ``$NNSPEC_JAX_CACHE`` is ``off``."""
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE, "")
    if configured.lower() in ("off", "0", "none", "false"):
        return None
    if configured:
        return str(Path(configured).expanduser())
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(cache_home) / "nnspec" / "jax")


# Every event JAX records while turning a traced function into an executable (trace, lowering to
# StableHLO, XLA compilation), and the persistent cache's own events.
_COMPILE_EVENTS: dict[str, str] = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_seconds",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_seconds",
    "/jax/core/compile/backend_compile_duration": "backend_compile_seconds",
}
_CACHE_EVENTS: dict[str, str] = {
    "/jax/compilation_cache/cache_hits": "persistent_cache_hits",
    "/jax/compilation_cache/cache_misses": "persistent_cache_misses",
}
_clock_lock = threading.Lock()
_clock: dict[str, float] = dict.fromkeys(
    [*_COMPILE_EVENTS.values(), "compilations", *_CACHE_EVENTS.values()], 0.0
)


def _on_duration(event: str, duration: float, **_: Any) -> None:
    field = _COMPILE_EVENTS.get(event)
    if field is not None:
        with _clock_lock:
            _clock[field] += duration
            if field == "backend_compile_seconds":
                _clock["compilations"] += 1


def _on_event(event: str, **_: Any) -> None:
    field = _CACHE_EVENTS.get(event)
    if field is not None:
        with _clock_lock:
            _clock[field] += 1


def compile_stats() -> dict[str, float]:
    """Time this process has spent compiling JAX functions since the first JaxBackend was built.

    Measured by ``jax.monitoring`` duration listeners, so it covers every jitted call (the
    primitives, ``vjp``'s traces, eager ops JAX compiles on the fly), not only first calls:
    ``trace_seconds`` (Python tracing), ``lower_seconds`` (to StableHLO),
    ``backend_compile_seconds`` (XLA; a persistent-cache hit replaces the compile by a load and
    is counted in ``persistent_cache_hits``), their sum ``compile_seconds``, and
    ``compilations``, the number of executables built or loaded. Process-wide: JAX's listeners
    are global, so with pytest-xdist each worker reports its own.
    """
    with _clock_lock:
        stats = dict(_clock)
    stats["compile_seconds"] = sum(stats[field] for field in _COMPILE_EVENTS.values())
    return stats


def _import_jax() -> Any:
    # Read by JAX when it starts a GPU client: it has to be in the environment first.
    os.environ.setdefault(PREALLOCATE_VARIABLE, "false")
    try:
        import jax
    except ImportError as error:
        raise Unavailable(INSTALL_HINT) from error
    return jax


@functools.lru_cache(maxsize=1)
def _configure_jax() -> str | None:
    """Enable float64, the persistent compilation cache and the compile clock, once per process.

    Returns the cache directory in use. A cache directory that the user already configured in
    JAX (``JAX_COMPILATION_CACHE_DIR``) is kept.
    """
    jax = _import_jax()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", MATMUL_PRECISION)
    cache_dir: str | None = jax.config.jax_compilation_cache_dir
    if cache_dir is None:
        cache_dir = default_cache_dir()
        if cache_dir is not None:
            jax.config.update("jax_compilation_cache_dir", cache_dir)
            # JAX caches only executables that took over a second to compile by default; the
            # primitives here take 0.05-0.3 s each, and there are hundreds of shapes.
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    jax.monitoring.register_event_listener(_on_event)
    return cache_dir


@functools.cache
def _probe(device: str, variant: str | None) -> str:
    """Why ``device[/variant]`` cannot run here, or ``""`` when it can."""
    try:
        jax = _import_jax()
    except Unavailable as error:
        return str(error)
    if device not in _DEVICE_VARIANTS:
        return f"unknown device; expected one of {sorted(_DEVICE_VARIANTS)}. Received: {device!r}"
    if variant is not None and variant not in _DEVICE_VARIANTS[device]:
        return (
            f"jax offers no attention implementation {variant!r} on {device}; "
            f"expected one of {_DEVICE_VARIANTS[device]}"
        )
    # cuDNN is NVIDIA's: the cudnn variant needs the CUDA platform, not any GPU (ROCm).
    platform = "cuda" if variant == "cudnn" else device
    try:
        jax.devices(platform)
    except RuntimeError as error:
        return f"no {platform} device visible to jax ({jax.__version__}){_cpu_only_hint(device)}: {str(error).strip()}"
    return ""


def _cpu_only_hint(device: str) -> str:
    """Names the usual cause of a missing GPU: a jaxlib without its CUDA plugin."""
    if device != "gpu":
        return ""
    plugins = [name for name in ("jax-cuda13-plugin", "jax-cuda12-plugin", "jax-rocm7-plugin")
               if _installed(name)]
    if plugins:
        return f" although {', '.join(plugins)} is installed (check the NVIDIA driver)"
    return "; jaxlib is CPU-only (no jax-cuda*-plugin installed): pip install -e '.[gpu-cuda13]'"


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# -- jitting methods -------------------------------------------------------------------------

Method = TypeVar("Method", bound=Callable[..., Any])


def jit_method(
    *static_argnames: str, eager_when: Callable[..., bool] | None = None
) -> Callable[[Method], Method]:
    """Jit a backend method on its first call, with ``self`` and ``static_argnames`` static.

    ``self`` is static, so instances of one class on one target share compiled executables
    (JaxBackend hashes by class, device and variant), and a subclass that overrides a primitive
    with its own jitted method compiles its own. A call for which ``eager_when(self, *args,
    **kwargs)`` is true runs op by op instead (a workaround for a JAX bug; see its use). JAX is
    imported only at the first call.
    """

    def decorate(method: Method) -> Method:
        compiled: Callable[..., Any] | None = None
        # jax.jit matches names to positions itself only when given names alone, and `self` has
        # to be static too: give it both lists.
        parameters = list(inspect.signature(method).parameters)
        static_argnums = (0, *(parameters.index(name) for name in static_argnames))

        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal compiled
            if eager_when is not None and eager_when(self, *args, **kwargs):
                with _import_jax().default_device(self._device):
                    return method(self, *args, **kwargs)
            jax = _import_jax()
            if compiled is None:
                compiled = jax.jit(method, static_argnums=static_argnums, static_argnames=static_argnames)
            # The target's device, not JAX's default (the GPU on a GPU host), computes the call.
            with jax.default_device(self._device):
                return compiled(self, *args, **kwargs)

        return call  # type: ignore[return-value]

    return decorate


def _float16_on_cpu(backend: Any, *args: Any, **kwargs: Any) -> bool:
    """Whether a dot_product_attention call would meet JAX's float16-under-jit bug on the CPU.

    ``jax.nn.dot_product_attention`` asks for the dot algorithm F16_F16_F32 and falls back to the
    default when that raises; the CPU rejects it only when compiling, so under ``jax.jit`` the
    fallback never runs and compilation fails ("The precision 'F16_F16_F32' is not supported by
    dot_general on CPU", jax 0.10.2). Called eagerly, the fallback works.
    """
    return backend.device == "cpu" and any(getattr(a, "dtype", None) == np.float16 for a in args)


def _cudnn_inputs(
    q: Array, k: Array, width: int, mask: Array | None, bias: Array | None
) -> tuple[Array | None, Array | None]:
    """Check what cuDNN's fused attention documents it refuses; widen masks to the shapes it takes.

    ``(B, T, N, H)`` inputs. cuDNN takes float16/bfloat16 only and head widths up to 256 (the
    width is already padded to a multiple of 8); a mask or bias must span the full ``(T, S)``, so a
    broadcasting one (the ``(B, 1, 1, S)`` padding mask) is broadcast to it here rather than
    refused.
    """
    import jax.numpy as jnp

    if q.dtype.name not in _VARIANT_DTYPES["cudnn"]:
        raise InputNotSupported(
            f"jax's cuDNN attention takes {list(_VARIANT_DTYPES['cudnn'])} only. Received: {q.dtype.name}"
        )
    if width > _CUDNN_MAX_HEAD_DIM:
        raise InputNotSupported(
            f"jax's cuDNN attention takes head widths up to {_CUDNN_MAX_HEAD_DIM}. Received: {width}"
        )
    q_len, k_len = q.shape[1], k.shape[1]

    def full(x: Array | None) -> Array | None:
        if x is None:
            return None
        return jnp.broadcast_to(x, (*x.shape[:2], q_len, k_len))

    return full(mask), full(bias)


def _default_scale(scale: float | None, dim: int) -> float:
    return 1.0 / math.sqrt(dim) if scale is None else float(scale)


def _allowed(mask: Array | None, is_causal: bool, q_len: int, k_len: int) -> Array | None:
    """The combined boolean "may attend" mask (broadcastable to BHLS), or None; causal is top-left."""
    import jax.numpy as jnp

    allowed = None if mask is None else jnp.asarray(mask, dtype=bool)
    if is_causal:
        causal = jnp.tril(jnp.ones((q_len, k_len), dtype=bool))
        allowed = causal if allowed is None else allowed & causal
    return allowed


class JaxBackend(Backend):
    """JAX on CPU or GPU; attention through ``jax.nn.dot_product_attention``."""

    name: ClassVar[str] = "jax"
    dtypes: ClassVar[tuple[str, ...]] = _ALL_DTYPES
    device_variants: ClassVar[dict[str, tuple[str, ...]]] = _DEVICE_VARIANTS
    variant_primitives: ClassVar[frozenset[str]] = _VARIANT_PRIMITIVES
    divergences: ClassVar[str | None] = "divergences/jax.txt"
    #: A hint to input strategies: every new input shape costs a compilation (~0.1-0.5 s here),
    #: so draw each property's shapes from this many seed-chosen shapes per run.
    shape_pool: ClassVar[int | None] = 4

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        super().__init__(device=device, variant=variant)
        reason = _probe(device, variant)
        if reason:
            raise Unavailable(reason)
        self.jax = _import_jax()
        self.cache_dir = _configure_jax()
        self._device = self.jax.devices(device)[0]
        # dot_product_attention's `implementation`: None is JAX's own choice (today "xla").
        self.implementation = variant

    def __hash__(self) -> int:
        return hash((type(self), self.device, self.variant))

    def __eq__(self, other: object) -> bool:
        # Equal targets of one class share jit caches (``self`` is a static argument of every primitive).
        if type(other) is not type(self):
            return False
        assert isinstance(other, JaxBackend)
        return (other.device, other.variant) == (self.device, self.variant)

    # -- identity ----------------------------------------------------------------------------

    @classmethod
    def available(cls, device: str = "cpu") -> tuple[bool, str]:
        base_device, _, variant = device.partition("/")
        reason = _probe(base_device, variant or None)
        return not reason, reason

    def supports_dtype(self, dtype: str) -> bool:
        if self.variant is not None:
            return dtype in _VARIANT_DTYPES[self.variant]
        return dtype in self.dtypes

    def environment(self) -> dict[str, str]:
        jax = self.jax
        found = {
            "jax": jax.__version__,
            "jaxlib": importlib.metadata.version("jaxlib"),
            "jax_devices": ", ".join(str(device) for device in jax.devices(self.device)),
            "computes_on": str(self._device),
            "jax_enable_x64": str(bool(jax.config.jax_enable_x64)),
            "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
            PREALLOCATE_VARIABLE: os.environ.get(PREALLOCATE_VARIABLE, "unset"),
            "attention_implementation": self.implementation or "jax's own choice",
            "jax_compilation_cache": self.cache_dir or "off",
        }
        for plugin in ("jax-cuda13-plugin", "jax-cuda12-plugin"):
            if _installed(plugin):
                found[plugin] = importlib.metadata.version(plugin)
        if self.device == "gpu":
            from nnspec.gpu import nvidia_driver_version

            found["nvidia_driver"] = nvidia_driver_version() or "unknown"
            found["gpu"] = str(getattr(self._device, "device_kind", self._device))
        return found

    # -- the boundary --------------------------------------------------------------------------

    def asarray(self, x: np.ndarray, dtype: str | None = None) -> Array:
        # bfloat16 inputs arrive as float32 values already on the bfloat16 grid: the cast is exact.
        array = self.jax.device_put(x, self._device)
        return array if dtype is None else self.cast(array, dtype)

    def to_numpy(self, x: Array) -> np.ndarray:
        array = np.asarray(x)
        if array.dtype.name == "bfloat16":
            return array.astype(np.float32)
        return array

    def cast(self, x: Array, dtype: str) -> Array:
        """``x`` converted to the dtype named ``dtype`` (one of :attr:`dtypes`)."""
        if dtype not in _ALL_DTYPES:
            raise BackendError(f"jax backend dtypes are {list(_ALL_DTYPES)}. Received: {dtype!r}")
        return x.astype(dtype)

    def compile_seconds(self) -> float:
        """Seconds this process has spent compiling JAX functions; see :func:`compile_stats`."""
        return compile_stats()["compile_seconds"]

    # -- primitives, family by family in protocol order (PRIMITIVE_FAMILIES) ----------------------

    # attention

    @jit_method("axis")
    def softmax(self, x: Array, axis: int = -1) -> Array:
        return self.jax.nn.softmax(x, axis=axis)

    @jit_method("is_causal", "scale")
    def attention_weights(
        self, q: Array, k: Array, mask: Array | None = None, is_causal: bool = False, scale: float | None = None
    ) -> Array:
        # JAX has no public kernel that returns attention weights; written in jax.numpy.
        import jax.numpy as jnp

        logits = jnp.einsum("bhld,bhsd->bhls", q, k) * _default_scale(scale, q.shape[-1])
        allowed = _allowed(mask, is_causal, q.shape[-2], k.shape[-2])
        if allowed is None:
            return self.jax.nn.softmax(logits, axis=-1)
        allowed = jnp.broadcast_to(allowed, logits.shape)
        any_allowed = jnp.any(allowed, axis=-1, keepdims=True)
        # A fully masked row has no admissible key: its weights are 0. The inner where keeps its
        # logits finite so that neither the forward nor the gradient meets 0/0.
        logits = jnp.where(allowed, logits, -jnp.inf)
        weights = self.jax.nn.softmax(jnp.where(any_allowed, logits, 0.0), axis=-1)
        return jnp.where(any_allowed, weights, 0.0)

    @jit_method("is_causal", "scale", eager_when=_float16_on_cpu)
    def attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Array | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        def to_jax_layout(x: Array) -> Array:  # (B, H, T, D) <-> (B, T, H, D)
            return x.transpose(0, 2, 1, 3)

        out = self._dot_product_attention(
            to_jax_layout(q), to_jax_layout(k), to_jax_layout(v), mask, is_causal, scale
        )
        return to_jax_layout(out)

    def _dot_product_attention(
        self, q: Array, k: Array, v: Array, mask: Array | None, is_causal: bool, scale: float | None,
        bias: Array | None = None,
    ) -> Array:
        """``jax.nn.dot_product_attention`` on ``(B, T, H, D)`` arrays, with any value width ``Dv``.

        JAX requires values of key shape (``Dv == D``), and cuDNN a head width that is a multiple
        of 8. Zero columns change no logit and no output, so the arrays are padded with zeros (the
        scale fixed from the true ``D`` first) and the output sliced back to ``Dv``.
        """
        import jax.numpy as jnp

        dim, value_dim = q.shape[-1], v.shape[-1]
        scale = _default_scale(scale, dim)
        width = max(dim, value_dim)
        if self.implementation == "cudnn":
            width = -(-width // 8) * 8

        def pad(x: Array) -> Array:
            return jnp.pad(x, [(0, 0)] * 3 + [(0, width - x.shape[-1])])

        def four_dimensional(x: Array) -> Array:  # JAX requires 4-D masks and biases
            return x.reshape((1,) * (4 - x.ndim) + x.shape)

        if mask is not None:
            mask = four_dimensional(jnp.asarray(mask, dtype=bool))
        if bias is not None:
            bias = four_dimensional(jnp.asarray(bias, dtype=q.dtype))
        if self.implementation == "cudnn":
            mask, bias = _cudnn_inputs(q, k, width, mask, bias)
        try:
            out = self.jax.nn.dot_product_attention(
                pad(q), pad(k), pad(v), bias=bias, mask=mask, is_causal=is_causal, scale=scale,
                implementation=self.implementation,
            )
        except (ValueError, NotImplementedError) as error:
            if self.implementation != "cudnn":
                raise
            # JAX's cuDNN path checks shapes, dtypes and the GPU while tracing and raises these
            # for what cuDNN does not take (jax/_src/cudnn/fused_attention_stablehlo.py).
            raise InputNotSupported(f"jax's cuDNN attention does not take these inputs. Received: {error}") from error
        return out[..., :value_dim]

    @jit_method("scale", eager_when=_float16_on_cpu)
    def attention_with_bias(self, q: Array, k: Array, v: Array, bias: Array, scale: float | None = None) -> Array:
        def to_jax_layout(x: Array) -> Array:  # (B, H, T, D) <-> (B, T, H, D)
            return x.transpose(0, 2, 1, 3)

        out = self._dot_product_attention(
            to_jax_layout(q), to_jax_layout(k), to_jax_layout(v), None, False, scale, bias=bias
        )
        return to_jax_layout(out)

    @jit_method("block_q", "block_k", "is_causal", "scale")
    def tiled_attention(
        self,
        q: Array,
        k: Array,
        v: Array,
        block_q: int,
        block_k: int,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Array:
        # JAX has no public tiled kernel with selectable block sizes; written with lax loops:
        # lax.map over query blocks, lax.fori_loop over key blocks, an online softmax in each.
        import jax.numpy as jnp
        from jax import lax

        if block_q < 1 or block_k < 1:
            raise BackendError(f"block sizes must be positive. Received: block_q={block_q}, block_k={block_k}")
        q_len, k_len, value_dim = q.shape[-2], k.shape[-2], v.shape[-1]
        scale_value = _default_scale(scale, q.shape[-1])
        # Pad both lengths to whole blocks; padded keys are masked out, padded queries dropped.
        q_blocks, k_blocks = -(-q_len // block_q), -(-k_len // block_k)

        def pad_length(x: Array, length: int) -> Array:
            return jnp.pad(x, [(0, 0), (0, 0), (0, length - x.shape[-2]), (0, 0)])

        q, k, v = pad_length(q, q_blocks * block_q), pad_length(k, k_blocks * block_k), pad_length(v, k_blocks * block_k)
        # Accumulate in at least float32, as flash kernels do for half-precision inputs.
        accumulate = jnp.promote_types(q.dtype, jnp.float32)

        def one_query_block(q_block_index: Array) -> Array:
            q_start = q_block_index * block_q
            q_block = lax.dynamic_slice_in_dim(q, q_start, block_q, axis=2)
            query_index = q_start + jnp.arange(block_q)

            def one_key_block(k_block_index: Array, carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
                running_max, running_sum, accumulator = carry
                k_start = k_block_index * block_k
                k_block = lax.dynamic_slice_in_dim(k, k_start, block_k, axis=2)
                v_block = lax.dynamic_slice_in_dim(v, k_start, block_k, axis=2)
                logits = jnp.einsum("bhld,bhsd->bhls", q_block, k_block).astype(accumulate) * scale_value
                key_index = k_start + jnp.arange(block_k)
                allowed = (key_index < k_len)[None, :]
                if is_causal:
                    allowed = allowed & (key_index[None, :] <= query_index[:, None])
                logits = jnp.where(allowed, logits, -jnp.inf)
                new_max = jnp.maximum(running_max, logits.max(axis=-1, keepdims=True))
                safe_max = jnp.where(jnp.isfinite(new_max), new_max, 0.0)
                # Rescale what was accumulated under the old running maximum to the new one.
                correction = jnp.exp(running_max - safe_max)
                probabilities = jnp.exp(logits - safe_max)
                running_sum = running_sum * correction + probabilities.sum(axis=-1, keepdims=True)
                accumulator = accumulator * correction + jnp.einsum(
                    "bhls,bhsd->bhld", probabilities, v_block.astype(accumulate)
                )
                return new_max, running_sum, accumulator

            rows = (*q.shape[:2], block_q)
            start = (
                jnp.full((*rows, 1), -jnp.inf, dtype=accumulate),
                jnp.zeros((*rows, 1), dtype=accumulate),
                jnp.zeros((*rows, value_dim), dtype=accumulate),
            )
            _, running_sum, accumulator = lax.fori_loop(0, k_blocks, one_key_block, start)
            return accumulator / jnp.where(running_sum > 0, running_sum, 1.0)

        blocks = lax.map(one_query_block, jnp.arange(q_blocks))  # (q_blocks, B, H, block_q, Dv)
        out = jnp.moveaxis(blocks, 0, 2).reshape(*q.shape[:2], q_blocks * block_q, value_dim)
        return out[..., :q_len, :].astype(q.dtype)

    @jit_method("num_heads", "is_causal", eager_when=_float16_on_cpu)
    def multi_head_attention(
        self,
        x_q: Array,
        x_kv: Array,
        params: dict[str, Array],
        num_heads: int,
        mask: Array | None = None,
        is_causal: bool = False,
    ) -> Array:
        # Through this backend's own attention (so a subclass's attention is checked here too);
        # under jit the layout transposes on both sides of it cancel.
        return _formulas.multi_head_attention(self.attention, x_q, x_kv, params, num_heads, mask, is_causal)

    @jit_method("is_causal")
    def linear_attention(self, q: Array, k: Array, v: Array, is_causal: bool = False) -> Array:
        import jax.numpy as jnp

        elu = self.jax.nn.elu
        q_features, k_features = elu(q) + 1.0, elu(k) + 1.0
        if is_causal:
            # The parallel form: masked (L, S) similarities, prefix sums over j <= i.
            similarity = jnp.tril(jnp.einsum("bhld,bhsd->bhls", q_features, k_features))
            return (similarity @ v) / similarity.sum(axis=-1, keepdims=True)
        # Without a mask, associativity gives the linear-cost form: phi(K)^T V first.
        key_values = jnp.einsum("bhsd,bhse->bhde", k_features, v)
        normaliser = jnp.einsum("bhld,bhd->bhl", q_features, k_features.sum(axis=-2))[..., None]
        return (q_features @ key_values) / normaliser

    # positional

    @jit_method("length", "d_model", "dtype")
    def sinusoidal_encoding(self, length: int, d_model: int, dtype: str = "float64") -> Array:
        import jax.numpy as jnp

        # The table is computed in float64 (x64 is on) and rounded once to `dtype`.
        return _formulas.sinusoidal_encoding(jnp, length, d_model, dtype)

    @jit_method()
    def rope(self, x: Array, positions: Array, base: float = 10000.0) -> Array:
        import jax.numpy as jnp

        return _formulas.rope(jnp, x, positions, base)

    @jit_method("num_heads", "q_len", "k_len", "dtype")
    def alibi_bias(self, num_heads: int, q_len: int, k_len: int, dtype: str = "float64") -> Array:
        import jax.numpy as jnp

        return _formulas.alibi_bias(jnp, num_heads, q_len, k_len, dtype)

    # normalisation and layers

    @jit_method()
    def layer_norm(self, x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> Array:
        # jax.nn.standardize is what Flax's LayerNorm computes; its default variance is the
        # one-pass mean(x^2) - mean(x)^2, clipped at 0 (see divergences/jax.txt).
        return self.jax.nn.standardize(x, axis=-1, epsilon=eps) * weight + bias

    @jit_method()
    def feed_forward(self, x: Array, params: dict[str, Array]) -> Array:
        hidden = self.jax.nn.relu(x @ params["w_1"].T + params["b_1"])
        return hidden @ params["w_2"].T + params["b_2"]

    @jit_method()
    def patch_embed(self, images: Array, weight: Array, bias: Array) -> Array:
        # A strided convolution, as Flax's ViT does it: kernel and stride P, no padding.
        patch = weight.shape[-1]
        embedded = self.jax.lax.conv_general_dilated(
            images, weight, window_strides=(patch, patch), padding="VALID",
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
        )  # (B, E, H/P, W/P)
        batch, embed = embedded.shape[:2]
        return embedded.reshape(batch, embed, -1).transpose(0, 2, 1) + bias

    # recurrent

    @jit_method()
    def rnn_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        import jax.numpy as jnp

        return _formulas.rnn_cell(jnp, x, h, params)

    @jit_method()
    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        import jax.numpy as jnp

        return _formulas.lstm_cell(jnp, self.jax.nn.sigmoid, x, h, c, params)

    @jit_method()
    def gru_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        import jax.numpy as jnp

        return _formulas.gru_cell(jnp, self.jax.nn.sigmoid, x, h, params)

    @jit_method()
    def peephole_lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        import jax.numpy as jnp

        return _formulas.peephole_lstm_cell(jnp, self.jax.nn.sigmoid, x, h, c, params)

    @jit_method("reverse")
    def lstm_sequence(
        self, xs: Array, h0: Array, c0: Array, params: dict[str, Array], lengths: Array | None = None,
        reverse: bool = False,
    ) -> tuple[Array, Array, Array]:
        # A jax.lax.scan over time of this backend's lstm_cell (so a subclass's cell is used).
        import jax.numpy as jnp

        batch, steps, _ = xs.shape
        lengths = jnp.full(batch, steps) if lengths is None else jnp.asarray(lengths)
        rows = jnp.arange(batch)

        def position(step: Array) -> Array:  # where each sequence reads at this step
            return lengths - 1 - step if reverse else jnp.full(batch, step)

        def one_step(state: tuple[Array, Array], step: Array) -> tuple[tuple[Array, Array], Array]:
            h, c = state
            x = xs[rows, jnp.clip(position(step), 0, steps - 1)]
            h_next, c_next = self.lstm_cell(x, h, c, params)
            active = (step < lengths)[:, None]
            return (jnp.where(active, h_next, h), jnp.where(active, c_next, c)), jnp.where(active, h_next, 0.0)

        (h, c), per_step = self.jax.lax.scan(one_step, (h0, c0), jnp.arange(steps))
        per_step = jnp.moveaxis(per_step, 0, 1)  # (B, T, N), indexed by step
        if reverse:
            # Position p was written at step lengths - 1 - p; positions at or past the length stay 0.
            step_of = lengths[:, None] - 1 - jnp.arange(steps)[None, :]
            gathered = jnp.take_along_axis(per_step, jnp.clip(step_of, 0, steps - 1)[..., None], axis=1)
            per_step = jnp.where((step_of >= 0)[..., None], gathered, 0.0)
        return per_step, h, c

    # training

    @jit_method()
    def clip_grad_norm(self, grads: Sequence[Array], max_norm: float) -> list[Array]:
        # optax.clip_by_global_norm's rule: one factor, applied only when the norm exceeds max_norm.
        import jax.numpy as jnp

        total = jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float64))) for g in grads))
        factor = jnp.where(total > max_norm, max_norm / total, 1.0)
        return [(g * factor).astype(g.dtype) for g in grads]

    @jit_method()
    def warmup_schedule(self, steps: Array, d_model: int, warmup: int) -> Array:
        import jax.numpy as jnp

        steps = jnp.asarray(steps, dtype=jnp.float64)
        return d_model**-0.5 * jnp.minimum(steps**-0.5, steps * jnp.asarray(warmup, jnp.float64) ** -1.5)

    @jit_method()
    def mlm_corrupt(self, tokens: Array, vocab_size: int, mask_id: int, seed: int) -> tuple[Array, Array]:
        # jax.random with the key from `seed`: the same law as the protocol's, not NumPy's stream.
        import jax.numpy as jnp

        random = self.jax.random
        select_key, action_key, token_key = random.split(random.key(seed), 3)
        selected = random.uniform(select_key, tokens.shape) < 0.15
        action = random.uniform(action_key, tokens.shape)
        replacements = random.randint(token_key, tokens.shape, 0, vocab_size, dtype=tokens.dtype)
        corrupted = jnp.where(selected & (action < 0.8), jnp.asarray(mask_id, tokens.dtype), tokens)
        corrupted = jnp.where(selected & (action >= 0.8) & (action < 0.9), replacements, corrupted)
        return corrupted, selected

    # decoding and the rest

    @jit_method("beam_width")
    def beam_search(self, initial: Array, transitions: Array, beam_width: int) -> tuple[Array, Array]:
        import jax.numpy as jnp

        return _formulas.beam_search(jnp, initial, transitions, beam_width)

    @jit_method()
    def additive_attention_scores(self, query: Array, keys: Array, params: dict[str, Array]) -> Array:
        import jax.numpy as jnp

        return _formulas.additive_attention_scores(jnp, query, keys, params)

    @jit_method()
    def luong_scores(self, query: Array, keys: Array, weight: Array | None = None) -> Array:
        import jax.numpy as jnp

        return _formulas.luong_scores(jnp, query, keys, weight)

    @jit_method()
    def gat_attention(self, h: Array, adjacency: Array, w: Array, a: Array, negative_slope: float = 0.2) -> Array:
        import jax.numpy as jnp

        projected = h @ w.T
        width = projected.shape[-1]
        scores = (projected @ a[:width])[:, None] + (projected @ a[width:])[None, :]
        scores = self.jax.nn.leaky_relu(scores, negative_slope)
        allowed = jnp.asarray(adjacency, dtype=bool)
        return self.jax.nn.softmax(jnp.where(allowed, scores, -jnp.inf), axis=-1, where=allowed)

    # autodiff

    def vjp(self, fn: Callable[..., Any], *primals: Array) -> tuple[Any, Callable[[Any], Sequence[Array]]]:
        with self.jax.default_device(self._device):
            out, pullback = self.jax.vjp(fn, *primals)

        def pinned_pullback(cotangent: Any) -> Sequence[Array]:
            with self.jax.default_device(self._device):
                return pullback(cotangent)

        return out, pinned_pullback

    def stop_gradient(self, x: Array) -> Array:
        return self.jax.lax.stop_gradient(x)
