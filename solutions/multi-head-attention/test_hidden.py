"""Hidden tests for multi-head-attention: random weights loaded by name, outputs against torch's
nn.MultiheadAttention and against F.scaled_dot_product_attention on heads split here, edge shapes,
random shapes with shrinking, gradients of x and of every parameter, causality, dtypes (float16
overflow included), the exact parameter names, invalid head counts, and the input left alone."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # trusted side only: submissions may not call its attention

from grader.testing import (
    Seq,
    assert_causal,
    assert_close,
    call_unchanged,
    compare,
    expect,
    shrink,
    tolerance,
)

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
NAMES = [f"{proj}.{kind}" for proj in PROJECTIONS for kind in ("weight", "bias")]
NAMES_HINT = (
    "four nn.Linear(d_model, d_model) layers with bias, as attributes q_proj, k_proj, v_proj and o_proj, "
    "and no other parameter or persistent buffer"
)
NAMES_MESSAGE = (
    "the module's state dict must hold exactly q_proj.weight, q_proj.bias, k_proj.weight, k_proj.bias, "
    "v_proj.weight, v_proj.bias, o_proj.weight and o_proj.bias"
)

# one wording per mistake, the same as in the public tests
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
NO_SCALE = "forgot the 1/sqrt(d_head) scale?"
SOFTMAX_QUERIES = "softmax over the query axis? Each query's weights over the keys must sum to 1"
CAUSAL_WHEN_FALSE = "applied the causal mask though causal is False?"
CAUSAL_IGNORED = "causal=True ignored? Position i may attend positions j <= i only"
MASK_AFTER_SOFTMAX = (
    "causal mask applied after the softmax? Masked scores must be -inf before it, so that the "
    "remaining weights sum to 1"
)
DIAGONAL_EXCLUDED = "diagonal excluded? Position i may attend itself: j <= i, not j < i"
NO_OUTPUT_PROJECTION = "o_proj not applied? The merged heads go through the output projection"
RETURNED_FLOAT32 = "returned float32? The output must have x's dtype"
GRADIENT_HINT = (
    "the output is right but a gradient is not: use differentiable tensor operations only (no .item(), "
    ".numpy(), .detach(), .data or in-place writes on tensors autograd needs)"
)
FLOAT64_HINT = "a float64 module keeps float64's precision: no detour through float32"
HALF_HINT = (
    "run the projections in the module's dtype; for float16 and bfloat16, compute the scores, the softmax "
    "and the weighted sum in float32, and cast the merged heads back to x's dtype before o_proj"
)


def randn(rng, *shape, scale=1.0):
    return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))


def random_state(rng, d_model):
    """Trained-looking weights (d_model, d_model) and biases (d_model,) for the four projections."""
    state = {}
    for proj in PROJECTIONS:
        state[f"{proj}.weight"] = randn(rng, d_model, d_model, scale=1 / math.sqrt(d_model))
        state[f"{proj}.bias"] = randn(rng, d_model, scale=0.1)
    return state


def torch_mha(state, n_heads):
    """torch's nn.MultiheadAttention in float64 with the same weights: q/k/v stacked into in_proj."""
    d_model = state["q_proj.weight"].shape[0]
    mha = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([state[f"{p}.weight"] for p in PROJECTIONS[:3]]).double())
        mha.in_proj_bias.copy_(torch.cat([state[f"{p}.bias"] for p in PROJECTIONS[:3]]).double())
        mha.out_proj.weight.copy_(state["o_proj.weight"].double())
        mha.out_proj.bias.copy_(state["o_proj.bias"].double())
    return mha


def blocked(t):
    """nn.MultiheadAttention's causal mask: True where position i may NOT attend position j (j > i)."""
    return torch.ones(t, t, dtype=torch.bool).triu(1)


def run_torch(mha, x, causal):
    """Call torch's layer as the module is called: self-attention, optional causal mask."""
    mask = blocked(x.shape[1]) if causal else None
    out, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
    return out


