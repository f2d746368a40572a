# expect: failed
# why: the causal mask is aligned top-left (j <= i, as F.scaled_dot_product_attention's is_causal),
#   so with a cache (T_q < T_k) a decode query sees only the first keys instead of the whole cache
# caught-by: test_worked_example, test_decode_step_sees_the_whole_cache, test_kv_cache_decoding
import math

import torch


def repeat_kv(x, n_rep):
    b, n_kv, t, d = x.shape
    return x[:, :, None].expand(b, n_kv, n_rep, t, d).reshape(b, n_kv * n_rep, t, d)


def grouped_query_attention(q, k, v, *, causal=True):
    b, n_heads, t_q, d = q.shape
    n_kv, t_k = k.shape[1], k.shape[2]
    if n_heads % n_kv != 0:
        raise ValueError("n_heads must be a multiple of n_kv_heads")
    g = n_heads // n_kv
    out_dtype = q.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    scores = q.reshape(b, n_kv, g * t_q, d) @ k.transpose(-2, -1) / math.sqrt(d)
    if causal:
        blocked = torch.ones(t_q, t_k, dtype=torch.bool).tril().logical_not()  # top-left
        scores = scores.view(b, n_kv, g, t_q, t_k).masked_fill(blocked, float("-inf"))
        weights = torch.softmax(scores, dim=-1).masked_fill(blocked, 0.0).view(b, n_kv, g * t_q, t_k)
    else:
        weights = torch.softmax(scores, dim=-1)
    return (weights @ v).reshape(b, n_heads, t_q, v.shape[-1]).to(out_dtype)
