"""Grouped-query and multi-query attention: many query heads, fewer key/value heads.

Fill in the two functions below. Read README.md first: it explains every convention used here.
"""

import torch


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeat every key/value head n_rep times, the way Llama lays the copies out.

    x: (B, n_kv_heads, T, d). Returns (B, n_kv_heads * n_rep, T, d) where output head h is
    input head h // n_rep: kv head j becomes the n_rep ADJACENT heads j*n_rep .. j*n_rep + n_rep - 1
    (interleaved, as torch.repeat_interleave(x, n_rep, dim=1) does), NOT the whole stack tiled
    n_rep times (x.repeat(1, n_rep, 1, 1), where head h would be input head h % n_kv_heads).

    Example, n_kv_heads = 2 (heads A, B), n_rep = 3:  A A A B B B   (not A B A B A B).

    n_rep is at least 1; with n_rep = 1 the result equals x (returning x itself is fine).
    This is the explicit layout, for checking and testing: grouped_query_attention below must
    NOT call it (or anything else that builds the repeated keys and values).
    """
    raise NotImplementedError("repeat_kv: repeat each kv head n_rep times, adjacent copies")


def grouped_query_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True
) -> torch.Tensor:
    """Scaled dot-product attention where groups of query heads share one key/value head.

    Shapes:
        q: (B, n_heads, T_q, d)      k: (B, n_kv_heads, T_k, d)      v: (B, n_kv_heads, T_k, d_v)
        returns (B, n_heads, T_q, d_v). d_v may differ from d. The inputs may be non-contiguous
        (for instance q = x.view(B, T, n_heads, d).transpose(1, 2), as in Llama).

    Heads: n_heads must be a multiple of n_kv_heads, otherwise raise ValueError. With
        g = n_heads // n_kv_heads, query head h uses key/value head h // g (kv head j serves query
        heads j*g .. j*g + g - 1). n_kv_heads = 1 is multi-query attention (MQA), n_kv_heads =
        n_heads plain multi-head attention.

    Each head: softmax(q_h k_j^T / sqrt(d)) v_j, scale 1 / sqrt(d) with d = q.shape[-1], the
        size of ONE head (not n_heads * d).

    causal=True: the mask is aligned bottom-right: the T_q queries are the LAST T_q positions of
        the T_k keys, so query i may attend key j iff j <= i + (T_k - T_q) (a decode step with a
        cache, T_q = 1, sees every key). A query with no allowed key (only when T_q > T_k: queries
        i < T_q - T_k) returns a row of zeros. causal=False: every query attends every key.

    Dtypes: the output has the dtype of q. float16 and bfloat16 inputs are computed in float32
        (scores, softmax, weighted sum) and the result is cast back once; float32 and float64 are
        computed in their own dtype.

    Memory: never materialise K or V repeated to n_heads heads (no repeat_kv, repeat_interleave,
        repeat, or expand followed by a copy, and note that `@` with a broadcast batch dimension
        copies the broadcast operand). Fold each group's query heads into the query axis, or use
        torch.einsum on a grouped view of q.

    q, k and v are left as they were: compute on new tensors, never in place on them.
    Not allowed: torch.nn.functional.scaled_dot_product_attention (also with enable_gqa=True).
    """
    raise NotImplementedError("grouped_query_attention: attention with shared kv heads")