def oracle(state, x, n_heads, causal):
    """torch's nn.MultiheadAttention in float64 on the same inputs, rounded once to x's dtype."""
    with torch.no_grad():
        return run_torch(torch_mha(state, n_heads), x.double(), causal).to(x.dtype)


def sdpa_oracle(state, x, n_heads, causal):
    """Projections, heads split here (view, transpose), torch's F.scaled_dot_product_attention, merge,
    output projection: all in float64, rounded once to x's dtype."""
    b, t, d = x.shape
    s = {k: v.double() for k, v in state.items()}
    x64 = x.double()

    def heads(proj):
        return (
            F.linear(x64, s[f"{proj}.weight"], s[f"{proj}.bias"])
            .view(b, t, n_heads, d // n_heads)
            .transpose(1, 2)
        )

    y = F.scaled_dot_product_attention(heads("q_proj"), heads("k_proj"), heads("v_proj"), is_causal=causal)
    y = y.transpose(1, 2).reshape(b, t, d)
    return F.linear(y, s["o_proj.weight"], s["o_proj.bias"]).to(x.dtype)


def attend(
    state,
    x,
    n_heads,
    causal,
    *,
    split="view",
    scale="d_head",
    merge="transpose",
    mask="before",
    axis=-1,
    diagonal=True,
    out_proj=True,
):
    """The module's forward in float64 with one likely mistake switched on, rounded to x's dtype."""
    b, t, d = x.shape
    dh = d // n_heads
    s = {k: v.double() for k, v in state.items()}
    x64 = x.double()

    def heads(proj):
        p = F.linear(x64, s[f"{proj}.weight"], s[f"{proj}.bias"])
        if split == "reshape":
            return p.reshape(b, n_heads, t, dh)
        return p.view(b, t, n_heads, dh).transpose(1, 2)

    q, k, v = heads("q_proj"), heads("k_proj"), heads("v_proj")
    divisor = {"d_head": math.sqrt(dh), "d_model": math.sqrt(d), "none": 1.0}[scale]
    scores = q @ k.transpose(-2, -1) / divisor
    allowed = torch.ones(t, t, dtype=torch.bool).tril(0 if diagonal else -1)
    if causal and mask == "before":
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=axis)
    if causal and mask == "after":
        weights = weights * allowed
    y = weights @ v  # (B, h, T, dh)
    if merge == "transpose":
        y = y.transpose(1, 2).reshape(b, t, d)
    elif merge == "none":
        y = y.reshape(b, t, d)
    else:  # (d_head, n_heads) order
        y = y.permute(0, 2, 3, 1).reshape(b, t, d)
    if out_proj:
        y = F.linear(y, s["o_proj.weight"], s["o_proj.bias"])
    return y.to(x.dtype)


def mistakes(state, x, n_heads, causal):
    """The outputs of the likely mistakes for this call, to name the one a submission made."""
    found = {
        RESHAPE_BOTH: attend(state, x, n_heads, causal, split="reshape", merge="none"),
        RESHAPE_SPLIT: attend(state, x, n_heads, causal, split="reshape"),
        MERGE_NO_TRANSPOSE: attend(state, x, n_heads, causal, merge="none"),
        MERGE_DHEAD_MAJOR: attend(state, x, n_heads, causal, merge="dh"),
        SCALE_D_MODEL: attend(state, x, n_heads, causal, scale="d_model"),
        NO_SCALE: attend(state, x, n_heads, causal, scale="none"),
        SOFTMAX_QUERIES: attend(state, x, n_heads, causal, axis=-2),
        NO_OUTPUT_PROJECTION: attend(state, x, n_heads, causal, out_proj=False),
    }
    if causal:
        found[CAUSAL_IGNORED] = attend(state, x, n_heads, False)
        found[MASK_AFTER_SOFTMAX] = attend(state, x, n_heads, True, mask="after")
        if x.shape[1] > 1:  # position 0 has no key left: NaN, which matches nothing
            found[DIAGONAL_EXCLUDED] = attend(state, x, n_heads, True, diagonal=False)
    else:
        found[CAUSAL_WHEN_FALSE] = attend(state, x, n_heads, True)
    return found


