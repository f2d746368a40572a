# expect: failed
# why: computes the attention in the module's dtype: float32 is right, but a float16 module's scores
#   overflow past 65504 (inf, then NaN in the softmax); the public tests are all float32, so only the
#   hidden float16 test sees it
# caught-by: test_float16_scores_beyond_its_range

import math

import torch
from torch import nn

HALF = (torch.float16, torch.bfloat16)


class MultiHeadAttention(nn.Module):
    """n_heads attention heads over d_model features, each head d_head = d_model // n_heads wide."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if n_heads <= 0 or d_model <= 0 or d_model % n_heads != 0:
            raise ValueError(f"n_heads must be positive and divide d_model, got {d_model=} and {n_heads=}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        # four (d_model, d_model) projections with biases, as nn.MultiheadAttention and GPT-2 have
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.o_proj = nn.Linear(d_model, d_model)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> (B, n_heads, T, d_head): head h takes features h*d_head:(h+1)*d_head."""
        b, n, _ = t.shape
        return t.view(b, n, self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        b, n, d = x.shape  # (B, T, d_model)
        q = self._split(self.q_proj(x))  # (B, h, T, d_head)
        k = self._split(self.k_proj(x))
        v = self._split(self.v_proj(x))
        dtype = q.dtype

        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.d_head))  # (B, h, T, T)
        if causal:
            # query i may attend key j iff j <= i; every row keeps its diagonal, so none is empty
            allowed = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~allowed, float("-inf"))
        att = torch.softmax(att, dim=-1)  # over the keys: each query's weights sum to 1
        y = (att @ v).to(dtype)  # (B, h, T, d_head)

        # merge: back to (B, T, h, d_head), then concatenate the heads in order along the features
        y = y.transpose(1, 2).reshape(b, n, d)  # (B, T, d_model)
        return self.o_proj(y)
