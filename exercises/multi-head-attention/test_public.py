"""Public tests: the worked example of the README, the parameter names, shapes, and one head
against torch's own attention layer.

Run them with `grader test multi-head-attention mha.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect

NAMES = [f"{proj}.{kind}" for proj in ("q_proj", "k_proj", "v_proj", "o_proj") for kind in ("weight", "bias")]
NAMES_HINT = (
    "four nn.Linear(d_model, d_model) layers with bias, as attributes q_proj, k_proj, v_proj and o_proj, "
    "and no other parameter or persistent buffer"
)

RESHAPE_BOTH = (
    "heads split and merged with plain reshapes? Split: view as (B, T, n_heads, d_head), then "
    "transpose(1, 2); merge: transpose(1, 2) back, then reshape to (B, T, d_model)"
)
RESHAPE_SPLIT = (
    "heads split with a plain reshape (B, T, d_model) -> (B, n_heads, T, d_head)? View as "
    "(B, T, n_heads, d_head), then transpose(1, 2)"
)
MERGE_NO_TRANSPOSE = (
    "heads merged without transposing back? transpose(1, 2) to (B, T, n_heads, d_head), then reshape "
    "to (B, T, d_model)"
)
MERGE_DHEAD_MAJOR = (
    "heads merged in the order (d_head, n_heads)? Head h's outputs are features h * d_head to "
    "(h + 1) * d_head - 1"
)
SCALE_D_MODEL = "scaled by 1/sqrt(d_model)? The scale is 1/sqrt(d_head), the width of one head"
SOFTMAX_QUERIES = "softmax over the query axis? Each query's weights over the keys must sum to 1"
CAUSAL_WHEN_FALSE = "applied the causal mask though causal is False?"
CAUSAL_IGNORED = "causal=True ignored? Position i may attend positions j <= i only"
MASK_AFTER_SOFTMAX = (
    "causal mask applied after the softmax? Masked scores must be -inf before it, so that the "
    "remaining weights sum to 1"
)

# the README's worked example: d_model = 8, n_heads = 2, identity weights, zero biases
X = torch.tensor([[[1.0, 1, 0, 0, 2, 0, 0, 0], [0, 1, 1, 1, 0, 0, 2, 2]]])
OUT = torch.tensor(
    [
        [
            [0.6225, 1.0, 0.3775, 0.3775, 1.7616, 0.0, 0.2384, 0.2384],
            [0.2689, 1.0, 0.7311, 0.7311, 0.0360, 0.0, 1.9640, 1.9640],
        ]
    ]
)
OUT_CAUSAL = torch.tensor(
    [[[1.0, 1, 0, 0, 2, 0, 0, 0], [0.2689, 1.0, 0.7311, 0.7311, 0.0360, 0.0, 1.9640, 1.9640]]]
)
ROUNDED = {"rtol": 0.0, "atol": 1e-4}  # the expected values are rounded to 4 decimals


def identity_state(d_model):
    """Every weight the identity, every bias zero."""
    return {name: torch.eye(d_model) if name.endswith("weight") else torch.zeros(d_model) for name in NAMES}


def build(submission, d_model, n_heads, state):
    """The learner's module with `state` loaded into it (strict)."""
    layer = submission.MultiHeadAttention(d_model, n_heads)
    found = layer.call("state_dict")
    expect(
        isinstance(found, dict) and set(found) == set(NAMES),
        "the module's state dict must hold exactly q_proj.weight, q_proj.bias, k_proj.weight, "
        "k_proj.bias, v_proj.weight, v_proj.bias, o_proj.weight and o_proj.bias",
        detail=f"its state dict holds {sorted(map(str, found)) if isinstance(found, dict) else found!r}",
        hint=NAMES_HINT,
    )
    layer.call("load_state_dict", state)
    return layer


