"""rotary-embedding-torch: RotaryEmbedding(dim=2) raises ZeroDivisionError.

The constructor rescales theta by `theta_rescale_factor ** (dim / (dim - 2))` (the NTK-aware
rescaling), which divides by zero for dim = 2, even with the default theta_rescale_factor = 1.0,
where the rescaling is the identity. A rotary embedding of two dimensions (one rotating pair) is
well defined. Expected: RotaryEmbedding(dim=2) rotates the pair by position * theta^0.
"""

from importlib.metadata import version

import torch
from rotary_embedding_torch import RotaryEmbedding

print("rotary-embedding-torch", version("rotary-embedding-torch"), "torch", torch.__version__)
for dim in (4, 2):
    try:
        RotaryEmbedding(dim=dim)
        print(f"RotaryEmbedding(dim={dim}): constructed")
    except ZeroDivisionError as error:
        print(f"RotaryEmbedding(dim={dim}): ZeroDivisionError: {error}")
print("expected: both constructed")
