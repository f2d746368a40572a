"""Causal masking: scaled dot-product attention that never looks ahead.

Fill in the two functions below. Read README.md first: it explains every convention used here.
"""

import torch


def causal_mask(n_q: int, n_k: int, *, align: str = "top_left", device=None) -> torch.Tensor:
    """The causal mask for n_q queries and n_k keys.

    Returns a bool tensor of shape (n_q, n_k) on `device` (None: torch's default device) where
    True means "query i may attend key j" and False means "query i must not see key j".

    align="top_left":     query i may attend key j  iff  j <= i.
        The diagonal starts at the top-left corner. This is what PyTorch's
        F.scaled_dot_product_attention(..., is_causal=True) does.
    align="bottom_right": query i may attend key j  iff  j <= i + (n_k - n_q).
        The diagonal ends at the bottom-right corner: the last query sees every key. This is
        the alignment KV-cache decoding needs, where the n_q new queries are the last n_q
        positions of a sequence of n_k keys. When n_q > n_k the first n_q - n_k rows have no
        allowed key at all (every entry False).

    Any other value of `align` raises ValueError.

    Example (n_q=3, n_k=5), 1 = True:
        top_left        bottom_right
        1 0 0 0 0       1 1 1 0 0
        1 1 0 0 0       1 1 1 1 0
        1 1 1 0 0       1 1 1 1 1
    """
    raise NotImplementedError("causal_mask: build the (n_q, n_k) bool mask")


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    align: str = "top_left",
) -> torch.Tensor:
    """softmax(q @ k^T / sqrt(d)) @ v, where keys that are not allowed get no weight at all.

    Shapes (any number of leading batch / head dims, the same for q, k and v, also none):
        q: (..., n_q, d)     k: (..., n_k, d)     v: (..., n_k, d_v)
        returns (..., n_q, d_v). d_v may differ from d. The scale is 1 / sqrt(d), d = q.shape[-1].

    Which keys query i may attend:
        mask:      optional bool tensor broadcastable to (..., n_q, n_k); True = may attend
                   (the same convention as F.scaled_dot_product_attention's bool attn_mask).
        is_causal: when True, also apply causal_mask(n_q, n_k, align=align).
        When both are given, both apply: key j is attended only where the mask allows it AND
        the causal rule allows it. With neither, every query attends every key.
        align:     "top_left" or "bottom_right" (see causal_mask); anything else raises
                   ValueError, whether or not is_causal is set.

    A query row with no allowed key at all (bottom_right with n_q > n_k, or a mask row that is
    all False) returns a row of zeros, never NaN.

    Dtypes: the output has the dtype of q. For float16 and bfloat16 inputs, compute the scores,
    the softmax and the weighted sum in float32, then cast the result back to the input dtype.

    q, k, v and mask are left as they were: compute on new tensors, never in place on them.

    Not allowed: torch.nn.functional.scaled_dot_product_attention and torch.nn.MultiheadAttention.
    No Python loops over query positions either: the whole computation is a few tensor ops.
    """
    raise NotImplementedError("scaled_dot_product_attention: compute masked attention")
