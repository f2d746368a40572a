# expect: rejected
# why: hands the work to torch's nn.MultiheadAttention, which the exercise forbids
import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if n_heads <= 0 or d_model % n_heads != 0:
            raise ValueError("n_heads must be positive and divide d_model")
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.o_proj = nn.Linear(d_model, d_model)
        self.n_heads = n_heads

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        d = x.shape[-1]
        mha = nn.MultiheadAttention(d, self.n_heads, batch_first=True, dtype=x.dtype)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]))
            mha.in_proj_bias.copy_(torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]))
            mha.out_proj.weight.copy_(self.o_proj.weight)
            mha.out_proj.bias.copy_(self.o_proj.bias)
        t = x.shape[1]
        mask = torch.ones(t, t, dtype=torch.bool).triu(1) if causal else None
        out, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
        return out
