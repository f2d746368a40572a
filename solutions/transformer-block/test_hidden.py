"""Hidden tests for transformer-block: every function against a model built from torch.nn pieces
(nn.Linear, nn.RMSNorm and torch's scaled dot-product attention, in float64), causality, batch
independence, the sequence-length limit, inputs left alone, and gradients of the sublayers, the
block and a loss of the whole forward pass with respect to every parameter."""

import copy
import math
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # trusted side only: submissions may not call its attention
from torch import nn

from grader.testing import (
    Seq,
    assert_causal,
    assert_close,
    assert_gradients_close,
    call_unchanged,
    compare,
    expect,
    kept_in_runner,
    shrink,
)

POST_NORM = (
    "post-norm? this block is pre-norm: x = x + attn(rms_norm(x)), the norm on the sublayer's input, never "
    "on the residual stream"
)
NORMED_RESIDUAL = (
    "the residual taken from the normalised x? add the sublayer's output to x itself: x + attn(rms_norm(x))"
)
NO_FINAL_NORM = "no final norm? the stream goes through final_norm before the head"
NO_POSITIONS = "position embeddings missing? add wpe[:T] to the token embeddings"
NOT_CAUSAL = "no causal mask? query i may attend keys j <= i only"
NO_SCALE = "forgot the 1/sqrt(d_head) scale?"
SCALE_D_MODEL = "scaled by 1/sqrt(d_model)? the scale is 1/sqrt(d_head), d_head = d_model / n_heads"
HEADS_VIEW = (
    "heads split with .view(B, n_heads, T, d_head)? view as (B, T, n_heads, d_head), then transpose(1, 2), "
    "so that head h owns features h * d_head .. (h + 1) * d_head - 1 of every token"
)
GATE_UP_SWAPPED = (
    "silu on the wrong branch? SwiGLU is down(silu(gate(x)) * up(x)): silu on the gate projection"
)
SILU_OF_PRODUCT = "silu of the product? only the gate branch goes through silu, then it multiplies up(x)"
EPS_OUTSIDE = "eps added outside the square root? rms_norm is x / sqrt(mean(x^2) + eps) * weight"
WRONG_LAYER = "used the weights of another block? block number `layer` reads the params blocks.{layer}.*"
GRADIENT_HINT = (
    "the forward pass is right but a gradient is not: build everything from differentiable tensor operations "
    "on the given tensors (no .detach(), torch.no_grad(), .item(), .numpy(), or in-place writes into them)"
)

# float32 results against the float64 oracle (the lesson says 1e-4), float64 results to 1e-9
F32 = {"rtol": 1e-4, "atol": 1e-4}
F64 = {"rtol": 1e-9, "atol": 1e-9}
EPS = 1e-5


# --------------------------------------------------------------------------- the oracle: torch.nn pieces