def test_worked_example(submission):
    """The README's example: d_model = 8, two heads of 4 features, identity weights, T = 2."""
    layer = build(submission, 8, 2, identity_state(8))
    assert_close(
        layer(X),
        OUT,
        **ROUNDED,
        misconceptions={
            RESHAPE_BOTH: torch.tensor(
                [
                    [
                        [1.5, 0.5, 0.0, 0.0, 1.7311, 0.2689, 0.0, 0.0],
                        [0.0, 0.3775, 1.6225, 1.6225, 0.0, 0.1192, 1.8808, 1.8808],
                    ]
                ]
            ),
            RESHAPE_SPLIT: torch.tensor(
                [
                    [
                        [1.5, 0.5, 0.0, 0.0, 0.0, 0.3775, 1.6225, 1.6225],
                        [1.7311, 0.2689, 0.0, 0.0, 0.0, 0.1192, 1.8808, 1.8808],
                    ]
                ]
            ),
            MERGE_NO_TRANSPOSE: torch.tensor(
                [
                    [
                        [0.6225, 1.0, 0.3775, 0.3775, 0.2689, 1.0, 0.7311, 0.7311],
                        [1.7616, 0.0, 0.2384, 0.2384, 0.0360, 0.0, 1.9640, 1.9640],
                    ]
                ]
            ),
            MERGE_DHEAD_MAJOR: torch.tensor(
                [
                    [
                        [0.6225, 1.7616, 1.0, 0.0, 0.3775, 0.2384, 0.3775, 0.2384],
                        [0.2689, 0.0360, 1.0, 0.0, 0.7311, 1.9640, 0.7311, 1.9640],
                    ]
                ]
            ),
            SCALE_D_MODEL: torch.tensor(
                [
                    [
                        [0.5875, 1.0, 0.4125, 0.4125, 1.6089, 0.0, 0.3911, 0.3911],
                        [0.3302, 1.0, 0.6698, 0.6698, 0.1116, 0.0, 1.8884, 1.8884],
                    ]
                ]
            ),
            SOFTMAX_QUERIES: torch.tensor(
                [
                    [
                        [0.6225, 0.8914, 0.2689, 0.2689, 1.7616, 0.0, 0.0360, 0.0360],
                        [0.3775, 1.1086, 0.7311, 0.7311, 0.2384, 0.0, 1.9640, 1.9640],
                    ]
                ]
            ),
            CAUSAL_WHEN_FALSE: OUT_CAUSAL,
        },
    )


