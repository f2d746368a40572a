"""Sliding-window attention: every query attends the `window` latest keys up to itself.

Fill in the two functions below. Read README.md first: it explains every convention used here.
"""

import torch


def window_mask(n_q: int, n_k: int, window: int, *, align: str = "top_left", device=None) -> torch.Tensor:
    """The sliding-window mask for n_q queries and n_k keys, for small cases and your own tests.

    Returns a bool tensor of shape (n_q, n_k) on `device` (None: torch's default device), True
    where query i may attend key j:

        p = i                  for align="top_left"      (query i is position i)
        p = i + (n_k - n_q)    for align="bottom_right"  (the queries are the last n_q positions)
        query i may attend key j  iff  p - window < j <= p

    so every query sees exactly min(window, p + 1) keys: its own position and the window - 1
    before it (fewer near the start of the sequence). With n_q == n_k both alignments agree.

    Raises ValueError when align is not "top_left" or "bottom_right", when window < 1, or
    unless 1 <= n_q <= n_k.

    Example (n_q=2, n_k=5, window=2), 1 = True:
        top_left        bottom_right
        1 0 0 0 0       0 0 1 1 0
        1 1 0 0 0       0 0 0 1 1
    """
    raise NotImplementedError("window_mask: build the (n_q, n_k) bool mask")


def sliding_window_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, *, align: str = "top_left"
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v where query i attends only the keys j with p - window < j <= p.

    Shapes (the same leading batch / head dims for q, k and v, any number of them, also none):
        q: (..., n_q, d)     k: (..., n_k, d)     v: (..., n_k, d_v)
        returns (..., n_q, d_v). d_v may differ from d. The scale is 1 / sqrt(d), d = q.shape[-1].

    window: the number of keys a query sees, itself included (Mistral's W, Hugging Face's
        `sliding_window`). window = 1: each query sees only its own key, so the output is v.
        window >= n_k: plain causal attention.
    align: where the queries sit among the keys, exactly as in window_mask: "top_left" (query i
        is position i) or "bottom_right" (query i is position i + n_k - n_q, as when decoding
        with a KV cache). With n_q == n_k both agree.

    Raises ValueError when align is not "top_left" or "bottom_right", when window < 1, or
    unless 1 <= n_q <= n_k.

    Memory and compute must grow linearly with the length at a fixed window: never build an
    (n_q, n_k) tensor (scores, weights or a bool mask). Work one block of queries at a time
    against only the keys that block can see, or gather each query's window of keys.

    Dtypes: the output has the dtype of q. float16 and bfloat16 inputs are computed in float32
    and the result is cast back; float32 and float64 are computed in their own dtype.

    q, k and v are left as they were, and the output is differentiable with respect to all
    three (build it from torch operations; no in-place writes into tensors autograd needs).

    Not allowed: torch.nn.functional.scaled_dot_product_attention, nn.MultiheadAttention,
    flex_attention.
    """
    raise NotImplementedError("sliding_window_attention: attend each query's window of keys")