class Attention(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.q = nn.Linear(C, C, bias=False)
        self.k = nn.Linear(C, C, bias=False)
        self.v = nn.Linear(C, C, bias=False)
        self.o = nn.Linear(C, C, bias=False)


class FFN(nn.Module):
    def __init__(self, C, d_ff):
        super().__init__()
        self.gate = nn.Linear(C, d_ff, bias=False)
        self.up = nn.Linear(C, d_ff, bias=False)
        self.down = nn.Linear(d_ff, C, bias=False)


class Block(nn.Module):
    def __init__(self, C, d_ff, eps):
        super().__init__()
        self.attn_norm = nn.RMSNorm(C, eps=eps)
        self.attn = Attention(C)
        self.ffn_norm = nn.RMSNorm(C, eps=eps)
        self.ffn = FFN(C, d_ff)


class GPT(nn.Module):
    """The model of the lesson; its state_dict() names are the names of `params`."""

    def __init__(self, V, C, d_ff, max_t, n_layers, eps):
        super().__init__()
        self.wte = nn.Parameter(torch.empty(V, C))
        self.wpe = nn.Parameter(torch.empty(max_t, C))
        self.blocks = nn.ModuleList(Block(C, d_ff, eps) for _ in range(n_layers))
        self.final_norm = nn.RMSNorm(C, eps=eps)


def build(params, config, dtype=torch.float64):
    """The oracle model holding `params`, in `dtype`."""
    V, C = params["wte"].shape
    L = config["n_layers"]
    d_ff = params["blocks.0.ffn.up.weight"].shape[0] if L else 1
    model = GPT(V, C, d_ff, params["wpe"].shape[0], L, config["eps"])
    model.to(dtype).load_state_dict({k: v.detach() for k, v in params.items()})  # float64 holds them exactly
    return model


def attention(attn, x, n_heads, *, causal=True, scale="d_head", split="transpose"):
    """Multi-head causal self-attention from nn.Linear and F.scaled_dot_product_attention, or one of
    the likely mistakes."""
    B, T, C = x.shape
    d_head = C // n_heads

    def heads(t):
        if split == "view":
            return t.reshape(B, n_heads, T, d_head)
        return t.view(B, T, n_heads, d_head).transpose(1, 2)

    q, k, v = heads(attn.q(x)), heads(attn.k(x)), heads(attn.v(x))
    s = {"d_head": 1 / math.sqrt(d_head), "d_model": 1 / math.sqrt(C), "none": 1.0}[scale]
    y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=s)
    y = y.reshape(B, T, C) if split == "view" else y.transpose(1, 2).reshape(B, T, C)
    return attn.o(y)


def ffn(f, x, *, act="gate"):
    if act == "up":
        return f.down(F.silu(f.up(x)) * f.gate(x))
    if act == "product":
        return f.down(F.silu(f.gate(x) * f.up(x)))
    return f.down(F.silu(f.gate(x)) * f.up(x))


def block(b, x, n_heads, *, norm="pre", act="gate", **attn_kw):
    if norm == "post":
        x = b.attn_norm(x + attention(b.attn, x, n_heads, **attn_kw))
        return b.ffn_norm(x + ffn(b.ffn, x, act=act))
    if norm == "normed_residual":
        h = b.attn_norm(x)
        x = h + attention(b.attn, h, n_heads, **attn_kw)
        h = b.ffn_norm(x)
        return h + ffn(b.ffn, h, act=act)
    x = x + attention(b.attn, b.attn_norm(x), n_heads, **attn_kw)
    return x + ffn(b.ffn, b.ffn_norm(x), act=act)


class EpsOutsideNorm(nn.Module):
    """The likely mistake: x / (sqrt(mean(x^2)) + eps) * weight."""

    def __init__(self, norm):
        super().__init__()
        self.weight, self.eps = norm.weight, norm.eps

    def forward(self, x):
        return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + self.eps) * self.weight


def with_eps_outside(model):
    model = copy.deepcopy(model)
    for b in model.blocks:
        b.attn_norm, b.ffn_norm = EpsOutsideNorm(b.attn_norm), EpsOutsideNorm(b.ffn_norm)
    model.final_norm = EpsOutsideNorm(model.final_norm)
    return model


def forward(model, tokens, n_heads, *, final_norm=True, positions=True, eps="inside", **kw):
    if eps == "outside":
        model = with_eps_outside(model)
    x = F.embedding(tokens, model.wte)
    if positions:
        x = x + model.wpe[: tokens.shape[-1]]
    for b in model.blocks:
        x = block(b, x, n_heads, **kw)
    if final_norm:
        x = model.final_norm(x)
    return x @ model.wte.T


MISTAKES = {
    POST_NORM: {"norm": "post"},
    NORMED_RESIDUAL: {"norm": "normed_residual"},
    NO_FINAL_NORM: {"final_norm": False},
    NO_POSITIONS: {"positions": False},
    NOT_CAUSAL: {"causal": False},
    SCALE_D_MODEL: {"scale": "d_model"},
    NO_SCALE: {"scale": "none"},
    HEADS_VIEW: {"split": "view"},
    GATE_UP_SWAPPED: {"act": "up"},
    SILU_OF_PRODUCT: {"act": "product"},
    EPS_OUTSIDE: {"eps": "outside"},
}
BLOCK_MISTAKES = [k for k in MISTAKES if k not in (NO_FINAL_NORM, NO_POSITIONS, EPS_OUTSIDE)]
ATTENTION_MISTAKES = [NOT_CAUSAL, SCALE_D_MODEL, NO_SCALE, HEADS_VIEW]


