# expect: too_slow
# why: correct, and groups q as (B, n_kv, g, T_q, d) against k[:, :, None] to avoid repeating K and V,
#   but `@` broadcasts a batch axis by expanding and reshaping its operand: K and V are copied g
#   times all the same, as large as repeat_kv's result
# caught-by: test_no_repeated_kv
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
    q5 = q.reshape(b, n_kv, g, t_q, d)
    scores = q5 @ k[:, :, None].transpose(-2, -1) / math.sqrt(d)  # (b, n_kv, g, t_q, t_k)
    if causal:
        blocked = torch.ones(t_q, t_k, dtype=torch.bool).tril(t_k - t_q).logical_not()
        weights = torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1).masked_fill(blocked, 0.0)
    else:
        weights = torch.softmax(scores, dim=-1)
    out = weights @ v[:, :, None]  # (b, n_kv, g, t_q, d_v)
    return out.reshape(b, n_heads, t_q, v.shape[-1]).to(out_dtype)
