"""The PyTorch backend: torch's own kernels, adapted to the protocol's conventions.

Targets are ``cpu`` and ``cuda`` (torch's default SDPA kernel selection) and one variant per
SDPA kernel (``cpu/math``, ``cuda/flash``, ...): a variant pins
``torch.nn.functional.scaled_dot_product_attention`` to that kernel through
``torch.nn.attention.sdpa_kernel``. Variants exist to test attention kernels, so a variant
target supports only the primitives that reach SDPA (``attention``, ``multi_head_attention``,
``attention_with_bias``, and ``vjp`` through them); every other primitive is checked once per
device, on the plain target. A pinned kernel that refuses an input (CUDA flash attention takes no
mask) raises :class:`~nnspec.backends.InputNotSupported`: the engine discards that example. On
CUDA a pinned kernel is asked first (``torch.backends.cuda.can_use_*_attention`` with
``debug=True``, whose warnings give the reasons), and a cuDNN failure at run time that says the
graph is not supported is a refusal too.

Precision: constructing a backend sets torch's float32 precision flags to IEEE for the process
(``fp32_precision`` of ``torch.backends.cudnn``, ``torch.backends.cudnn.{conv,rnn}`` and
``torch.backends.cuda.matmul``, the torch 2.x API): on NVIDIA GPUs since Ampere torch otherwise runs cuDNN convolutions and RNNs in
TF32, whose error is some thirty times the float32 tolerance. :meth:`TorchBackend.environment`
records the flags in force, read through the same API only (reading the legacy ``allow_tf32``
flags raises once the new API was used).

bfloat16: NumPy has no bfloat16, so :meth:`TorchBackend.asarray` takes the dtype by name
(``asarray(x, "bfloat16")`` for float32 values) or an ``ml_dtypes.bfloat16`` array, and
:meth:`TorchBackend.cast` converts a tensor by dtype name; :meth:`TorchBackend.to_numpy`
returns float32 for bfloat16 tensors.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from nnspec.backends.base import Backend, InputNotSupported, Unavailable
from nnspec.errors import BackendError

Tensor = Any  # torch.Tensor; torch is imported only inside methods

INSTALL_HINT = "torch is not installed: pip install nnspec[torch]"

# variant name -> torch.nn.attention.SDPBackend member
_SDPA_KERNELS: dict[str, str] = {
    "math": "MATH",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
}
_DEVICE_VARIANTS: dict[str, tuple[str, ...]] = {
    "cpu": ("math", "flash"),
    "cuda": ("math", "flash", "efficient", "cudnn"),
}
_ALL_DTYPES: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
# The dtypes each CUDA kernel accepts (torch's sdp_utils); every CPU kernel accepts all four.
_CUDA_KERNEL_DTYPES: dict[str, tuple[str, ...]] = {
    "math": _ALL_DTYPES,
    "flash": ("float16", "bfloat16"),
    "efficient": ("float32", "float16", "bfloat16"),
    "cudnn": ("float16", "bfloat16"),
}
# What a variant target implements: the primitives whose result depends on the SDPA kernel.
_VARIANT_PRIMITIVES = frozenset({"attention", "multi_head_attention", "attention_with_bias", "vjp"})


# Where torch 2.x keeps its float32 precision flags: dotted path under torch.backends.
_PRECISION_FLAGS: tuple[str, ...] = ("cudnn", "cudnn.conv", "cudnn.rnn", "cuda.matmul")
#: The precision the conformance run sets for each of them.
FP32_PRECISION = "ieee"
# The oldest NVIDIA driver each CUDA major release runs on (NVIDIA's compatibility table).
_MINIMUM_DRIVER: dict[int, str] = {11: "450.80", 12: "525.60", 13: "580.65"}
# Shapes (B, H, L, D) whose preferred SDPA kernel environment() records, per dtype.
_TYPICAL_SHAPES: tuple[tuple[int, int, int, int], ...] = ((2, 4, 128, 64), (1, 8, 512, 128), (2, 3, 7, 10))
# Runtime messages by which cuDNN says it has no plan for a graph: a refusal, not a wrong answer.
_CUDNN_REFUSALS: tuple[str, ...] = (
    "No execution plans support the graph", "CUDNN_STATUS_NOT_SUPPORTED", "cuDNN Frontend error",
    "No valid execution plans built",
)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise Unavailable(INSTALL_HINT) from error
    return torch


def set_precision(torch: Any) -> dict[str, str]:
    """Set torch's float32 precision flags to IEEE through the torch 2.x API; return the flags in force."""
    for path in _PRECISION_FLAGS:
        holder = functools.reduce(getattr, path.split("."), torch.backends)
        holder.fp32_precision = FP32_PRECISION
    return precision_flags(torch)


