"""Online softmax and the FlashAttention-2 forward pass.

Save this file as flash.py and fill in the three functions. Read README.md first: it explains
the recurrence and every convention used here.
"""

import torch


def online_softmax(x: torch.Tensor, block: int) -> torch.Tensor:
    """softmax(x) over the last dimension, its statistics gathered in one streaming pass.

    Walk the last dimension in blocks of `block` columns (the last block may be shorter), keeping
    per row a running max m and a running sum l of exp(x - m). When a block raises the max from m
    to m_new, the sum gathered so far was relative to m: rescale it by exp(m - m_new) before adding
    the block's own exp(x_block - m_new). Then normalise: exp(x - m) / l.

    x: (..., n), any number of leading dims (also none). Returns a tensor of the same shape and
    dtype. float16 and bfloat16 inputs are computed in float32 and cast back.
    -inf entries get weight 0. A row whose entries are all -inf returns zeros (never NaN), and a
    block that is all -inf while the running max is still -inf must not produce NaN either.
    block < 1 raises ValueError. x is left as it was: compute new tensors, never in place on x.

    Not allowed: torch.softmax, torch.logsumexp and friends (this is the exercise).
    """
    raise NotImplementedError("online_softmax: running max, rescaled running sum, then normalise")


def flash_attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    block_q: int,
    block_k: int,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention softmax(q k^T / sqrt(d)) v, one (block_q x block_k) tile at a time.

    Shapes (the same leading dims for q, k and v, any number of them, also none):
        q: (..., n_q, d)    k: (..., n_k, d)    v: (..., n_k, d_v)
    Returns (out, lse):
        out: (..., n_q, d_v), the dtype of q
        lse: (..., n_q), float32: the natural-log log-sum-exp of each query's scaled, masked
             scores, lse_i = log(sum_j exp(q_i . k_j / sqrt(d))) over the keys j it may attend.

    For each block of block_q queries keep a running max m, a running sum l and a running output
    acc (unnormalised); for each block of block_k keys compute the tile's scores, update m, rescale
    l and acc by exp(m_old - m_new), add the tile's contribution. Normalise once at the end:
    out = acc / l, lse = m + log(l). Edge tiles are smaller when a length is not a multiple of
    its block size.

    is_causal=True: query i may attend key j only when j <= i (top-left, as torch's is_causal).
    A query with no key to attend to (n_k = 0) gets out = 0 and lse = -inf, never NaN.
    float16 / bfloat16: compute in float32, return out in the input dtype (lse stays float32).
    block_q < 1 or block_k < 1 raises ValueError. q, k and v are left as they were.

    Memory: never allocate an (n_q, n_k) tensor, not even a boolean mask: build each tile's mask
    from its own query and key positions. Loops over blocks are expected; loops over single
    positions are too slow.
    """
    raise NotImplementedError("flash_attention_forward: the blocked recurrence over q and k tiles")


def merge_partials(
    out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine attention results over two disjoint sets of keys into the result over both.

    out_a, out_b: (..., n_q, d_v); lse_a, lse_b: (..., n_q) float32, as returned by
    flash_attention_forward for the same queries over key sets A and B. Returns (out, lse) for
    attention over A and B together:
        lse = log(exp(lse_a) + exp(lse_b))                     (computed stably)
        out = exp(lse_a - lse) * out_a + exp(lse_b - lse) * out_b
    out has the dtype of out_a (computed in float32), lse is float32. A partial over no keys
    (out 0, lse -inf) changes nothing; two of them merge to (0, -inf), never NaN. The four inputs
    are left as they were (mind that .float() of a float32 tensor is that same tensor).
    """
    raise NotImplementedError("merge_partials: weight each output by its share of the softmax mass")
