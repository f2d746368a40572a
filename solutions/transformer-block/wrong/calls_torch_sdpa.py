# expect: rejected
# why: hands attention to torch's F.scaled_dot_product_attention, which the exercise forbids
import torch.nn.functional as F


def rms_norm(x, weight, eps):
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def causal_self_attention(x, wq, wk, wv, wo, n_heads):
    B, T, C = x.shape

    def heads(t):
        return t.view(B, T, n_heads, C // n_heads).transpose(1, 2)

    y = F.scaled_dot_product_attention(heads(x @ wq.T), heads(x @ wk.T), heads(x @ wv.T), is_causal=True)
    return y.transpose(1, 2).reshape(B, T, C) @ wo.T


def swiglu_ffn(x, w_gate, w_up, w_down):
    return (F.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


def transformer_block(x, params, layer, config):
    p = f"blocks.{layer}."
    h = rms_norm(x, params[p + "attn_norm.weight"], config["eps"])
    w = [params[p + f"attn.{n}.weight"] for n in "qkvo"]
    x = x + causal_self_attention(h, *w, config["n_heads"])
    h = rms_norm(x, params[p + "ffn_norm.weight"], config["eps"])
    return x + swiglu_ffn(h, *(params[p + f"ffn.{n}.weight"] for n in ("gate", "up", "down")))


def gpt_forward(tokens, params, config):
    T = tokens.shape[-1]
    if T > params["wpe"].shape[0]:
        raise ValueError("too many tokens")
    x = params["wte"][tokens] + params["wpe"][:T]
    for layer in range(config["n_layers"]):
        x = transformer_block(x, params, layer, config)
    return rms_norm(x, params["final_norm.weight"], config["eps"]) @ params["wte"].T
