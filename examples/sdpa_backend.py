"""The third-party kernel walked through in the README's "Writing a backend" guide.

``torch.nn.functional.scaled_dot_product_attention`` wrapped the way a user wraps a kernel of
their own: a :class:`~nnspec.backends.Backend` with one primitive, arrays converted at the
boundary. Every other primitive is left out, so only the properties that reach ``attention``
run (``nnspec list --reaches attention``); the rest are not applicable.

``NaiveSdpaAttention`` is the first attempt, ``SdpaAttention`` the one after reading its
failures: it fixes the wrapper's own bug and declares what is torch's behaviour in its
divergence file, ``sdpa_backend-divergences.txt`` next to this module.
(tests/test_readme_commands.py runs both.)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nnspec.backends import Backend, Unavailable


class NaiveSdpaAttention(Backend):
    """torch's SDPA on the CPU as one ``attention`` primitive, passed nnspec's arguments as they are."""

    name: ClassVar[str] = "naive-sdpa"
    dtypes: ClassVar[tuple[str, ...]] = ("float64", "float32")

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        super().__init__(device, variant)
        try:
            import torch
        except ImportError as error:
            raise Unavailable("torch is not installed: pip install torch") from error
        self.torch = torch

    def asarray(self, x: np.ndarray, dtype: str | None = None) -> Any:
        tensor = self.torch.from_numpy(np.ascontiguousarray(x))
        return tensor if dtype is None else tensor.to(getattr(self.torch, dtype))

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().numpy()

    def attention(
        self, q: Any, k: Any, v: Any, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Any:
        # SDPA's boolean attn_mask means "may attend", as nnspec's does: no conversion needed.
        return self.torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale
        )


class SdpaAttention(NaiveSdpaAttention):
    """The wrapper after its first run: a mask together with ``is_causal`` passed as one mask."""

    name: ClassVar[str] = "my-sdpa"
    divergences: ClassVar[str] = "sdpa_backend-divergences.txt"

    def attention(
        self, q: Any, k: Any, v: Any, mask: Any = None, is_causal: bool = False, scale: float | None = None
    ) -> Any:
        # SDPA refuses attn_mask together with is_causal; nnspec's is_causal is top-left aligned,
        # which is torch.tril of an (L, S) block of ones.
        if mask is not None and is_causal:
            causal = self.torch.ones(q.shape[-2], k.shape[-2], dtype=self.torch.bool).tril()
            mask, is_causal = mask & causal, False
        return super().attention(q, k, v, mask=mask, is_causal=is_causal, scale=scale)