def check_output(got, expected, state, x, n_heads, causal, *, what="the output", hint="", **tol):
    """assert_close with the likely mistakes as misconceptions, computed only when the output is wrong
    (twelve float64 forward passes: not worth doing for every right answer)."""
    if compare(got, expected, **tol) is None:
        return
    found = mistakes(state, x, n_heads, causal)
    if isinstance(expected, torch.Tensor) and expected.dtype in (torch.float16, torch.bfloat16):
        found[RETURNED_FLOAT32] = expected.float()
    assert_close(got, expected, what=what, hint=hint, misconceptions=found, **tol)


def build(submission, d_model, n_heads, state):
    """The submission's module with `state` loaded into it (strict), after checking its names."""
    layer = submission.MultiHeadAttention(d_model, n_heads)
    found = layer.call("state_dict")
    # the names are the submission's strings: compared here, shown only in the detail
    expect(
        isinstance(found, dict) and set(found) == set(NAMES),
        NAMES_MESSAGE,
        detail=f"its state dict holds {sorted(map(str, found)) if isinstance(found, dict) else '?'}",
        hint=NAMES_HINT,
    )
    for name in NAMES:
        want = (d_model, d_model) if name.endswith("weight") else (d_model,)
        expect(
            isinstance(found[name], torch.Tensor) and tuple(found[name].shape) == want,
            f"{name} does not have the shape of an nn.Linear(d_model, d_model) {name.split('.')[1]}",
            hint=NAMES_HINT,
        )
    layer.call("load_state_dict", state)
    return layer


def forward(layer, x, causal):
    """Call the module as a user would: causal=False is the default, so it is not passed."""
    return layer(x, causal=True) if causal else layer(x)


CAUSAL = [pytest.param(False, id="not-causal"), pytest.param(True, id="causal")]

# ---------------------------------------------------------------------------- names and construction


@pytest.mark.parametrize(
    "d_model, n_heads",
    [
        pytest.param(8, 2, id="8-features-2-heads"),
        pytest.param(6, 1, id="one-head"),
        pytest.param(5, 5, id="heads-of-one"),
    ],
)
def test_parameter_names(submission, d_model, n_heads):
    """The state dict holds exactly the eight pinned entries, with nn.Linear(d_model, d_model) shapes."""
    layer = submission.MultiHeadAttention(d_model, n_heads)
    found = layer.call("state_dict")
    expect(isinstance(found, dict), "state_dict() did not return a dict", hint=NAMES_HINT)
    expect(
        set(found) == set(NAMES),
        NAMES_MESSAGE,
        detail=f"its state dict holds {sorted(map(str, found))}",
        hint=NAMES_HINT,
    )
    for name in NAMES:
        want = (d_model, d_model) if name.endswith("weight") else (d_model,)
        expect(
            isinstance(found[name], torch.Tensor) and tuple(found[name].shape) == want,
            f"{name} does not have the shape of an nn.Linear(d_model, d_model) {name.split('.')[1]}",
            hint=NAMES_HINT,
        )
    trainable = [name for name, _ in layer.call("named_parameters")]
    expect(
        sorted(map(str, trainable)) == sorted(NAMES),
        "the module's parameters must be exactly the eight weights and biases of q_proj, k_proj, v_proj "
        "and o_proj",
        detail=f"its parameters are {sorted(map(str, trainable))}",
        hint=NAMES_HINT,
    )


@pytest.mark.hint(
    "check n_heads first thing in __init__: unless n_heads > 0 and d_model % n_heads == 0, raise ValueError"
)
@pytest.mark.parametrize(
    "d_model, n_heads",
    [
        pytest.param(8, 3, id="8-features-3-heads"),
        pytest.param(4, 8, id="more-heads-than-features"),
        pytest.param(6, 0, id="no-heads"),
        pytest.param(6, -2, id="negative-heads"),
    ],
)
def test_invalid_heads_raise(submission, d_model, n_heads):
    """n_heads must be positive and divide d_model; otherwise ValueError."""
    try:
        submission.MultiHeadAttention(d_model, n_heads)
    except ValueError:
        return
    pytest.fail(f"MultiHeadAttention({d_model}, {n_heads}) did not raise ValueError")


