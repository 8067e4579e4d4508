"""keras 3 on JAX: keras.ops.dot_product_attention returns float32 for float64 inputs.

With JAX's float64 enabled, float64 queries, keys and values give a float32 output (errors near
1e-8 where float64 gives 1e-16), while keras.ops.softmax keeps float64. The cause is the op's
compute dtype, `keras.backend.result_type(query.dtype, key.dtype, value.dtype)`: keras's
`result_type` maps float64 to float32 on every backend but TensorFlow (BIT64_TO_BIT32_DTYPE in
keras/src/backend/common/dtypes.py, "to be aligned with JAX's default"), even when JAX's float64
is enabled; the torch backend of keras does the same. Expected: the output in the inputs' dtype
when that dtype is enabled.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"

import jax

jax.config.update("jax_enable_x64", True)

import keras  # noqa: E402
import numpy as np  # noqa: E402

rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((1, 3, 1, 4)) for _ in range(3))  # (B, L, H, D), float64
out = keras.ops.dot_product_attention(q, k, v)
logits = np.einsum("blhd,bshd->bhls", q, k) / 2.0
weights = np.exp(logits - logits.max(-1, keepdims=True))
expected = np.einsum("bhls,bshd->blhd", weights / weights.sum(-1, keepdims=True), v)

print("keras", keras.__version__, "jax", jax.__version__, "backend", keras.backend.backend())
print("input dtype:", q.dtype, " output dtype:", out.dtype, " softmax dtype:", keras.ops.softmax(q).dtype)
print("keras.backend.result_type('float64', 'float64'):", keras.backend.result_type("float64", "float64"))
print("max |out - float64 attention|:", float(np.abs(np.asarray(out) - expected).max()))
print("expected: float64 output, error about 1e-16")