def precision_flags(torch: Any) -> dict[str, str]:
    """The float32 precision flags in force, read through the torch 2.x API (never ``allow_tf32``)."""
    found = {}
    for path in _PRECISION_FLAGS:
        try:
            holder = functools.reduce(getattr, path.split("."), torch.backends)
            found[f"fp32_precision.{path}"] = str(holder.fp32_precision)
        except (AttributeError, RuntimeError) as error:
            found[f"fp32_precision.{path}"] = f"unreadable: {error}"
    found["float32_matmul_precision"] = str(torch.get_float32_matmul_precision())
    return found


def _no_cuda_reason(torch: Any) -> str:
    """Why torch sees no CUDA device, naming the cause: a CPU-only wheel, a driver too old, no device."""
    from nnspec.gpu import nvidia_driver_version

    built_for = torch.version.cuda
    if built_for is None:
        return (f"no CUDA device: torch {torch.__version__} is a CPU-only build (torch.version.cuda is None); "
                "install a CUDA build: pip install -e '.[gpu-cuda13]' (see 'make gpu-check')")
    driver = nvidia_driver_version()
    if driver is None:
        return f"no CUDA device: no NVIDIA driver found (torch {torch.__version__} is built for CUDA {built_for})"
    major = int(str(built_for).split(".")[0])
    needed = _MINIMUM_DRIVER.get(major)
    if needed is not None and _version_tuple(driver) < _version_tuple(needed):
        return (f"no CUDA device: NVIDIA driver {driver} is too old for torch {torch.__version__}, built for CUDA {built_for} "
                f"(needs driver >= {needed}); install the CUDA 12 build: pip install -e '.[gpu-cuda12]' "
                "--extra-index-url https://download.pytorch.org/whl/cu126")
    return f"no CUDA device: NVIDIA driver {driver} is present but torch (CUDA {built_for}) sees no GPU"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


@functools.cache
def _probe(device: str, variant: str | None) -> str:
    """Why ``device[/variant]`` cannot run here, or ``""`` when it can (a tiny SDPA call decides)."""
    try:
        torch = _import_torch()
    except Unavailable as error:
        return str(error)
    if device not in _DEVICE_VARIANTS:
        return f"unknown device; expected one of {sorted(_DEVICE_VARIANTS)}. Received: {device!r}"
    if device == "cuda" and not torch.cuda.is_available():
        return _no_cuda_reason(torch)
    if variant is None:
        return ""
    if variant not in _DEVICE_VARIANTS[device]:
        return f"torch offers no SDPA kernel {variant!r} on {device}; expected one of {_DEVICE_VARIANTS[device]}"
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dtype = torch.float32 if device == "cpu" else torch.float16
    q = torch.zeros(1, 1, 8, 64, dtype=dtype, device=device)
    try:
        with sdpa_kernel([getattr(SDPBackend, _SDPA_KERNELS[variant])]):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"SDPA kernel {variant!r} cannot run on this {device}: {first_line}"
    return ""


