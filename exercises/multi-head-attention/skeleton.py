"""Multi-head attention: a self-attention module whose weights load from a state dict.

Fill in the MultiHeadAttention class below. Read README.md first: it explains every convention used
here.
"""

import math  # noqa: F401 - for the 1 / sqrt(d_head) scale

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention over d_model features with n_heads heads of d_head = d_model // n_heads.

    Parameters (the tests load weights into them by these names, strict):
        q_proj, k_proj, v_proj, o_proj   four nn.Linear(d_model, d_model) layers, with bias
    so that state_dict() holds exactly q_proj.weight, q_proj.bias, k_proj.weight, k_proj.bias,
    v_proj.weight, v_proj.bias, o_proj.weight, o_proj.bias: no other parameter, no persistent
    buffer (keep a cached mask, if any, as a plain attribute or a buffer with persistent=False).

    Raises ValueError unless n_heads is positive and divides d_model.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        raise NotImplementedError("MultiHeadAttention.__init__: check n_heads, create the four projections")

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """x: (B, T, d_model) -> (B, T, d_model), self-attention (queries, keys, values all from x).

        1. q, k, v = q_proj(x), k_proj(x), v_proj(x)                       (B, T, d_model)
        2. split each: .view(B, T, n_heads, d_head).transpose(1, 2)         (B, n_heads, T, d_head)
           head h takes features h*d_head:(h+1)*d_head
        3. per head: softmax(q @ k^T / sqrt(d_head), over the keys) @ v    (B, n_heads, T, d_head)
           causal=True: position i attends positions j <= i only; the others get -inf scores
           before the softmax. causal=False: every position attends every position.
        4. merge: .transpose(1, 2).reshape(B, T, d_model), head 0's features first
        5. o_proj of the merged heads                                       (B, T, d_model)

        Dtypes: the projections run in the module's dtype. For float16 and bfloat16, step 3 is
        computed in float32 and its result cast back to x's dtype before o_proj. The output has
        x's dtype. Leave x as it was (no in-place operations on it). No dropout.
        """
        raise NotImplementedError("MultiHeadAttention.forward: project, split, attend, merge, project")
