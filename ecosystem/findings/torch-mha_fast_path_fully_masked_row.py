"""torch.nn.MultiheadAttention: a fully masked query row is NaN on the fast path, 0 on the slow path.

In eval mode, self-attention (query is key is value) with no gradient to record takes the fast
path (torch._native_multi_head_attention). With two heads and a boolean attn_mask of shape
(batch * heads, L, S) that forbids every key to one query, the fast path returns NaN for that
query; the same module on the slow path (the same inputs passed as copies) returns its output
bias for it (the attention itself 0), as scaled_dot_product_attention does for a fully masked
row. With one head both paths agree. Expected: both paths agree with any number of heads.
"""

import torch

torch.manual_seed(0)
attention = torch.nn.MultiheadAttention(embed_dim=4, num_heads=2, batch_first=True).eval()
x = torch.randn(1, 2, 4)
# True = may NOT attend (MultiheadAttention's polarity), one (L, S) mask per batch * head:
# query 0 may attend to no key at all, query 1 to both.
attn_mask = torch.tensor([[True, True], [False, False]]).expand(2, 2, 2)

with torch.no_grad():
    fast, _ = attention(x, x, x, attn_mask=attn_mask, need_weights=False)  # query is key is value
    slow, _ = attention(x, x.clone(), x.clone(), attn_mask=attn_mask, need_weights=False)

print("torch", torch.__version__)
print("slow path, query 0:", slow[0, 0].tolist())
print("fast path, query 0:", fast[0, 0].tolist())
print("query 1 agrees on both paths:", torch.allclose(fast[0, 1], slow[0, 1]))
print("expected: query 0 agrees too (the slow path's value, as scaled_dot_product_attention gives)")
