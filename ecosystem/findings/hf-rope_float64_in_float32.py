"""transformers: LlamaRotaryEmbedding computes cos and sin in float32 for float64 inputs.

`position_ids.float() * inv_freq.float()`, cos and sin in float32, then `.to(x.dtype)`: float64
queries and keys are rotated with float32 cos and sin (errors near 1e-8 where float64 gives
1e-16), and positions past 2**24 are rounded before the angle is taken. Expected: float64
inputs rotated at float64 accuracy, or the float32 computation documented.
"""

import torch
import transformers
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

config = LlamaConfig(
    hidden_size=2,
    num_attention_heads=1,
    head_dim=2,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
)
rotary = LlamaRotaryEmbedding(config)
x = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)  # (B, H, L, D): one query at one position
position = 4096
cos, sin = rotary(x, torch.tensor([[position]]))
rotated, _ = apply_rotary_pos_emb(x, x, cos, sin)
angle = torch.tensor(float(position), dtype=torch.float64)  # the pair's frequency is 1
expected = torch.stack((torch.cos(angle), torch.sin(angle)))

print("transformers", transformers.__version__, "torch", torch.__version__)
print("cos/sin dtype:", cos.dtype, " rotated:", rotated[0, 0, 0].tolist())
print("expected     :", expected.tolist())
print("max error:", (rotated[0, 0, 0] - expected).abs().max().item(), "(float64 would give about 1e-16)")
