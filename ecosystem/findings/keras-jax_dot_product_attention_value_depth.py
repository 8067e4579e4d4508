"""keras 3 on JAX: keras.ops.dot_product_attention raises when the value depth differs from the key depth.

The docstring gives values the shape [batch, time, heads, depth_v]. With depth_v != depth_k,
jax.nn.dot_product_attention refuses the inputs (it wants equal depths), keras logs that and falls
back to its own XLA implementation, which computes the right result and then reshapes it to the
*query's* shape, `jnp.reshape(encoded, query.shape)`: a TypeError. Expected: an output of shape
[batch, time, heads, depth_v] (the fallback's result reshaped to query.shape[:-1] + (depth_v,)).
"""

import os

os.environ["KERAS_BACKEND"] = "jax"

import keras
import numpy as np

rng = np.random.default_rng(0)
query = rng.standard_normal((1, 2, 1, 4)).astype("float32")  # (B, T, N, H): depth_k = 4
key = rng.standard_normal((1, 3, 1, 4)).astype("float32")
value = rng.standard_normal((1, 3, 1, 2)).astype("float32")  # depth_v = 2

print("keras", keras.__version__, "backend", keras.backend.backend())
try:
    out = keras.ops.dot_product_attention(query, key, value)
    print("output shape:", tuple(out.shape))
except Exception as error:
    print("raised:", type(error).__name__, str(error).splitlines()[0])
print("expected: output shape (1, 2, 1, 2)")