@torch.no_grad()
def logits_of(params, config, tokens, dtype=torch.float32, **mistake):
    """The oracle's logits (or a mistake's), computed in float64 and cast to `dtype`."""
    return forward(build(params, config), tokens, config["n_heads"], **mistake).to(dtype)


def gpt_mistakes(params, config, tokens, dtype=torch.float32):
    return {label: logits_of(params, config, tokens, dtype, **kw) for label, kw in MISTAKES.items()}


def assert_matches(actual, expected, *, mistakes, what="the output", rtol, atol):
    """assert_close with the likely mistakes named, computed only when the output is wrong (each
    costs a forward pass of the oracle)."""
    if compare(actual, expected, rtol=rtol, atol=atol) is None:
        return
    assert_close(actual, expected, what=what, rtol=rtol, atol=atol, misconceptions=mistakes())


# --------------------------------------------------------------------------- inputs


def randn(rng, *shape, scale=1.0, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape) * scale).to(dtype)


def make_params(rng, *, V=32, C=16, d_ff=40, max_t=12, n_layers=2, dtype=torch.float32):
    """Random weights at the scale of a trained model: unit activations, gains around 1."""
    params = {"wte": randn(rng, V, C, dtype=dtype), "wpe": randn(rng, max_t, C, scale=0.5, dtype=dtype)}
    for layer in range(n_layers):
        p = f"blocks.{layer}."
        params[p + "attn_norm.weight"] = 1.0 + randn(rng, C, scale=0.3, dtype=dtype)
        for name in "qkvo":
            params[p + f"attn.{name}.weight"] = randn(rng, C, C, scale=C**-0.5, dtype=dtype)
        params[p + "ffn_norm.weight"] = 1.0 + randn(rng, C, scale=0.3, dtype=dtype)
        params[p + "ffn.gate.weight"] = randn(rng, d_ff, C, scale=C**-0.5, dtype=dtype)
        params[p + "ffn.up.weight"] = randn(rng, d_ff, C, scale=C**-0.5, dtype=dtype)
        params[p + "ffn.down.weight"] = randn(rng, C, d_ff, scale=d_ff**-0.5, dtype=dtype)
    params["final_norm.weight"] = 1.0 + randn(rng, C, scale=0.3, dtype=dtype)
    return params


def make_tokens(rng, B, T, V=32):
    return torch.from_numpy(rng.integers(0, V, size=(B, T))).long()


def config(n_layers=2, n_heads=2, eps=EPS):
    return {"n_layers": n_layers, "n_heads": n_heads, "eps": eps}


def attention_weights(rng, C):
    return [randn(rng, C, C, scale=C**-0.5) for _ in range(4)]


def linears(**weights):
    """nn.Linear-layout weights as the layers they stand for (y = F.linear(x, w) = x @ w.T), in
    float64 and differentiable with respect to the given tensors."""
    return SimpleNamespace(**{name: partial(F.linear, weight=w.double()) for name, w in weights.items()})


def attention64(x, wq, wk, wv, wo, n_heads, **kw):
    """The oracle's attention of float32 inputs, computed in float64 and returned in float32."""
    return attention(linears(q=wq, k=wk, v=wv, o=wo), x.double(), n_heads, **kw).float()


def swiglu64(x, w_gate, w_up, w_down, act="gate"):
    """The oracle's SwiGLU MLP of float32 inputs, computed in float64 and returned in float32."""
    return ffn(linears(gate=w_gate, up=w_up, down=w_down), x.double(), act=act).float()


# --------------------------------------------------------------------------- rms_norm and the MLP


