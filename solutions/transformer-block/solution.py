"""A pre-norm transformer block and a GPT forward pass: the reference solution."""

import math

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x^2 over the last dim) + eps) * weight."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def causal_self_attention(
    x: torch.Tensor,
    wq: torch.Tensor,
    wk: torch.Tensor,
    wv: torch.Tensor,
    wo: torch.Tensor,
    n_heads: int,
) -> torch.Tensor:
    """Multi-head causal self-attention of x (B, T, C) with nn.Linear-layout (C, C) weights."""
    B, T, C = x.shape
    d_head = C // n_heads

    def heads(t: torch.Tensor) -> torch.Tensor:
        # (B, T, C) -> (B, T, n_heads, d_head) -> (B, n_heads, T, d_head): head h owns features
        # h * d_head .. (h + 1) * d_head - 1 of the projection
        return t.view(B, T, n_heads, d_head).transpose(1, 2)

    q, k, v = heads(x @ wq.T), heads(x @ wk.T), heads(x @ wv.T)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_head)  # (B, n_heads, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(diagonal=1)  # key j > query i
    weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    y = weights @ v  # (B, n_heads, T, d_head)
    y = y.transpose(1, 2).reshape(B, T, C)  # the heads side by side again
    return y @ wo.T


def swiglu_ffn(
    x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor
) -> torch.Tensor:
    """down(silu(gate(x)) * up(x)), nn.Linear-layout weights."""
    return (F.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


def transformer_block(x: torch.Tensor, params: dict, layer: int, config: dict) -> torch.Tensor:
    """One pre-norm block: x + attn(norm(x)), then + ffn(norm(...))."""
    p = f"blocks.{layer}."
    eps = config["eps"]
    h = rms_norm(x, params[p + "attn_norm.weight"], eps)
    x = x + causal_self_attention(
        h,
        params[p + "attn.q.weight"],
        params[p + "attn.k.weight"],
        params[p + "attn.v.weight"],
        params[p + "attn.o.weight"],
        config["n_heads"],
    )
    h = rms_norm(x, params[p + "ffn_norm.weight"], eps)
    return x + swiglu_ffn(
        h, params[p + "ffn.gate.weight"], params[p + "ffn.up.weight"], params[p + "ffn.down.weight"]
    )


def gpt_forward(tokens: torch.Tensor, params: dict, config: dict) -> torch.Tensor:
    """Token ids (B, T) -> logits (B, T, vocab_size)."""
    T = tokens.shape[-1]
    wte, wpe = params["wte"], params["wpe"]
    if T > wpe.shape[0]:
        raise ValueError(f"{T} tokens, but position embeddings for {wpe.shape[0]} positions only")
    x = wte[tokens] + wpe[:T]  # (B, T, C): token embedding plus the embedding of positions 0..T-1
    for layer in range(config["n_layers"]):
        x = transformer_block(x, params, layer, config)
    x = rms_norm(x, params["final_norm.weight"], config["eps"])
    return x @ wte.T  # tied head: (B, T, C) @ (C, vocab) -> (B, T, vocab)
