# expect: failed
# why: half-precision inputs are computed in half precision: float16 scores overflow past 65504 and
#   a bfloat16 softmax over a long cache is off by many units in the last place
# caught-by: test_half_precision, test_float16_scores_beyond_its_range
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
    scores = q.reshape(b, n_kv, g * t_q, d) @ k.transpose(-2, -1) / math.sqrt(d)
    if causal:
        blocked = torch.ones(t_q, t_k, dtype=torch.bool).tril(t_k - t_q).logical_not()
        scores = scores.view(b, n_kv, g, t_q, t_k).masked_fill(blocked, float("-inf"))
        weights = torch.softmax(scores, dim=-1).masked_fill(blocked, 0.0).view(b, n_kv, g * t_q, t_k)
    else:
        weights = torch.softmax(scores, dim=-1)
    return (weights @ v).reshape(b, n_heads, t_q, v.shape[-1])
