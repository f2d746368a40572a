# expect: too_slow
# why: correct, but repeats K and V to n_heads heads (repeat_interleave, Llama's eager path) before
#   ordinary multi-head attention: a copy of the cache g times its size at every call, which is
#   the memory GQA exists to save
# caught-by: test_no_repeated_kv
import math

import torch


def repeat_kv(x, n_rep):
    return torch.repeat_interleave(x, n_rep, dim=1)


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
