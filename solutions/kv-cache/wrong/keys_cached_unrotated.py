# expect: failed
# why: caches the keys before the rotary embedding and rotates all of them, cached and new, at
#   their positions 0 .. T_past + T_new - 1 at every step: the logits are right, but the cache is
#   not the one the lesson specifies (keys after rotary), and every step redoes the rotation of the
#   whole past
# caught-by: test_cache_form
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


def _extend(params: dict, tokens: torch.Tensor, cache: list) -> tuple[torch.Tensor, list]:
    """Run the new tokens (B, T_new) at positions T_past .. T_past + T_new - 1, where T_past is the
    length of `cache` (an empty list: nothing cached yet). Returns their logits and a new cache."""
    n_head = params["n_head"]
    T_new = tokens.shape[1]
    T_past = cache[0][0].shape[2] if cache else 0
    # the new tokens are the LAST T_new positions of the sequence, for rotary and for the mask
    positions = torch.arange(T_past, T_past + T_new, device=tokens.device)  # (T_new,)
    # bottom-right causal mask: new token i (position T_past + i) sees keys j <= T_past + i
    mask = torch.ones(T_new, T_past + T_new, dtype=torch.bool, device=tokens.device).tril(diagonal=T_past)
    new_cache = []
    x = params["wte"][tokens]  # (B, T_new, C)
    for i, layer in enumerate(params["layers"]):
        h = rms_norm(x, layer["attn_norm"])
        q = rope(split_heads(h @ layer["wq"], n_head), positions)  # (B, n_head, T_new, head_dim)
        k = split_heads(h @ layer["wk"], n_head)  # the mistake: cached as it is, before the rotation
        v = split_heads(h @ layer["wv"], n_head)
        if cache:
            k_past, v_past = cache[i]  # (B, n_head, T_past, head_dim), keys NOT rotated
            k = torch.cat([k_past, k], dim=2)  # (B, n_head, T_past + T_new, head_dim)
            v = torch.cat([v_past, v], dim=2)
        new_cache.append((k, v))
        # every key rotated at its own position, again at every step: right logits, wrong cache
        k_rotated = rope(k, torch.arange(T_past + T_new, device=tokens.device))
        x = x + merge_heads(attention(q, k_rotated, v, mask)) @ layer["wo"]
        x = x + mlp(layer, rms_norm(x, layer["mlp_norm"]))
    return rms_norm(x, params["norm_f"]) @ params["lm_head"], new_cache  # (B, T_new, vocab)


def prefill(params: dict, tokens: torch.Tensor) -> tuple[torch.Tensor, list]:
    """The prompt (B, T), all positions at once: its logits (B, T, vocab) and the cache."""
    return _extend(params, tokens, [])


def decode_step(params: dict, tokens: torch.Tensor, cache: list) -> tuple[torch.Tensor, list]:
    """The next T_new tokens (B, T_new) after the cached ones: their logits and the longer cache."""
    return _extend(params, tokens, cache)


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