@pytest.mark.parametrize("eps", [pytest.param(1e-5, id="eps-1e-5"), pytest.param(1e-2, id="eps-1e-2")])
def test_rms_norm(submission, rng, eps):
    """rms_norm on (B, T, C) activations of mixed scales against torch's F.rms_norm."""
    x = randn(rng, 3, 6, 16) * torch.tensor([1e-2, 0.1, 1.0, 3.0, 10.0, 0.05]).view(1, 6, 1)
    w = 1.0 + randn(rng, 16, scale=0.3)
    expected = F.rms_norm(x.double(), (16,), w.double(), eps).float()
    xd = x.double()
    assert_close(
        submission.rms_norm(x, w, eps),
        expected,
        **F32,
        misconceptions={
            EPS_OUTSIDE: (xd / (xd.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w.double()).float(),
            "eps ignored? it is added to the mean square before the root": F.rms_norm(
                xd, (16,), w.double(), 0.0
            ).float(),
        },
    )


@pytest.mark.parametrize(
    "shape, d_ff",
    [pytest.param((2, 5, 16), 40, id="B2-T5-C16-ff40"), pytest.param((7, 12), 20, id="rows-C12-ff20")],
)
def test_swiglu_ffn(submission, rng, shape, d_ff):
    """swiglu_ffn against nn.Linear layers and F.silu, for (B, T, C) and (N, C) inputs."""
    C = shape[-1]
    x = randn(rng, *shape)
    w = (randn(rng, d_ff, C, scale=C**-0.5), randn(rng, d_ff, C, scale=C**-0.5), randn(rng, C, d_ff))
    with torch.no_grad():
        assert_close(
            submission.swiglu_ffn(x, *w),
            swiglu64(x, *w),
            **F32,
            misconceptions={
                GATE_UP_SWAPPED: swiglu64(x, *w, act="up"),
                SILU_OF_PRODUCT: swiglu64(x, *w, act="product"),
                "GELU instead of SiLU? SwiGLU uses silu(z) = z * sigmoid(z)": (
                    (F.gelu(x.double() @ w[0].double().T) * (x.double() @ w[1].double().T)) @ w[2].double().T
                ).float(),
            },
        )


def test_swiglu_gradients(submission, rng):
    """Backward through swiglu_ffn: the gradients of x and of the three weights."""
    C, d_ff = 12, 28
    x = randn(rng, 2, 5, C).requires_grad_()
    w = [randn(rng, d_ff, C, scale=C**-0.5), randn(rng, d_ff, C, scale=C**-0.5), randn(rng, C, d_ff)]
    w = [t.requires_grad_() for t in w]
    plain = [t.detach() for t in (x, *w)]
    with torch.no_grad():
        assert_close(
            submission.swiglu_ffn(*plain),
            swiglu64(*plain),
            **F32,
            misconceptions={
                GATE_UP_SWAPPED: swiglu64(*plain, act="up"),
                SILU_OF_PRODUCT: swiglu64(*plain, act="product"),
            },
        )
    assert_gradients_close(
        submission.swiglu_ffn,
        swiglu64,
        (x, *w),
        grad_output=randn(rng, 2, 5, C),
        names=("x", "w_gate", "w_up", "w_down"),
        hint=GRADIENT_HINT,
        **F32,
    )


# --------------------------------------------------------------------------- attention


def attention_mistakes(x, weights, n_heads):
    with torch.no_grad():
        return {label: attention64(x, *weights, n_heads, **MISTAKES[label]) for label in ATTENTION_MISTAKES}


@pytest.mark.parametrize(
    "n_heads", [pytest.param(1, id="1-head"), pytest.param(2, id="2-heads"), pytest.param(4, id="4-heads")]
)
def test_attention(submission, seed, n_heads):
    """causal_self_attention on random inputs (C = 16) against torch's attention, for 1, 2 and 4 heads."""

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        x = randn(rng, sizes["batch"], sizes["seq"], 16)
        weights = attention_weights(rng, 16)
        with torch.no_grad():
            expected = attention64(x, *weights, n_heads)
        assert_matches(
            submission.causal_self_attention(x, *weights, n_heads),
            expected,
            **F32,
            mistakes=lambda: attention_mistakes(x, weights, n_heads),
        )

    shrink(check, {"batch": 3, "seq": 9}, seed=seed, budget=30)


def test_attention_is_causal(submission, rng):
    """Changing the inputs after position t leaves the attention outputs at positions 0..t unchanged."""
    x = randn(rng, 2, 10, 16)
    weights = attention_weights(rng, 16)
    assert_causal(
        submission.causal_self_attention,
        [Seq(x, dim=-2), *weights, 4],
        rng=rng,
        rtol=1e-5,
        atol=1e-5,
        what="the attention outputs",
        hint="a position saw the future: query i may attend keys j <= i only, masked with -inf before the "
        "softmax, and each head must keep the positions of its own tokens (view as (B, T, n_heads, "
        "d_head), then transpose)",
    )


def test_attention_gradients(submission, rng):
    """Backward through causal_self_attention: the gradients of x, wq, wk, wv and wo."""
    x = randn(rng, 2, 6, 16).requires_grad_()
    weights = [w.requires_grad_() for w in attention_weights(rng, 16)]
    with torch.no_grad():
        assert_matches(
            submission.causal_self_attention(x.detach(), *[w.detach() for w in weights], 2),
            attention64(x.detach(), *[w.detach() for w in weights], 2),
            **F32,
            mistakes=lambda: attention_mistakes(x.detach(), [w.detach() for w in weights], 2),
        )
    assert_gradients_close(
        submission.causal_self_attention,
        attention64,
        (x, *weights, 2),
        grad_output=randn(rng, 2, 6, 16),
        names=("x", "wq", "wk", "wv", "wo"),
        hint=GRADIENT_HINT,
        **F32,
    )


# --------------------------------------------------------------------------- the block


def block64(x, params, layer, cfg, **mistake):
    """The oracle's block `layer`, float32 in and out, computed in float64 (differentiable in x)."""
    model = build(params, cfg)
    return block(model.blocks[layer], x.double(), cfg["n_heads"], **mistake).float()


def block_mistakes(x, params, layer, cfg):
    with torch.no_grad():
        found = {label: block64(x, params, layer, cfg, **MISTAKES[label]) for label in BLOCK_MISTAKES}
        other = 1 - layer if cfg["n_layers"] == 2 else None
        if other is not None:
            found[WRONG_LAYER] = block64(x, params, other, cfg)
    return found


@pytest.mark.parametrize(
    "layer, n_heads",
    [
        pytest.param(0, 2, id="block-0-2-heads"),
        pytest.param(1, 4, id="block-1-4-heads"),
        pytest.param(1, 1, id="block-1-1-head"),
    ],
)
def test_block(submission, rng, layer, n_heads):
    """transformer_block against the oracle's block, on a stream of large activations as in deep layers."""
    params = make_params(rng, n_layers=2)
    cfg = config(n_layers=2, n_heads=n_heads)
    x = randn(rng, 2, 7, 16, scale=4.0)
    with torch.no_grad():
        expected = block64(x, params, layer, cfg)
    assert_matches(
        submission.transformer_block(x, params, layer, cfg),
        expected,
        **F32,
        mistakes=lambda: block_mistakes(x, params, layer, cfg),
    )


def test_block_leaves_x_unchanged(submission, rng):
    """transformer_block returns a new tensor and leaves x (and params) as they were."""
    params = make_params(rng, n_layers=1)
    cfg = config(n_layers=1)
    x = randn(rng, 2, 5, 16)
    got = call_unchanged(
        submission.transformer_block,
        x,
        params,
        0,
        cfg,
        names=("x", "params", "layer", "config"),
        what="transformer_block",
        hint="x = x + attn(...) makes a new tensor; x += attn(...) writes into the caller's x",
    )
    with torch.no_grad():
        assert_matches(
            got, block64(x, params, 0, cfg), **F32, mistakes=lambda: block_mistakes(x, params, 0, cfg)
        )


def test_block_gradients(submission, rng):
    """Backward through transformer_block: the gradient of its input x."""
    params = make_params(rng, n_layers=2)
    cfg = config(n_layers=2, n_heads=2)
    x = randn(rng, 2, 6, 16, scale=2.0).requires_grad_()
    with torch.no_grad():
        assert_matches(
            submission.transformer_block(x.detach(), params, 1, cfg),
            block64(x.detach(), params, 1, cfg),
            **F32,
            mistakes=lambda: block_mistakes(x.detach(), params, 1, cfg),
        )
    assert_gradients_close(
        submission.transformer_block,
        block64,
        (x, params, 1, cfg),
        grad_output=randn(rng, 2, 6, 16),
        names=("x",),
        hint=GRADIENT_HINT,
        **F32,
    )


# --------------------------------------------------------------------------- gpt_forward


@pytest.mark.parametrize(
    "n_heads", [pytest.param(1, id="1-head"), pytest.param(2, id="2-heads"), pytest.param(4, id="4-heads")]
)
def test_gpt_forward(submission, seed, n_heads):
    """gpt_forward on random models (0 to 3 layers) and tokens against the model built from torch.nn."""

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        params = make_params(rng, n_layers=sizes["layers"])
        cfg = config(n_layers=sizes["layers"], n_heads=n_heads)
        tokens = make_tokens(rng, sizes["batch"], sizes["seq"])
        assert_matches(
            submission.gpt_forward(tokens, params, cfg),
            logits_of(params, cfg, tokens),
            what="the logits",
            **F32,
            mistakes=lambda: gpt_mistakes(params, cfg, tokens),
        )

    shrink(
        check,
        {"batch": 2, "seq": 9, "layers": 3},
        seed=seed,
        minimum={"batch": 1, "seq": 1, "layers": 0},
        budget=30,
    )


@pytest.mark.parametrize("n_layers", [pytest.param(0, id="no-blocks"), pytest.param(1, id="one-block")])
def test_gpt_forward_small_models(submission, rng, n_layers):
    """Models without blocks and with one block, a width of 24 and 3 heads, a vocabulary of 50."""
    params = make_params(rng, V=50, C=24, d_ff=64, max_t=16, n_layers=n_layers)
    cfg = config(n_layers=n_layers, n_heads=3, eps=1e-6)
    tokens = make_tokens(rng, 3, 11, V=50)
    assert_matches(
        submission.gpt_forward(tokens, params, cfg),
        logits_of(params, cfg, tokens),
        what="the logits",
        **F32,
        mistakes=lambda: gpt_mistakes(params, cfg, tokens),
    )


def test_gpt_forward_float64(submission, rng):
    """float64 parameters give float64 logits, equal to the oracle's to 1e-9."""
    params = make_params(rng, n_layers=2, dtype=torch.float64)
    cfg = config(n_layers=2, n_heads=4)
    tokens = make_tokens(rng, 2, 8)
    got = submission.gpt_forward(tokens, params, cfg)
    expect(
        isinstance(got, torch.Tensor) and got.dtype == torch.float64,
        "with float64 parameters the logits must be float64",
        hint="compute in the parameters' dtype: no .float() or float32 tensors created along the way",
    )
    assert_matches(
        got,
        logits_of(params, cfg, tokens, torch.float64),
        what="the logits",
        **F64,
        mistakes=lambda: gpt_mistakes(params, cfg, tokens, torch.float64),
    )


def test_gpt_is_causal(submission, rng):
    """Changing the tokens after position t leaves the logits at positions 0..t unchanged."""
    params = make_params(rng, n_layers=2)
    cfg = config(n_layers=2, n_heads=4)
    tokens = make_tokens(rng, 2, 10)
    before = submission.gpt_forward(tokens, params, cfg)
    for t in (0, 3, 7):
        changed = tokens.clone()
        changed[:, t + 1 :] = make_tokens(rng, 2, 10 - t - 1)
        after = submission.gpt_forward(changed, params, cfg)
        assert_close(
            after[:, : t + 1],
            before[:, : t + 1],
            what="the logits of the positions before the tokens that changed",
            rtol=1e-5,
            atol=1e-5,
            hint="a position saw a later token: query i may attend keys j <= i only, and each head must "
            "keep the positions of its own tokens (view as (B, T, n_heads, d_head), then transpose)",
        )


def test_gpt_sequences_are_independent(submission, rng):
    """Each sequence of a batch gets the logits it gets alone."""
    params = make_params(rng, n_layers=2)
    cfg = config(n_layers=2, n_heads=2)
    tokens = make_tokens(rng, 3, 6)
    batch = submission.gpt_forward(tokens, params, cfg)
    alone = submission.gpt_forward(tokens[1:2], params, cfg)
    assert_close(
        alone,
        batch[1:2],
        what="the logits of sequence 1 computed alone",
        rtol=1e-5,
        atol=1e-5,
        hint="nothing may mix the sequences of a batch: the norms work on the last dim, attention within "
        "each sequence",
    )


def test_gpt_sequence_length_limit(submission, rng):
    """T = max_seq_len works (wpe has 12 rows and 12 tokens use them all); T = 13 raises ValueError."""
    params = make_params(rng, n_layers=1, max_t=12)
    cfg = config(n_layers=1, n_heads=2)
    tokens = make_tokens(rng, 2, 12)
    assert_matches(
        submission.gpt_forward(tokens, params, cfg),
        logits_of(params, cfg, tokens),
        what="the logits of 12 tokens (as many as wpe has rows)",
        **F32,
        mistakes=lambda: gpt_mistakes(params, cfg, tokens),
    )
    try:
        submission.gpt_forward(make_tokens(rng, 2, 13), params, cfg)
    except ValueError:
        return
    pytest.fail(
        "gpt_forward on 13 tokens with 12 position embeddings returned normally; it must raise ValueError"
    )


def test_gpt_leaves_inputs_unchanged(submission, rng):
    """gpt_forward leaves tokens and params as they were."""
    params = make_params(rng, n_layers=2)
    cfg = config(n_layers=2, n_heads=2)
    tokens = make_tokens(rng, 2, 7)
    got = call_unchanged(
        submission.gpt_forward,
        tokens,
        params,
        cfg,
        names=("tokens", "params", "config"),
        what="gpt_forward",
        hint="compute new tensors (x = x + ...), never write into the parameters or the tokens",
    )
    assert_matches(
        got,
        logits_of(params, cfg, tokens),
        what="the logits",
        **F32,
        mistakes=lambda: gpt_mistakes(params, cfg, tokens),
    )


def test_gpt_gradients(submission, rng):
    """The gradient of a loss of the logits with respect to every parameter equals torch.nn's."""
    # in float64: a forward pass that is only nearly right (eps outside the root) fails here, with
    # its own hint, instead of showing up as gradients that differ
    params = make_params(rng, n_layers=2, dtype=torch.float64)
    cfg = config(n_layers=2, n_heads=2)
    tokens = make_tokens(rng, 2, 7)
    g = randn(rng, 2, 7, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = logits_of(params, cfg, tokens, torch.float64)
    assert_matches(
        submission.gpt_forward(tokens, params, cfg),
        expected,
        what="the logits",
        **F64,
        mistakes=lambda: gpt_mistakes(params, cfg, tokens, torch.float64),
    )
    # gpt_forward takes its parameters in a dict, and a remote backward reports the gradients of
    # top-level tensor arguments only: keep each parameter in the runner, pass the handles in the
    # dict, and read each `.grad` back
    kept = {
        name: kept_in_runner(submission.gpt_forward, t.clone().requires_grad_()) for name, t in params.items()
    }
    found = submission.gpt_forward.backward(tokens, kept, cfg, grad_output=g)
    assert_close(found.output, expected, what="the logits", **F64)

    model = build(params, cfg)
    forward(model, tokens, cfg["n_heads"]).backward(g)
    for name, p in model.named_parameters():
        got = kept[name].attr("grad")
        expect(
            isinstance(got, torch.Tensor),
            f"the parameter {name} got no gradient from the logits",
            hint=GRADIENT_HINT,
        )
        assert_close(got, p.grad, what=f"the gradient of {name}", rtol=1e-7, atol=1e-9, hint=GRADIENT_HINT)