class TorchBackend(Backend):
    """PyTorch on CPU or CUDA; attention through ``scaled_dot_product_attention``."""

    name: ClassVar[str] = "torch"
    dtypes: ClassVar[tuple[str, ...]] = _ALL_DTYPES
    device_variants: ClassVar[dict[str, tuple[str, ...]]] = _DEVICE_VARIANTS
    variant_primitives: ClassVar[frozenset[str]] = _VARIANT_PRIMITIVES
    divergences: ClassVar[str | None] = "divergences/torch.txt"
    # lstm_sequence is torch.nn.LSTM's own fused layer, not a loop over lstm_cell.
    fused: ClassVar[frozenset[str]] = frozenset({"lstm_sequence"})

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        super().__init__(device=device, variant=variant)
        reason = _probe(device, variant)
        if reason:
            raise Unavailable(reason)
        self.torch = _import_torch()
        self.functional = self.torch.nn.functional
        set_precision(self.torch)

    # -- identity ----------------------------------------------------------------------------

    @classmethod
    def available(cls, device: str = "cpu") -> tuple[bool, str]:
        base_device, _, variant = device.partition("/")
        reason = _probe(base_device, variant or None)
        return not reason, reason

    def supports_dtype(self, dtype: str) -> bool:
        if self.device == "cuda" and self.variant is not None:
            return dtype in _CUDA_KERNEL_DTYPES[self.variant]
        return dtype in self.dtypes

    def environment(self) -> dict[str, str]:
        from nnspec.gpu import nvidia_driver_version

        torch = self.torch
        found = {"torch": torch.__version__, "torch_cuda_build": str(torch.version.cuda)}
        found |= precision_flags(torch)
        found["sdpa_kernel"] = _SDPA_KERNELS[self.variant] if self.variant else "torch's own choice"
        if self.device == "cuda":
            found["nvidia_driver"] = nvidia_driver_version() or "unknown"
            found["cudnn"] = str(torch.backends.cudnn.version())
            found["gpu"] = torch.cuda.get_device_name()
            found["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
            found |= preferred_kernels(torch)
        return found

    # -- the boundary --------------------------------------------------------------------------

    def asarray(self, x: np.ndarray, dtype: str | None = None) -> Tensor:
        """``x`` as a tensor on this target's device, in ``dtype`` when given, else in x's own dtype.

        bfloat16 arrives either as float32 values with ``dtype="bfloat16"`` or as an
        ``ml_dtypes.bfloat16`` array (its bits reinterpreted, no rounding).
        """
        torch = self.torch
        if isinstance(x, torch.Tensor):
            tensor = x
        else:
            x = np.ascontiguousarray(x)
            if x.dtype.name == "bfloat16":
                tensor = torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
            else:
                tensor = torch.from_numpy(x)
        if dtype is not None:
            tensor = tensor.to(self._dtype(dtype))
        return tensor.to(self.device)

    def to_numpy(self, x: Tensor) -> np.ndarray:
        torch = self.torch
        if not isinstance(x, torch.Tensor):
            return np.asarray(x)
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.to(torch.float32)
        return x.numpy()

    def cast(self, x: Tensor, dtype: str) -> Tensor:
        """``x`` converted to the dtype named ``dtype`` (one of :attr:`dtypes`)."""
        return x.to(self._dtype(dtype))

    def _dtype(self, name: str) -> Any:
        if name not in _ALL_DTYPES:
            raise BackendError(f"torch backend dtypes are {list(_ALL_DTYPES)}. Received: {name!r}")
        return getattr(self.torch, name)

    def _check_kernel(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool) -> None:
        """On CUDA, ask the pinned kernel whether it takes these inputs before calling it."""
        if self.device == "cuda" and self.variant is not None:
            reason = kernel_refusal(self.torch, self.variant, q, k, v, mask, is_causal)
            if reason:
                raise InputNotSupported(
                    f"the SDPA kernel {self.variant!r} on cuda does not take these inputs. Received: {reason}"
                )

    @contextlib.contextmanager
    def _kernel(self) -> Iterator[None]:
        """Pin SDPA to this target's kernel; the plain target keeps torch's own selection.

        A pinned kernel that cannot take the inputs makes SDPA raise "No available kernel" and
        give its reasons as warnings; that refusal becomes :class:`InputNotSupported`, its message
        the reasons. Warnings of a call that succeeds are passed on unchanged.
        """
        if self.variant is None:
            yield
            return
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([getattr(SDPBackend, _SDPA_KERNELS[self.variant])]):
            with warnings.catch_warnings(record=True) as caught:
                try:
                    yield
                except RuntimeError as error:
                    if any(refusal in str(error) for refusal in _CUDNN_REFUSALS):
                        raise InputNotSupported(
                            f"cuDNN has no plan for these inputs on {self.device} ({self.variant!r} kernel). "
                            f"Received: {str(error).strip().splitlines()[0]}"
                        ) from error
                    if "No available kernel" not in str(error):
                        raise
                    reasons = " ".join(str(w.message).split(" (Triggered internally")[0] for w in caught)
                    raise InputNotSupported(
                        f"the SDPA kernel {self.variant!r} on {self.device} does not take these inputs. "
                        f"Received: {reasons or str(error).strip()}"
                    ) from error
            for caught_warning in caught:
                warnings.warn_explicit(
                    caught_warning.message, caught_warning.category, caught_warning.filename, caught_warning.lineno
                )

    def _allowed(self, mask: Tensor | None, is_causal: bool, q_len: int, k_len: int) -> Tensor | None:
        """The combined boolean "may attend" mask, or None; causal is top-left (``tril``)."""
        allowed = None if mask is None else mask.to(self.torch.bool)
        if is_causal:
            causal = self.torch.ones(q_len, k_len, dtype=self.torch.bool, device=self.device).tril()
            allowed = causal if allowed is None else allowed & causal
        return allowed

    # -- primitives, family by family in protocol order (PRIMITIVE_FAMILIES) ----------------------

    # attention

    def softmax(self, x: Tensor, axis: int = -1) -> Tensor:
        return self.torch.softmax(x, dim=axis)

    def attention_weights(
        self, q: Tensor, k: Tensor, mask: Tensor | None = None, is_causal: bool = False, scale: float | None = None
    ) -> Tensor:
        # torch has no public kernel that returns attention weights; this is SDPA's math path.
        torch = self.torch
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        logits = (q @ k.transpose(-1, -2)) * scale
        allowed = self._allowed(mask, is_causal, q.shape[-2], k.shape[-2])
        if allowed is None:
            return torch.softmax(logits, dim=-1)
        weights = torch.softmax(logits.masked_fill(~allowed, -math.inf), dim=-1)
        # A fully masked row softmaxes to NaN; SDPA's math kernel (torch._safe_softmax) returns 0.
        return torch.where(allowed.any(dim=-1, keepdim=True), weights, torch.zeros_like(weights))

    def attention(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Tensor:
        # SDPA's boolean attn_mask has the protocol's polarity (True = may attend) and its
        # is_causal is top-left aligned; it refuses attn_mask together with is_causal, so a
        # causal call with a mask passes their conjunction as one mask.
        if mask is not None and is_causal:
            mask, is_causal = self._allowed(mask, True, q.shape[-2], k.shape[-2]), False
        elif mask is not None:
            mask = mask.to(self.torch.bool)
        if mask is not None:
            mask = _four_dimensional(mask)
        self._check_kernel(q, k, v, mask, is_causal)
        with self._kernel():
            return self.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale
            )

    def attention_with_bias(
        self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor, scale: float | None = None
    ) -> Tensor:
        # SDPA's float attn_mask is added to the scaled logits before the softmax: the protocol's bias.
        bias = _four_dimensional(self.torch.as_tensor(bias, device=q.device).to(q.dtype))
        self._check_kernel(q, k, v, bias, False)
        with self._kernel():
            return self.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)

    def tiled_attention(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        block_q: int,
        block_k: int,
        is_causal: bool = False,
        scale: float | None = None,
    ) -> Tensor:
        # torch has no public tiled kernel with selectable block sizes; written in torch.
        torch = self.torch
        q_len, k_len = q.shape[-2], k.shape[-2]
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        out_blocks = []
        for q_start in range(0, q_len, block_q):
            q_block = q[..., q_start : q_start + block_q, :]
            rows = q_block.shape[-2]
            running_max = q.new_full((*q_block.shape[:-1], 1), -math.inf)
            running_sum = q.new_zeros((*q_block.shape[:-1], 1))
            accumulator = q.new_zeros((*q_block.shape[:-1], v.shape[-1]))
            for k_start in range(0, k_len, block_k):
                if is_causal and k_start > q_start + rows - 1:
                    break  # this key block and every later one lie in the future of every query here
                k_block = k[..., k_start : k_start + block_k, :]
                v_block = v[..., k_start : k_start + block_k, :]
                logits = (q_block @ k_block.transpose(-1, -2)) * scale
                if is_causal:
                    query_index = torch.arange(q_start, q_start + rows, device=q.device)[:, None]
                    key_index = torch.arange(k_start, k_start + k_block.shape[-2], device=q.device)[None, :]
                    logits = logits.masked_fill(key_index > query_index, -math.inf)
                new_max = torch.maximum(running_max, logits.amax(dim=-1, keepdim=True))
                safe_max = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
                # Rescale what was accumulated under the old running maximum to the new one.
                correction = torch.exp(running_max - safe_max)
                probabilities = torch.exp(logits - safe_max)
                running_sum = running_sum * correction + probabilities.sum(dim=-1, keepdim=True)
                accumulator = accumulator * correction + probabilities @ v_block
                running_max = new_max
            denominator = torch.where(running_sum > 0, running_sum, torch.ones_like(running_sum))
            out_blocks.append(accumulator / denominator)
        return torch.cat(out_blocks, dim=-2)

    def multi_head_attention(
        self,
        x_q: Tensor,
        x_kv: Tensor,
        params: dict[str, Tensor],
        num_heads: int,
        mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        # Built from F.linear and this backend's SDPA attention rather than nn.MultiheadAttention,
        # whose packed in_proj weight and float-mask conventions would need their own adapter.
        linear = self.functional.linear

        def split(x: Tensor) -> Tensor:  # (B, T, M) -> (B, H, T, M/H)
            batch, length, width = x.shape
            return x.reshape(batch, length, num_heads, width // num_heads).transpose(1, 2)

        heads = self.attention(
            split(linear(x_q, params["w_q"], params["b_q"])),
            split(linear(x_kv, params["w_k"], params["b_k"])),
            split(linear(x_kv, params["w_v"], params["b_v"])),
            mask=mask,
            is_causal=is_causal,
        )
        batch, _, length, _ = heads.shape
        concatenated = heads.transpose(1, 2).reshape(batch, length, -1)
        return linear(concatenated, params["w_o"], params["b_o"])

    def linear_attention(self, q: Tensor, k: Tensor, v: Tensor, is_causal: bool = False) -> Tensor:
        elu = self.functional.elu
        q_features, k_features = elu(q) + 1.0, elu(k) + 1.0
        if is_causal:
            # The parallel form: masked (L, S) similarities, prefix sums over j <= i.
            similarity = (q_features @ k_features.transpose(-1, -2)).tril()
            return (similarity @ v) / similarity.sum(dim=-1, keepdim=True)
        # Without a mask, associativity gives the linear-cost form: phi(K)^T V first.
        key_values = k_features.transpose(-1, -2) @ v  # (B, H, D, Dv)
        normaliser = q_features @ k_features.sum(dim=-2).unsqueeze(-1)  # (B, H, L, 1)
        return (q_features @ key_values) / normaliser

    # positional

    def sinusoidal_encoding(self, length: int, d_model: int, dtype: str = "float64") -> Tensor:
        torch = self.torch
        positions = torch.arange(length, dtype=torch.float64, device=self.device)[:, None]
        pair_index = torch.arange(0, d_model, 2, dtype=torch.float64, device=self.device)[None, :]
        angles = positions / torch.pow(10000.0, pair_index / d_model)
        encoding = torch.zeros(length, d_model, dtype=torch.float64, device=self.device)
        encoding[:, 0::2] = torch.sin(angles)
        encoding[:, 1::2] = torch.cos(angles[:, : d_model // 2])
        return encoding.to(self._dtype(dtype))

    def rope(self, x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
        torch = self.torch
        dim = x.shape[-1]
        frequencies = base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=x.device) / dim)
        positions = torch.as_tensor(positions, device=x.device).to(torch.float64)
        angles = positions[:, None] * frequencies[None, :]
        cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
        even, odd = x[..., 0::2], x[..., 1::2]
        # Interleave the rotated pairs back into (..., D) without in-place writes (autograd-safe).
        return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)

    def alibi_bias(self, num_heads: int, q_len: int, k_len: int, dtype: str = "float64") -> Tensor:
        torch = self.torch
        slopes = 2.0 ** (-8.0 * torch.arange(1, num_heads + 1, dtype=torch.float64, device=self.device) / num_heads)
        distance = (
            torch.arange(q_len, device=self.device)[:, None] - torch.arange(k_len, device=self.device)[None, :]
        ).clamp(min=0)
        return (-slopes[:, None, None] * distance[None, :, :]).to(self._dtype(dtype))

    # normalisation and layers

    def layer_norm(self, x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
        return self.functional.layer_norm(x, (x.shape[-1],), weight, bias, eps)

    def feed_forward(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        linear = self.functional.linear
        return linear(self.functional.relu(linear(x, params["w_1"], params["b_1"])), params["w_2"], params["b_2"])

    def patch_embed(self, images: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        # A convolution with kernel and stride P (what torchvision's ViT conv_proj does), then
        # (B, E, H/P, W/P) -> (B, N, E) with patches numbered row by row.
        embedded = self.functional.conv2d(images, weight, bias, stride=weight.shape[-1])
        return embedded.flatten(2).transpose(1, 2)

    # recurrent

    def rnn_cell(self, x: Tensor, h: Tensor, params: dict[str, Tensor]) -> Tensor:
        # torch's cells carry two biases; the protocol's single b goes to bias_ih, bias_hh is 0.
        weights = {
            "weight_ih": params["w_ih"],
            "weight_hh": params["w_hh"],
            "bias_ih": params["b"],
            "bias_hh": self.torch.zeros_like(params["b"]),
        }
        return self._call_cell("RNNCell", weights, (x, h))

    def lstm_cell(self, x: Tensor, h: Tensor, c: Tensor, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        # torch.nn.LSTMCell's gate blocks are i, f, g, o: the protocol's order, no permutation.
        weights = {
            "weight_ih": params["w_ih"],
            "weight_hh": params["w_hh"],
            "bias_ih": params["b"],
            "bias_hh": self.torch.zeros_like(params["b"]),
        }
        h_next, c_next = self._call_cell("LSTMCell", weights, (x, (h, c)))
        return h_next, c_next

    def gru_cell(self, x: Tensor, h: Tensor, params: dict[str, Tensor]) -> Tensor:
        # torch.nn.GRUCell's gate blocks are r, z, n and it keeps b_hn inside the reset product,
        # exactly the protocol's cell.
        weights = {
            "weight_ih": params["w_ih"],
            "weight_hh": params["w_hh"],
            "bias_ih": params["b_ih"],
            "bias_hh": params["b_hh"],
        }
        return self._call_cell("GRUCell", weights, (x, h))

    def _call_cell(self, cell: str, weights: dict[str, Tensor], args: tuple[Any, ...]) -> Any:
        hidden, inputs = weights["weight_hh"].shape[1], weights["weight_ih"].shape[1]
        module = _cell_module(cell, inputs, hidden)
        return self.torch.func.functional_call(module, weights, args)

    def peephole_lstm_cell(
        self, x: Tensor, h: Tensor, c: Tensor, params: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        # torch has no peephole cell (nn.LSTMCell has no cell-state inputs to its gates); written in torch.
        torch, linear = self.torch, self.functional.linear
        gates = linear(x, params["w_ih"]) + linear(h, params["w_hh"]) + params["b"]
        input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=-1)
        c_next = (torch.sigmoid(forget_gate + params["p_f"] * c) * c
                  + torch.sigmoid(input_gate + params["p_i"] * c) * torch.tanh(candidate))
        h_next = torch.sigmoid(output_gate + params["p_o"] * c_next) * torch.tanh(c_next)
        return h_next, c_next

    def lstm_sequence(
        self, xs: Tensor, h0: Tensor, c0: Tensor, params: dict[str, Tensor], lengths: Tensor | None = None,
        reverse: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        # torch.nn.LSTM (batch_first) with the protocol's weights; lengths through a packed sequence,
        # whose padded steps the kernel never reads and pad_packed_sequence fills with zeros.
        # nn.LSTM has no reverse-only layer: `reverse` runs the backward half of a bidirectional
        # one (which starts each packed sequence at its own last true step) and keeps that half.
        torch = self.torch
        rnn_utils = torch.nn.utils.rnn
        _, steps, inputs = xs.shape
        hidden = h0.shape[-1]
        direction = {
            "weight_ih_l0": params["w_ih"],
            "weight_hh_l0": params["w_hh"],
            "bias_ih_l0": params["b"],
            "bias_hh_l0": torch.zeros_like(params["b"]),
        }
        if reverse:
            weights = {f"{name}_reverse": value for name, value in direction.items()}
            weights |= {name: torch.zeros_like(value) for name, value in direction.items()}
            state = (torch.stack((h0, h0)), torch.stack((c0, c0)))
        else:
            weights, state = direction, (h0[None], c0[None])
        sequence: Any = xs
        if lengths is not None:
            cpu_lengths = torch.as_tensor(lengths).to(device="cpu", dtype=torch.int64)
            sequence = rnn_utils.pack_padded_sequence(xs, cpu_lengths, batch_first=True, enforce_sorted=False)
        module = _lstm_module(inputs, hidden, reverse)
        outputs, (h_n, c_n) = torch.func.functional_call(module, weights, (sequence, state))
        if lengths is not None:
            outputs, _ = rnn_utils.pad_packed_sequence(outputs, batch_first=True, total_length=steps)
        return outputs[..., -hidden:], h_n[-1], c_n[-1]

    # training

    def clip_grad_norm(self, grads: Sequence[Tensor], max_norm: float) -> list[Tensor]:
        # torch.nn.utils.clip_grad_norm_ clips the .grad of parameters in place: each gradient is
        # cloned into the .grad of a stand-in parameter, so the caller's arrays are untouched.
        torch = self.torch
        holders = []
        for grad in grads:
            holder = torch.zeros_like(grad)
            holder.grad = grad.detach().clone()
            holders.append(holder)
        torch.nn.utils.clip_grad_norm_(holders, max_norm)
        return [holder.grad for holder in holders]

    def warmup_schedule(self, steps: Tensor, d_model: int, warmup: int) -> Tensor:
        # torch ships no Transformer schedule (LambdaLR takes the formula as a callable); written in torch.
        torch = self.torch
        steps = torch.as_tensor(steps, device=self.device).to(torch.float64)
        return d_model**-0.5 * torch.minimum(steps**-0.5, steps * float(warmup) ** -1.5)

    def mlm_corrupt(self, tokens: Tensor, vocab_size: int, mask_id: int, seed: int) -> tuple[Tensor, Tensor]:
        # A torch.Generator seeded with `seed`: the protocol's law, torch's random stream.
        torch = self.torch
        generator = torch.Generator(device=tokens.device).manual_seed(seed)
        selected = torch.rand(tokens.shape, generator=generator, device=tokens.device) < 0.15
        action = torch.rand(tokens.shape, generator=generator, device=tokens.device)
        replacements = torch.randint(
            0, vocab_size, tokens.shape, generator=generator, device=tokens.device, dtype=tokens.dtype
        )
        corrupted = torch.where(selected & (action < 0.8), torch.full_like(tokens, mask_id), tokens)
        corrupted = torch.where(selected & (action >= 0.8) & (action < 0.9), replacements, corrupted)
        return corrupted, selected

    # decoding and the rest

    def beam_search(self, initial: Tensor, transitions: Tensor, beam_width: int) -> tuple[Tensor, Tensor]:
        torch = self.torch
        vocab = initial.shape[0]
        # Stable descending sorts: ties go to the earlier beam entry, then to the lower token index.
        scores, first = torch.sort(initial, descending=True, stable=True)
        scores, sequences = scores[:beam_width], first[:beam_width, None]
        for table in transitions:
            candidates = (scores[:, None] + table[sequences[:, -1]]).reshape(-1)
            ordered, best = torch.sort(candidates, descending=True, stable=True)
            parents, tokens = best[:beam_width] // vocab, best[:beam_width] % vocab
            sequences = torch.cat((sequences[parents], tokens[:, None]), dim=1)
            scores = ordered[:beam_width]
        return sequences, scores

    def additive_attention_scores(self, query: Tensor, keys: Tensor, params: dict[str, Tensor]) -> Tensor:
        linear = self.functional.linear
        hidden = self.torch.tanh(linear(query, params["w_query"])[:, None, :] + linear(keys, params["w_key"]))
        return hidden @ params["v"]

    def luong_scores(self, query: Tensor, keys: Tensor, weight: Tensor | None = None) -> Tensor:
        if weight is None:
            return (keys @ query[:, :, None])[..., 0]
        # F.bilinear computes x1^T A x2 per output feature: one feature, A = W, x1 = s, x2 = h_i.
        expanded = query[:, None, :].expand(-1, keys.shape[1], -1)
        return self.functional.bilinear(expanded, keys, weight[None])[..., 0]

    def gat_attention(
        self, h: Tensor, adjacency: Tensor, w: Tensor, a: Tensor, negative_slope: float = 0.2
    ) -> Tensor:
        torch, functional = self.torch, self.functional
        projected = functional.linear(h, w)
        width = projected.shape[-1]
        scores = (projected @ a[:width])[:, None] + (projected @ a[width:])[None, :]
        scores = functional.leaky_relu(scores, negative_slope)
        allowed = torch.as_tensor(adjacency, device=h.device).to(torch.bool)
        # exp(-inf) is exactly 0: non-neighbours get exactly zero weight.
        return torch.softmax(scores.masked_fill(~allowed, -math.inf), dim=-1)

    # autodiff

    def vjp(self, fn: Callable[..., Any], *primals: Tensor) -> tuple[Any, Callable[[Any], Sequence[Tensor]]]:
        # The backward of an SDPA call is the backward of the kernel its forward chose, so the
        # variant pinned inside attention() governs both passes.
        out, vjp_fn = self.torch.func.vjp(fn, *primals)
        return out, vjp_fn

    def stop_gradient(self, x: Tensor) -> Tensor:
        return x.detach()


def kernel_refusal(
    torch: Any, variant: str, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool
) -> str:
    """Why the CUDA SDPA kernel ``variant`` would refuse these inputs, or ``""`` when it takes them.

    torch's own checks (``torch.backends.cuda.can_use_{flash,efficient,cudnn}_attention`` with
    ``debug=True``) give their reasons as warnings; those become the answer.
    """
    check = {
        "flash": "can_use_flash_attention", "efficient": "can_use_efficient_attention",
        "cudnn": "can_use_cudnn_attention",
    }.get(variant)
    if check is None:  # the math kernel takes everything
        return ""
    try:
        params = torch.backends.cuda.SDPAParams(q, k, v, mask, 0.0, is_causal, False)
    except (TypeError, RuntimeError):  # e.g. tensors wrapped by torch.func: the call itself decides
        return ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        usable = getattr(torch.backends.cuda, check)(params, True)
    if usable:
        return ""
    reasons = [str(w.message).split(" (Triggered internally")[0].strip() for w in caught]
    return "; ".join(reason for reason in reasons if reason) or f"{check} returned False"


def preferred_kernels(torch: Any) -> dict[str, str]:
    """Which SDPA kernel torch picks by itself on this GPU for a few typical shapes, per dtype.

    torch tries its kernels in its priority order and takes the first that accepts the inputs;
    the answer differs between builds (CUDA 12 and 13) and GPUs, so it is part of the record.
    """
    from torch.nn.attention import SDPBackend

    order = [SDPBackend(number).name for number in torch._C._get_sdp_priority_order()]
    names = {value: key for key, value in _SDPA_KERNELS.items()}
    found = {"sdpa_priority_order": ", ".join(order)}
    for dtype in ("float32", "float16", "bfloat16"):
        for shape in _TYPICAL_SHAPES:
            q = torch.zeros(shape, dtype=getattr(torch, dtype), device="cuda")
            chosen = "math"  # takes everything: no kernel after it in the order is ever reached
            for member in order:
                variant = names.get(member)
                if variant == "math":
                    break
                if variant is not None and not kernel_refusal(torch, variant, q, q, q, None, False):
                    chosen = variant
                    break
            found[f"sdpa_preferred.{dtype}.{'x'.join(map(str, shape))}"] = chosen
    return found


def _four_dimensional(mask: Tensor) -> Tensor:
    """A mask broadcasting to ``(B, H, L, S)`` as a 4-D view: torch's CPU flash kernel takes 2-D and 4-D masks only."""
    return mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape)) if mask.ndim < 4 else mask


@functools.lru_cache(maxsize=64)
def _cell_module(cell: str, input_size: int, hidden_size: int) -> Any:
    """A shape-only torch cell: on the meta device, its parameters are replaced on every call."""
    import torch

    return getattr(torch.nn, cell)(input_size, hidden_size, bias=True, device="meta")


@functools.lru_cache(maxsize=64)
def _lstm_module(input_size: int, hidden_size: int, bidirectional: bool) -> Any:
    """A shape-only one-layer ``torch.nn.LSTM`` (batch first) on the meta device, like :func:`_cell_module`."""
    import torch

    return torch.nn.LSTM(input_size, hidden_size, batch_first=True, bidirectional=bidirectional, device="meta")
