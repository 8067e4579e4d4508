"""Adapters for the attention and recurrent implementations people run, as nnspec backends.

One module per library; each imports its library only inside ``available()`` and the
constructor, so importing an adapter module never imports the library, and an absent library
makes the adapter *unavailable* with the reason and the pip command, never an import error.

Each adapter subclasses the backend of the framework its library runs on (torch's for
``torch.nn``, FlexAttention and Hugging Face transformers, JAX's for flax, either for keras) and
overrides only the primitives the library provides; every other property re-checks the parent.
Conventions are converted at the boundary (layout, mask polarity, gate order) with the helpers
in :mod:`nnspec.backends.ecosystem._convert`. Adapters are left out of a default ``nnspec run``
(``in_default_run = False``): select one with ``--backend NAME``. ``python -m
nnspec.backends.ecosystem`` runs them all and writes the ecosystem matrix.
"""

from __future__ import annotations

#: Every adapter's backend name and its ``module:Class`` (the entry points in pyproject.toml).
ADAPTERS: dict[str, str] = {
    "torch-mha": "nnspec.backends.ecosystem.torch_nn:TorchMultiheadAttentionBackend",
    "torch-encoder-layer": "nnspec.backends.ecosystem.torch_nn:TorchEncoderLayerBackend",
    "torch-flex": "nnspec.backends.ecosystem.torch_nn:FlexAttentionBackend",
    "hf-eager": "nnspec.backends.ecosystem.hf:HfEagerBackend",
    "hf-sdpa": "nnspec.backends.ecosystem.hf:HfSdpaBackend",
    "flax": "nnspec.backends.ecosystem.flax_linen:FlaxBackend",
    "keras-jax": "nnspec.backends.ecosystem.keras3:KerasJaxBackend",
    "keras-torch": "nnspec.backends.ecosystem.keras3:KerasTorchBackend",
    "rotary-embedding-torch": "nnspec.backends.ecosystem.rotary:RotaryEmbeddingTorchBackend",
    "equinox": "nnspec.backends.ecosystem.equinox_nn:EquinoxBackend",
}
