# expect: failed
# why: repeats the kv heads with x.repeat (the whole stack tiled: A B A B ...) instead of
#   repeat_interleave (A A B B ...), so query head h reads kv head h % n_kv_heads, not h // g
# caught-by: test_repeat_kv, test_worked_example, test_matches_torch, test_gradients
import math

import torch


def repeat_kv(x, n_rep):
    return x.repeat(1, n_rep, 1, 1)


def grouped_query_attention(q, k, v, *, causal=True):
    n_heads, n_kv = q.shape[1], k.shape[1]
    if n_heads % n_kv != 0:
        raise ValueError("n_heads must be a multiple of n_kv_heads")
    out_dtype = q.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    k, v = repeat_kv(k, n_heads // n_kv), repeat_kv(v, n_heads // n_kv)
    t_q, t_k = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        blocked = torch.ones(t_q, t_k, dtype=torch.bool).tril(t_k - t_q).logical_not()
        weights = torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1).masked_fill(blocked, 0.0)
    else:
        weights = torch.softmax(scores, dim=-1)
    return (weights @ v).to(out_dtype)
