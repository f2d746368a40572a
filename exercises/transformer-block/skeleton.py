"""A pre-norm transformer block and a GPT forward pass, as plain functions over a dict of weights.

Fill in the five functions below. Read README.md first: it explains every convention used here
(the parameter names and shapes, the head layout, the scale, the mask and the tied head).
"""

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dimension: x / sqrt(mean(x^2, last dim) + eps) * weight.

    x: (..., C); weight: (C,); returns (..., C). eps goes inside the square root.
    (torch.nn.functional.rms_norm may be used.)
    """
    raise NotImplementedError("rms_norm: x / sqrt(mean(x^2) + eps) * weight")


def causal_self_attention(
    x: torch.Tensor,
    wq: torch.Tensor,
    wk: torch.Tensor,
    wv: torch.Tensor,
    wo: torch.Tensor,
    n_heads: int,
) -> torch.Tensor:
    """Multi-head causal self-attention: the attention sublayer's output (no residual added).

    x: (B, T, C). wq, wk, wv, wo: (C, C) in nn.Linear layout (out, in): q = x @ wq.T. No biases.
    n_heads divides C; d_head = C // n_heads.

    1. q, k, v = x @ wq.T, x @ wk.T, x @ wv.T                      (B, T, C)
    2. split: t.view(B, T, n_heads, d_head).transpose(1, 2)        (B, n_heads, T, d_head)
       (head h owns features h * d_head .. (h + 1) * d_head - 1)
    3. scores = q @ k.transpose(-2, -1) / sqrt(d_head)             (B, n_heads, T, T)
    4. causal mask: query i may attend key j only if j <= i (others -inf before the softmax)
    5. softmax over the keys, then @ v                             (B, n_heads, T, d_head)
    6. merge: .transpose(1, 2).reshape(B, T, C), then @ wo.T       (B, T, C)

    Not allowed: torch.nn.functional.scaled_dot_product_attention, torch.nn.MultiheadAttention.
    """
    raise NotImplementedError("causal_self_attention: project, split heads, mask, softmax, merge, project")


def swiglu_ffn(
    x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor
) -> torch.Tensor:
    """The SwiGLU MLP: down(silu(gate(x)) * up(x)).

    x: (..., C); w_gate, w_up: (d_ff, C); w_down: (C, d_ff), nn.Linear layout, no biases.
    Returns (silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T, of shape (..., C).
    silu(z) = z * sigmoid(z), on the gate branch only.
    """
    raise NotImplementedError("swiglu_ffn: (silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T")


def transformer_block(x: torch.Tensor, params: dict, layer: int, config: dict) -> torch.Tensor:
    """Pre-norm decoder block number `layer`, reading the params "blocks.{layer}.<name>":

        x = x + causal_self_attention(rms_norm(x, attn_norm.weight, eps), attn.q/k/v/o.weight, n_heads)
        x = x + swiglu_ffn(rms_norm(x, ffn_norm.weight, eps), ffn.gate/up/down.weight)

    x: (B, T, C) -> (B, T, C). config["n_heads"] and config["eps"] as in README.md.
    The residual is x itself, not the normalised x. Return a new tensor; leave the given x as it
    was (no x += ...).
    """
    raise NotImplementedError("transformer_block: x + attn(norm(x)), then x + ffn(norm(x))")


def gpt_forward(tokens: torch.Tensor, params: dict, config: dict) -> torch.Tensor:
    """Token ids to logits.

    tokens: (B, T) int64, 1 <= T <= max_seq_len = params["wpe"].shape[0]; a longer T raises
    ValueError. params: the dict of README.md ("wte" (V, C), "wpe" (max_seq_len, C), the blocks'
    weights, "final_norm.weight" (C,)). config: {"n_layers": int (may be 0), "n_heads": int,
    "eps": float}.

        x = wte[tokens] + wpe[:T]                       (B, T, C)
        x = transformer_block(x, params, l, config)     for l = 0 .. n_layers - 1
        h = rms_norm(x, final_norm.weight, eps)
        logits = h @ wte.T                              (B, T, V), the head tied to wte

    Computed in the parameters' dtype, differentiable with respect to every parameter; params and
    tokens are left as they were.
    """
    raise NotImplementedError("gpt_forward: embed, run the blocks, final norm, tied head")
