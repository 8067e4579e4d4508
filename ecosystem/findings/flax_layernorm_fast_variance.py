"""flax.linen.LayerNorm: the default variance, E[x^2] - E[x]^2, loses the signal for inputs with a large mean.

LayerNorm's default use_fast_variance=True computes the variance as mean(x^2) - mean(x)^2, which
cancels catastrophically when |mean| is much larger than the spread: for float32 tokens around
1000 with a spread of 0.01 the normalised output is mostly rounding noise (jax.nn.standardize
and torch.nn.functional.layer_norm subtract the mean first). use_fast_variance=False gives the
right answer. Expected: the accurate two-pass variance by default, or a documented error bound.
"""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

x = (1000.0 + 0.01 * np.random.default_rng(0).standard_normal((1, 16))).astype(np.float32)
exact = (x.astype(np.float64) - x.mean(dtype=np.float64)) / x.astype(np.float64).std()
for fast in (True, False):
    layer = nn.LayerNorm(epsilon=1e-12, use_fast_variance=fast)
    variables = layer.init(jax.random.key(0), jnp.asarray(x))
    out = np.asarray(layer.apply(variables, jnp.asarray(x)), dtype=np.float64)
    print(f"use_fast_variance={fast}: max |out - exact| = {np.abs(out - exact).max():.3g}")
print("flax", flax.__version__, "jax", jax.__version__)
print(
    "expected: both near float32 rounding (about 1e-3 here, the inputs' own rounding), as the two-pass one is"
)
