"""transformers: eager_attention_forward computes the softmax in float32 even for float64 inputs.

`softmax(..., dtype=torch.float32).to(query.dtype)` upcasts half-precision logits, as intended,
but it also downcasts float64 ones: float64 queries, keys and values get attention weights that
carry float32 rounding (errors near 1e-8 where float64 gives 1e-16). Expected: the softmax in
max(float32, query.dtype), so float64 attention is float64-accurate.
"""

import types

import torch
import transformers
from transformers.models.llama.modeling_llama import eager_attention_forward

torch.manual_seed(0)
q, k, v = (torch.randn(1, 1, 3, 4, dtype=torch.float64) for _ in range(3))
module = types.SimpleNamespace(num_key_value_groups=1, training=False)
out, weights = eager_attention_forward(module, q, k, v, attention_mask=None, scaling=0.5)
expected_weights = torch.softmax((q @ k.transpose(-1, -2)) * 0.5, dim=-1)

print("transformers", transformers.__version__, "torch", torch.__version__)
print("weights dtype:", weights.dtype)
print("max |weights - float64 softmax|:", (weights - expected_weights).abs().max().item())
print("expected: about 1e-16 (float64 rounding); float32 rounding is about 1e-8")