def test_worked_example_causal(submission):
    """causal=True: position 0 attends only itself, so its output is its own input row."""
    layer = build(submission, 8, 2, identity_state(8))
    assert_close(
        layer(X, causal=True),
        OUT_CAUSAL,
        **ROUNDED,
        misconceptions={
            CAUSAL_IGNORED: OUT,
            RESHAPE_BOTH: torch.tensor(
                [
                    [
                        [1.0, 1.0, 0.0, 0.0, 1.7311, 0.2689, 0.0, 0.0],
                        [0.0, 1.0, 1.0, 1.0, 0.0, 0.1192, 1.8808, 1.8808],
                    ]
                ]
            ),
            RESHAPE_SPLIT: torch.tensor(
                [
                    [
                        [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0],
                        [1.7311, 0.2689, 0.0, 0.0, 0.0, 0.1192, 1.8808, 1.8808],
                    ]
                ]
            ),
            MERGE_NO_TRANSPOSE: torch.tensor(
                [
                    [
                        [1.0, 1.0, 0.0, 0.0, 0.2689, 1.0, 0.7311, 0.7311],
                        [2.0, 0.0, 0.0, 0.0, 0.0360, 0.0, 1.9640, 1.9640],
                    ]
                ]
            ),
            MERGE_DHEAD_MAJOR: torch.tensor(
                [
                    [
                        [1.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                        [0.2689, 0.0360, 1.0, 0.0, 0.7311, 1.9640, 0.7311, 1.9640],
                    ]
                ]
            ),
            SCALE_D_MODEL: torch.tensor(
                [
                    [
                        [1.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0],
                        [0.3302, 1.0, 0.6698, 0.6698, 0.1116, 0.0, 1.8884, 1.8884],
                    ]
                ]
            ),
            MASK_AFTER_SOFTMAX: torch.tensor(
                [
                    [
                        [0.6225, 0.6225, 0.0, 0.0, 1.7616, 0.0, 0.0, 0.0],
                        [0.2689, 1.0, 0.7311, 0.7311, 0.0360, 0.0, 1.9640, 1.9640],
                    ]
                ]
            ),
            SOFTMAX_QUERIES: torch.tensor(
                [
                    [
                        [0.6225, 0.6225, 0.0, 0.0, 1.7616, 0.0, 0.0, 0.0],
                        [0.3775, 1.3775, 1.0, 1.0, 0.2384, 0.0, 2.0, 2.0],
                    ]
                ]
            ),
        },
    )


def test_parameter_names_and_shapes(submission):
    """MultiHeadAttention(12, 3): eight parameters, q/k/v/o_proj weights (12, 12) and biases (12,)."""
    layer = submission.MultiHeadAttention(12, 3)
    found = layer.call("state_dict")
    expect(isinstance(found, dict), "state_dict() did not return a dict", hint=NAMES_HINT)
    expect(
        set(found) == set(NAMES),
        "the state dict must hold exactly q_proj.weight, q_proj.bias, k_proj.weight, k_proj.bias, "
        "v_proj.weight, v_proj.bias, o_proj.weight and o_proj.bias",
        detail=f"its state dict holds {sorted(map(str, found))}",
        hint=NAMES_HINT,
    )
    for name in NAMES:
        want = (12, 12) if name.endswith("weight") else (12,)
        got = tuple(found[name].shape) if isinstance(found[name], torch.Tensor) else found[name]
        expect(got == want, f"{name} has shape {got}; expected {want}", hint=NAMES_HINT)


def test_output_shape_and_dtype(submission):
    """x of shape (2, 5, 12) with 3 heads gives a float32 output of shape (2, 5, 12)."""
    layer = submission.MultiHeadAttention(12, 3)
    out = layer(torch.randn(2, 5, 12))
    expect(isinstance(out, torch.Tensor), "forward must return a torch.Tensor")
    expect(
        tuple(out.shape) == (2, 5, 12),
        f"the output has shape {tuple(out.shape)}; expected (2, 5, 12) = (B, T, d_model)",
        hint="merge the heads back into (B, T, d_model) and apply o_proj",
    )
    expect(out.dtype == torch.float32, f"the output has dtype {out.dtype}; expected torch.float32 (x's)")


@pytest.mark.parametrize(
    "d_model, n_heads",
    [pytest.param(6, 4, id="6-features-4-heads"), pytest.param(8, 0, id="no-heads")],
)
def test_invalid_heads_raise_value_error(submission, d_model, n_heads):
    """n_heads must be positive and divide d_model; otherwise the constructor raises ValueError."""
    with pytest.raises(ValueError):
        submission.MultiHeadAttention(d_model, n_heads)


@pytest.mark.parametrize("causal", [pytest.param(False, id="not-causal"), pytest.param(True, id="causal")])
def test_one_head_matches_torch(submission, causal):
    """One head (no split, no merge) with random weights equals torch's nn.MultiheadAttention."""
    d, t = 6, 4
    state = {
        name: torch.randn(d, d) / math.sqrt(d) if name.endswith("weight") else torch.randn(d) / 4
        for name in NAMES
    }
    x = torch.randn(2, t, d)
    # torch's layer keeps q, k and v's projections stacked in one matrix: the mapping of the README
    torch_mha = torch.nn.MultiheadAttention(d, 1, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        torch_mha.in_proj_weight.copy_(torch.cat([state[f"{p}_proj.weight"] for p in "qkv"]))
        torch_mha.in_proj_bias.copy_(torch.cat([state[f"{p}_proj.bias"] for p in "qkv"]))
        torch_mha.out_proj.weight.copy_(state["o_proj.weight"])
        torch_mha.out_proj.bias.copy_(state["o_proj.bias"])
        x64 = x.double()
        blocked = torch.ones(t, t, dtype=torch.bool).triu(1)  # True = may NOT attend, in torch's layer
        masked, _ = torch_mha(x64, x64, x64, attn_mask=blocked, need_weights=False)
        unmasked, _ = torch_mha(x64, x64, x64, need_weights=False)
    layer = build(submission, d, 1, state)
    got = layer(x, causal=True) if causal else layer(x)
    assert_close(
        got,
        (masked if causal else unmasked).float(),
        what="the output (checked against torch's nn.MultiheadAttention)",
        misconceptions={CAUSAL_IGNORED: unmasked.float()} if causal else {CAUSAL_WHEN_FALSE: masked.float()},
    )
