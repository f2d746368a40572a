"""Public tests: the worked examples of the lesson, and the shapes of a small model.

Run them with `grader test transformer-block gpt.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect

I2 = torch.eye(2)
SWAP = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
CONFIG = {"n_layers": 2, "n_heads": 2, "eps": 1e-5}
V, C, D_FF, MAX_T = 32, 16, 40, 8

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
DIAGONAL = "diagonal excluded? query i may attend its own key (j <= i, not j < i)"
GATE_UP_SWAPPED = (
    "silu on the wrong branch? SwiGLU is down(silu(gate(x)) * up(x)): silu on the gate projection"
)
SILENT_SUBLAYERS = (
    "pre-norm: x = x + attn(rms_norm(x)), then x = x + ffn(rms_norm(x)). The residual stream x itself is "
    "never normalised, so sublayers that output zeros leave it as it was"
)
SILU_OF_PRODUCT = "silu of the product? only the gate branch goes through silu, then it multiplies up(x)"


def small_model(seed=0, n_layers=2):
    """Random parameters of a model with V = 32, C = 16, d_ff = 40 and 8 positions."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    params = {"wte": randn(V, C), "wpe": randn(MAX_T, C, scale=0.5)}
    for layer in range(n_layers):
        p = f"blocks.{layer}."
        params[p + "attn_norm.weight"] = 1.0 + randn(C, scale=0.2)
        for name in "qkvo":
            params[p + f"attn.{name}.weight"] = randn(C, C, scale=C**-0.5)
        params[p + "ffn_norm.weight"] = 1.0 + randn(C, scale=0.2)
        params[p + "ffn.gate.weight"] = randn(D_FF, C, scale=C**-0.5)
        params[p + "ffn.up.weight"] = randn(D_FF, C, scale=C**-0.5)
        params[p + "ffn.down.weight"] = randn(C, D_FF, scale=D_FF**-0.5)
    params["final_norm.weight"] = 1.0 + randn(C, scale=0.2)
    return params


