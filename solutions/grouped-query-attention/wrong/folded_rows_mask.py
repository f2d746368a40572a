# expect: failed
# why: folds the g query heads of a group into g * T_q query rows, then builds the bottom-right mask
#   for those g * T_q rows as if they were positions: the first heads of every group lose the last
#   keys (in a decode step, head 0 of a group of 4 does not see the 3 newest keys)
# caught-by: test_worked_example, test_matches_torch, test_kv_cache_decoding
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
    rows = g * t_q
    scores = q.reshape(b, n_kv, rows, d) @ k.transpose(-2, -1) / math.sqrt(d)
    if causal:
        blocked = torch.ones(rows, t_k, dtype=torch.bool).tril(t_k - rows).logical_not()
        weights = torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1).masked_fill(blocked, 0.0)
    else:
        weights = torch.softmax(scores, dim=-1)
    return (weights @ v).reshape(b, n_heads, t_q, v.shape[-1]).to(out_dtype)