# ---------------------------------------------------------------------------- outputs

SHAPES = [
    pytest.param(2, 7, 16, 4, id="B2-T7-d16-4-heads"),
    pytest.param(1, 9, 32, 8, id="B1-T9-d32-8-heads"),
    pytest.param(3, 5, 12, 1, id="one-head"),
    pytest.param(2, 6, 6, 6, id="heads-of-one-feature"),
    pytest.param(2, 1, 8, 2, id="one-position"),
    pytest.param(1, 1, 4, 4, id="one-position-heads-of-one"),
    pytest.param(2, 11, 24, 3, id="B2-T11-d24-3-heads"),
]


@pytest.mark.parametrize("causal", CAUSAL)
@pytest.mark.parametrize("b, t, d_model, n_heads", SHAPES)
def test_matches_torch_mha(submission, rng, b, t, d_model, n_heads, causal):
    """Random weights and inputs: the output equals torch's nn.MultiheadAttention with the same weights."""
    state = random_state(rng, d_model)
    x = randn(rng, b, t, d_model)
    layer = build(submission, d_model, n_heads, state)
    check_output(
        forward(layer, x, causal),
        oracle(state, x, n_heads, causal),
        state,
        x,
        n_heads,
        causal,
        what="the output (checked against torch's nn.MultiheadAttention)",
    )


@pytest.mark.parametrize("causal", CAUSAL)
def test_matches_sdpa_on_split_heads(submission, rng, causal):
    """The output equals torch's F.scaled_dot_product_attention on heads split by view and transpose."""
    state = random_state(rng, 20)
    x = randn(rng, 2, 8, 20)
    layer = build(submission, 20, 5, state)
    check_output(
        forward(layer, x, causal),
        sdpa_oracle(state, x, 5, causal),
        state,
        x,
        5,
        causal,
        what="the output (checked against torch's F.scaled_dot_product_attention)",
    )


@pytest.mark.parametrize("causal", CAUSAL)
def test_random_shapes(submission, seed, causal):
    """Random sizes and weights against torch's layer; a failure is shrunk to the smallest failing sizes."""

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        n_heads, d_model = sizes["n_heads"], sizes["n_heads"] * sizes["d_head"]
        state = random_state(rng, d_model)
        x = randn(rng, sizes["B"], sizes["T"], d_model)
        layer = build(submission, d_model, n_heads, state)
        check_output(forward(layer, x, causal), oracle(state, x, n_heads, causal), state, x, n_heads, causal)

    shrink(check, {"B": 3, "T": 10, "n_heads": 4, "d_head": 5}, seed=seed, budget=12)


def test_one_position_is_the_value_path(submission, rng):
    """With T = 1 a position attends only itself: the output is o_proj(v_proj(x)), causal or not."""
    state = random_state(rng, 12)
    x = randn(rng, 3, 1, 12)
    with torch.no_grad():
        s = {k: v.double() for k, v in state.items()}
        v = F.linear(x.double(), s["v_proj.weight"], s["v_proj.bias"])
        expected = F.linear(v, s["o_proj.weight"], s["o_proj.bias"]).float()
    layer = build(submission, 12, 3, state)
    for causal in (False, True):
        check_output(
            forward(layer, x, causal), expected, state, x, 3, causal, what="the output for a single position"
        )


def test_sequences_are_independent(submission, rng):
    """Each sequence of the batch is attended on its own: running them one by one gives the same rows."""
    state = random_state(rng, 16)
    x = randn(rng, 4, 6, 16)
    layer = build(submission, 16, 4, state)
    together = layer(x, causal=True)
    for i in range(4):
        assert_close(
            layer(x[i : i + 1], causal=True),
            together[i : i + 1],
            rtol=1e-5,
            atol=1e-5,
            what="a sequence's output run alone against the same sequence in a batch",
            hint="attention mixes positions within a sequence, never across the batch",
        )


