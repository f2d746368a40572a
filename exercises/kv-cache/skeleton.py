"""KV-cache decoding for a tiny decoder-only transformer.

Save this file as decode.py. The model is given (read it: your code reuses its pieces); write
`prefill` and `decode_step`, and keep everything else as it is (the hidden tests use `decode_all`).
Read README.md first: it explains the cache, the positions and the mask.
"""

import math

import torch
import torch.nn.functional as F

ROPE_BASE = 10000.0

# ----------------------------------------------------------------------------- the given model
#
# params is a dict (C = d_model, V = vocab size, n_head divides C, head_dim = C // n_head):
#     "n_head":   int
#     "wte":      (V, C)   token embeddings
#     "layers":   a list of dicts, one per layer:
#                 "attn_norm" (C,), "wq" "wk" "wv" "wo" (C, C), "mlp_norm" (C,),
#                 "w_up" (C, C_mlp), "w_down" (C_mlp, C)
#     "norm_f":   (C,)     the final RMSNorm's weight
#     "lm_head":  (C, V)
# Weights are stored (in, out): a layer computes x @ w. There are no biases.


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """x / rms(x) * weight over the last dimension. x: (..., C), weight: (C,)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of x (B, n_head, T, head_dim) at the absolute `positions` (T,).

    Channel i of the first half and channel i of the second half form a pair, rotated by the
    angle positions * ROPE_BASE ** (-2i / head_dim) (the "rotate half" layout of GPT-NeoX and
    Llama)."""
    half = x.shape[-1] // 2
    inv_freq = ROPE_BASE ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)  # (half,)
    angles = positions.to(torch.float32).unsqueeze(-1) * inv_freq  # (T, half)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v over the keys the bool `mask` (T_q, T_k) allows (True).

    q: (B, n_head, T_q, head_dim), k and v: (B, n_head, T_k, head_dim)."""
    att = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, n_head, T_q, T_k)
    att = att.masked_fill(~mask, float("-inf"))
    return torch.softmax(att, dim=-1) @ v  # (B, n_head, T_q, head_dim)


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, n_head, T, C // n_head)."""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, n_head, T, head_dim) -> (B, T, n_head * head_dim)."""
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


def mlp(layer: dict, x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x @ layer["w_up"]) @ layer["w_down"]


def forward(params: dict, tokens: torch.Tensor) -> torch.Tensor:
    """The logits (B, T, vocab) of every position of the token ids (B, T), all at once."""
    n_head = params["n_head"]
    T = tokens.shape[1]
    positions = torch.arange(T, device=tokens.device)
    mask = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()  # causal
    x = params["wte"][tokens]  # (B, T, C)
    for layer in params["layers"]:
        h = rms_norm(x, layer["attn_norm"])
        q = rope(split_heads(h @ layer["wq"], n_head), positions)  # (B, n_head, T, head_dim)
        k = rope(split_heads(h @ layer["wk"], n_head), positions)
        v = split_heads(h @ layer["wv"], n_head)
        x = x + merge_heads(attention(q, k, v, mask)) @ layer["wo"]
        x = x + mlp(layer, rms_norm(x, layer["mlp_norm"]))
    return rms_norm(x, params["norm_f"]) @ params["lm_head"]  # (B, T, vocab)


# ----------------------------------------------------------------------------- the exercise
#
# The cache: a list with one (k, v) tuple per layer, in layer order, where
#     k, v: (B, n_head, T_cached, head_dim)
# hold the keys and values of every position processed so far. Keys are stored AFTER the rotary
# embedding (each key rotated once, at its own position), so they never need rotating again.
# k and v are float32. The tests check this form and the cached values, and hand back to
# decode_step exactly what your functions returned.


def prefill(params: dict, tokens: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Process a prompt, all positions at once, and build the cache.

    tokens: (B, T) int64 token ids, positions 0 .. T - 1.
    Returns (logits, cache): logits (B, T, vocab), equal to forward(params, tokens); cache holds
    the keys and values of the T positions (see the comment above).
    """
    raise NotImplementedError("prefill: run the prompt and keep each layer's keys and values")


def decode_step(params: dict, tokens: torch.Tensor, cache: list) -> tuple[torch.Tensor, list]:
    """Process the next T_new tokens of each sequence, attending to the cache and to themselves.

    tokens: (B, T_new) int64, usually T_new = 1, sometimes a chunk of several. With T_past
    positions in `cache`, they sit at positions T_past .. T_past + T_new - 1: use those for the
    rotary embedding. New token i attends to all T_past cached positions and to the new tokens
    0 .. i (a bottom-right causal mask over T_past + T_new keys).
    Returns (logits, cache): logits (B, T_new, vocab), equal to the last T_new positions of
    forward(params, all tokens so far); and a new cache of T_past + T_new positions. Do not modify
    the cache you were given: decoding twice from the same cache gives the same result.
    """
    raise NotImplementedError("decode_step: extend the cache by the new tokens and attend over it")


# ----------------------------------------------------------------------------- the given driver


def decode_all(params: dict, tokens: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """Prefill tokens[:, :prompt_len], then feed the rest one token at a time through decode_step
    (teacher forcing). Returns the logits of every position, (B, T, vocab): they must equal
    forward(params, tokens)."""
    logits, cache = prefill(params, tokens[:, :prompt_len])
    steps = [logits]
    for t in range(prompt_len, tokens.shape[1]):
        logits, cache = decode_step(params, tokens[:, t : t + 1], cache)
        steps.append(logits)
    return torch.cat(steps, dim=1)