def test_rms_norm_example(submission):
    """x = [3, 4]: mean(x^2) = 12.5, so x / sqrt(12.5) = [0.848528, 1.131371]; times [1, 2]."""
    assert_close(
        submission.rms_norm(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0]), 0.0),
        torch.tensor([0.848528, 2.262742]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_swiglu_by_hand(submission):
    """The lesson's example: x = [1, -1] gives down(silu([1, -1]) * [2, 3]) = [1.462117, -0.806824]."""
    x = torch.tensor([[1.0, -1.0]])
    w_up = torch.tensor([[2.0, 0.0], [0.0, -3.0]])
    assert_close(
        submission.swiglu_ffn(x, I2, w_up, I2),
        torch.tensor([[1.462117, -0.806824]]),
        rtol=1e-5,
        atol=1e-6,
        misconceptions={
            GATE_UP_SWAPPED: torch.tensor([[1.761594, -2.857722]]),
            SILU_OF_PRODUCT: torch.tensor([[1.761594, -0.142278]]),
        },
    )


def test_attention_two_tokens_by_hand(submission):
    """One head, identity weights, x = [[1, 0], [0, 1]]: token 0 sees itself only; token 1 weighs
    the two tokens softmax([0, 1 / sqrt(2)]) = [0.330238, 0.669762]."""
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert_close(
        submission.causal_self_attention(x, I2, I2, I2, I2, 1),
        torch.tensor([[[1.0, 0.0], [0.330238, 0.669762]]]),
        rtol=1e-5,
        atol=1e-6,
        misconceptions={
            NOT_CAUSAL: torch.tensor([[[0.669762, 0.330238], [0.330238, 0.669762]]]),
            NO_SCALE: torch.tensor([[[1.0, 0.0], [0.268941, 0.731059]]]),
            DIAGONAL: torch.tensor([[[0.0, 0.0], [1.0, 0.0]]]),
        },
    )


def test_attention_one_token_two_heads(submission):
    """With a single token every head attends only to it: the output is x @ wv.T @ wo.T."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 1, 8, generator=gen)
    wq, wk, wv, wo = (torch.randn(8, 8, generator=gen) / 8**0.5 for _ in range(4))
    assert_close(
        submission.causal_self_attention(x, wq, wk, wv, wo, 2),
        x @ wv.T @ wo.T,
        rtol=1e-5,
        atol=1e-5,
        hint="for one token the softmax has a single weight, 1: the output is wo(wv(x)) whatever q and k",
    )


def test_attention_is_causal(submission):
    """Changing tokens 3 and 4 of x leaves the outputs at positions 0, 1 and 2 unchanged."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 5, 8, generator=gen)
    weights = [torch.randn(8, 8, generator=gen) / 8**0.5 for _ in range(4)]
    before = submission.causal_self_attention(x, *weights, 2)
    changed = x.clone()
    changed[:, 3:] = torch.randn(1, 2, 8, generator=gen) * 3.0
    after = submission.causal_self_attention(changed, *weights, 2)
    assert_close(
        after[:, :3],
        before[:, :3],
        what="the outputs at positions 0..2 after changing positions 3 and 4",
        hint=NOT_CAUSAL,
    )


def test_block_one_token_by_hand(submission):
    """The lesson's block on one token x = [3, 4] (wo swaps the features): [5.596639, 4.848528]."""
    params = {
        "blocks.0.attn_norm.weight": torch.ones(2),
        "blocks.0.attn.q.weight": I2,
        "blocks.0.attn.k.weight": I2,
        "blocks.0.attn.v.weight": I2,
        "blocks.0.attn.o.weight": SWAP,
        "blocks.0.ffn_norm.weight": torch.ones(2),
        "blocks.0.ffn.gate.weight": I2,
        "blocks.0.ffn.up.weight": I2,
        "blocks.0.ffn.down.weight": torch.tensor([[1.0, 1.0], [0.0, 0.0]]),
    }
    got = submission.transformer_block(
        torch.tensor([[[3.0, 4.0]]]), params, 0, {"n_layers": 1, "n_heads": 1, "eps": 0.0}
    )
    assert_close(
        got,
        torch.tensor([[[5.596639, 4.848528]]]),
        rtol=1e-5,
        atol=1e-5,
        misconceptions={
            POST_NORM: torch.tensor([[[1.310265, 0.532170]]]),
            NORMED_RESIDUAL: torch.tensor([[[2.462117, 1.0]]]),
        },
    )


def test_block_with_silent_sublayers_is_the_identity(submission):
    """With wo = 0 and w_down = 0 both sublayers output zeros, so the block returns x unchanged."""
    params = small_model(seed=3, n_layers=1)
    params["blocks.0.attn.o.weight"] = torch.zeros(C, C)
    params["blocks.0.ffn.down.weight"] = torch.zeros(C, D_FF)
    x = torch.randn(2, 5, C, generator=torch.Generator().manual_seed(4)) * 3.0
    assert_close(
        submission.transformer_block(x, params, 0, CONFIG),
        x,
        hint=SILENT_SUBLAYERS,
    )


def test_gpt_without_blocks_by_hand(submission):
    """The lesson's model without blocks: rms_norm(wte[tokens] + wpe[:T]) * final_norm @ wte.T."""
    params = {
        "wte": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        "wpe": torch.tensor([[0.0, 0.0], [-4.0, 0.0], [0.0, 5.0]]),
        "final_norm.weight": torch.tensor([1.0, 2.0]),
    }
    s = math.sqrt(2)
    assert_close(
        submission.gpt_forward(torch.tensor([[2, 0]]), params, {"n_layers": 0, "n_heads": 1, "eps": 0.0}),
        torch.tensor([[[1.0, 2.0, 3.0], [-s, 0.0, -s]]]),
        rtol=1e-5,
        atol=1e-5,
        misconceptions={
            NO_FINAL_NORM: torch.tensor([[[1.0, 1.0, 2.0], [-3.0, 0.0, -3.0]]]),
            NO_POSITIONS: torch.tensor([[[1.0, 2.0, 3.0], [s, 0.0, s]]]),
        },
    )


def test_gpt_shapes(submission):
    """A random model (V = 32, C = 16, 2 heads, 2 layers) on 2 sequences of 5 tokens: logits (2, 5, 32)."""
    tokens = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(5))
    out = submission.gpt_forward(tokens, small_model(), CONFIG)
    expect(isinstance(out, torch.Tensor), "gpt_forward must return a torch.Tensor")
    expect(
        tuple(out.shape) == (2, 5, V),
        f"the logits have shape {tuple(out.shape)}; expected (2, 5, 32) = (B, T, V)",
        hint="the tied head is h @ wte.T: (B, T, C) @ (C, V)",
    )
    expect(out.dtype == torch.float32, f"the logits have dtype {out.dtype}; expected torch.float32")
    expect(bool(torch.isfinite(out).all()), "the logits have inf or NaN values")


@pytest.mark.parametrize("T", [pytest.param(9, id="one-too-many"), pytest.param(20, id="far-too-many")])
def test_too_many_tokens_raises(submission, T):
    """wpe has rows for 8 positions: 9 or more tokens raise ValueError."""
    with pytest.raises(ValueError):
        submission.gpt_forward(torch.zeros(1, T, dtype=torch.long), small_model(), CONFIG)