def test_one_module_many_lengths(submission, rng):
    """One module called on sequences of different lengths: each call is right for its own T."""
    state = random_state(rng, 16)
    layer = build(submission, 16, 2, state)
    for t, causal in [(5, True), (9, True), (3, True), (9, False), (1, True)]:
        x = randn(rng, 2, t, 16)
        check_output(
            forward(layer, x, causal),
            oracle(state, x, 2, causal),
            state,
            x,
            2,
            causal,
            what="the output of a module called before on sequences of other lengths",
            hint="build the causal mask for each call's own T (or slice a large enough one): T changes "
            "from call to call",
        )


@pytest.mark.parametrize("t", [pytest.param(8, id="8-positions"), pytest.param(13, id="13-positions")])
def test_no_future_leakage(submission, rng, t):
    """causal=True: changing the inputs after position i never changes the outputs at positions 0..i."""
    state = random_state(rng, 16)
    layer = build(submission, 16, 4, state)
    assert_causal(
        layer,
        [Seq(randn(rng, 2, t, 16), dim=-2)],
        rng=rng,
        kwargs={"causal": True},
        cuts=[0, 1, t // 2, t - 2],
        rtol=1e-5,
        atol=1e-5,
        hint="position i may attend positions j <= i only, and the masked scores must be -inf before the "
        "softmax (not zeroed after it)",
    )


# ---------------------------------------------------------------------------- gradients

# Outputs and gradients of a float32 module against float64 autograd rounded to float32: float32's
# rtol, and an atol of float32's relative to the largest entry (a gradient of a weight is a sum over
# every position of the batch, and a correct order of that sum moves an entry near zero by the
# rounding of terms as large as the largest).
RTOL, ATOL = 1.3e-6, 1e-5


def close(got, want, what, *, hint=""):
    scale = float(want.abs().max()) if want.numel() else 1.0
    assert_close(got, want, what=what, rtol=RTOL, atol=ATOL * max(scale, 1.0), hint=hint)


TORCH_GRADS = {  # the submission's parameter -> (torch's parameter, which third of in_proj)
    "q_proj.weight": ("in_proj_weight", 0),
    "k_proj.weight": ("in_proj_weight", 1),
    "v_proj.weight": ("in_proj_weight", 2),
    "q_proj.bias": ("in_proj_bias", 0),
    "k_proj.bias": ("in_proj_bias", 1),
    "v_proj.bias": ("in_proj_bias", 2),
    "o_proj.weight": ("out_proj.weight", None),
    "o_proj.bias": ("out_proj.bias", None),
}


@pytest.mark.parametrize("causal", CAUSAL)
@pytest.mark.parametrize(
    "b, t, d_model, n_heads",
    [
        pytest.param(2, 6, 16, 4, id="B2-T6-d16-4-heads"),
        pytest.param(1, 9, 12, 12, id="heads-of-one-feature"),
    ],
)
def test_gradients(submission, rng, b, t, d_model, n_heads, causal):
    """Backward with a random upstream gradient: x and all eight parameters match torch's autograd."""
    state = random_state(rng, d_model)
    x = randn(rng, b, t, d_model)
    g = randn(rng, b, t, d_model)
    layer = build(submission, d_model, n_heads, state)
    found = layer.backward(x.clone().requires_grad_(), grad_output=g, **({"causal": True} if causal else {}))

    mha = torch_mha(state, n_heads)
    x64 = x.double().requires_grad_()
    out = run_torch(mha, x64, causal)
    out.backward(g.double())
    torch_params = dict(mha.named_parameters())

    expected = out.detach().float()
    scale = float(expected.abs().max())
    check_output(found.output, expected, state, x, n_heads, causal, rtol=RTOL, atol=ATOL * max(scale, 1.0))
    expect(len(found.inputs) == 1, "x got no gradient", hint=GRADIENT_HINT)
    close(found.inputs[0], x64.grad.float(), "the gradient of x", hint=GRADIENT_HINT)
    expect(
        isinstance(found.params, dict) and set(found.params) == set(NAMES),
        "the module's parameters must be exactly the eight weights and biases of q_proj, k_proj, v_proj "
        "and o_proj",
        hint=NAMES_HINT,
    )
    d = d_model
    for name, (torch_name, third) in TORCH_GRADS.items():
        want = torch_params[torch_name].grad
        if third is not None:
            want = want[third * d : (third + 1) * d]
        close(found.params[name], want.float(), f"the gradient of {name}", hint=GRADIENT_HINT)


# ---------------------------------------------------------------------------- dtypes


def converted(state, dtype):
    """The weights as a module converted with .half() / .bfloat16() / .double() holds them."""
    return {k: v.to(dtype) for k, v in state.items()}


CONVERT = {torch.float16: "half", torch.bfloat16: "bfloat16", torch.float64: "double"}


@pytest.mark.parametrize("causal", CAUSAL)
@pytest.mark.parametrize(
    "dtype",
    [
        pytest.param(torch.float16, id="float16"),
        pytest.param(torch.bfloat16, id="bfloat16"),
        pytest.param(torch.float64, id="float64"),
    ],
)
def test_dtypes(submission, rng, dtype, causal):
    """A module converted to float16, bfloat16 or float64 returns x's dtype, close to the exact result."""
    state = random_state(rng, 32)
    x = randn(rng, 2, 12, 32).to(dtype)
    layer = build(submission, 32, 4, state)
    layer.call(CONVERT[dtype])
    expected = oracle(converted(state, dtype), x, 4, causal)
    half = dtype != torch.float64
    check_output(
        forward(layer, x, causal),
        expected,
        converted(state, dtype),
        x,
        4,
        causal,
        hint=HALF_HINT if half else FLOAT64_HINT,
        **(tolerance(dtype) if half else {}),  # float64: its own default tolerance
    )


def test_float16_scores_beyond_its_range(submission, rng):
    """A float16 module whose raw scores q . k exceed 65504, float16's largest value."""
    d = 64  # one head of 64 features: q . q = 64 * 40^2 = 102400 before the 1/8 scale
    state = {
        "q_proj.weight": torch.eye(d),
        "k_proj.weight": torch.eye(d),
        "v_proj.weight": randn(rng, d, d, scale=1 / 320),
        "o_proj.weight": torch.eye(d),
        **{f"{p}.bias": torch.zeros(d) for p in PROJECTIONS},
    }
    signs = torch.from_numpy(rng.choice(np.float32([-1.0, 1.0]), size=(2, 10, d)))
    x = (40 * signs).half()
    layer = build(submission, d, 1, state)
    layer.call("half")
    assert_close(
        layer(x, causal=True),
        oracle(converted(state, torch.float16), x, 1, True),
        **tolerance(torch.float16),
        hint="q @ k^T overflows float16 here (inf, then NaN in the softmax): compute the scores, the softmax "
        "and the weighted sum in float32",
        misconceptions={RETURNED_FLOAT32: oracle(converted(state, torch.float16), x, 1, True).float()},
    )


# ---------------------------------------------------------------------------- inputs


def test_input_unchanged(submission, rng):
    """forward leaves x as it was."""
    x = randn(rng, 2, 5, 16)
    # only the input here (the module keeps its own initial weights): the output on such inputs is
    # checked in test_matches_torch_mha (B2-T7-d16-4-heads, causal), the parameter names in
    # test_parameter_names
    layer = submission.MultiHeadAttention(16, 4)
    call_unchanged(
        layer,
        x,
        names=("x",),
        what="forward",
        hint="the caller keeps using x (it is the residual stream): compute on new tensors, never with *=, "
        "+= or a trailing-underscore method on x",
        causal=True,
    )
