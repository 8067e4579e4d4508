"""rotary-embedding-torch (lucidrains) as a backend: its ``RotaryEmbedding`` for ``rope``."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from nnspec.backends.ecosystem import _convert
from nnspec.backends.ecosystem.torch_nn import _TorchModuleBackend

Tensor = Any
PIP = "'nnspec[ecosystem]' (or: pip install rotary-embedding-torch)"


class RotaryEmbeddingTorchBackend(_convert.LibraryAdapter, _TorchModuleBackend):
    """``RotaryEmbedding(dim=D, theta=base)``: its frequencies at the given positions, then
    ``apply_rotary_emb``. It pairs dimensions (2i, 2i+1), the protocol's pairing; no conversion."""

    name: ClassVar[str] = "rotary-embedding-torch"
    library: ClassVar[str] = "rotary_embedding_torch"
    install: ClassVar[str] = PIP
    divergences: ClassVar[Any] = _convert.DIVERGENCES / "rotary-embedding-torch.txt"

    def rope(self, x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
        from rotary_embedding_torch import apply_rotary_emb

        rotary = _rotary(x.shape[-1], float(base)).to(x.device)
        frequencies = rotary(self.torch.as_tensor(positions, device=x.device))  # (L, D)
        return apply_rotary_emb(frequencies, x)


@functools.lru_cache(maxsize=32)
def _rotary(dim: int, base: float) -> Any:
    from rotary_embedding_torch import RotaryEmbedding

    return RotaryEmbedding(dim=dim, theta=base, cache_if_possible=False)
