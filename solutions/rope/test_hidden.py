"""Hidden tests for rope: random shapes and positions against the reference, the properties that
make RoPE work (relative positions, norms, position 0), arbitrary and broadcast positions, half
precision, gradients, and a check that the work does not grow op by op with the sequence."""

import numpy as np
import pytest
import torch

from grader.testing import (
    Call,
    assert_close,
    assert_gradients_close,
    assert_invariant,
    call_unchanged,
    dtype_params,
    expect,
    shrink,
    tolerance,
)

HALF_SPLIT = "rotated the two halves (GPT-NeoX style) instead of adjacent pairs? pair i is (x[2i], x[2i+1])"
FREQUENCIES = (
    "frequencies theta^(-i/d) instead of theta^(-2i/d)? pair i turns at theta^(-2i/d) radians per token"
)
POSITIONS = "ignored token_positions and used 0..seq-1? rotate each row by its own entry of token_positions"
DIRECTION = "rotated the wrong way (sign of the sine)? (a, b) -> (a cos - b sin, a sin + b cos)"
HALF_ANGLES = (
    "angles computed in half precision? float16 and bfloat16 cannot hold an angle like 1234.5 rad: "
    "build the frequencies and angles in float32, rotate, then cast the result back"
)


# --------------------------------------------------------------------------- helpers


def rope64(x, positions, theta=10000.0, *, layout="adjacent", exponent=2.0, ignore_positions=False, sign=1.0):
    """RoPE computed in float64 and cast to x's dtype: right, or wrong in one of the ways a
    learner may be (to name the mistake a submission made)."""
    d = x.shape[-1]
    i = torch.arange(d // 2, dtype=torch.float64)
    inv_freq = theta ** (-exponent * i / d)
    if ignore_positions:
        positions = torch.arange(x.shape[-2])
    angles = positions.to(torch.float64).unsqueeze(-1) * inv_freq
    cos, sin = angles.cos(), sign * angles.sin()
    xd = x.to(torch.float64)
    if layout == "adjacent":
        a, b = xd[..., 0::2], xd[..., 1::2]
        out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    else:
        a, b = xd[..., : d // 2], xd[..., d // 2 :]
        out = torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)
    return out.to(x.dtype)


def mistakes(x, positions, theta=10000.0):
    """The outputs of the likely mistakes, labelled with the hint that names each."""
    return {
        HALF_SPLIT: rope64(x, positions, theta, layout="halves"),
        FREQUENCIES: rope64(x, positions, theta, exponent=1.0),
        POSITIONS: rope64(x, positions, theta, ignore_positions=True),
        DIRECTION: rope64(x, positions, theta, sign=-1.0),
        "ignored theta? the frequencies are theta^(-2i/d) for the theta given": rope64(x, positions),
    }


def expected(reference, x, positions, **kwargs):
    """The reference's answer computed in float64, cast to x's dtype."""
    return reference.apply_rope(x.double(), positions, **kwargs).to(x.dtype)


def tol(dtype, positions):
    """Tolerances for a result in `dtype`. Angles computed in float32 are off by about 1e-7 x the
    angle, so the allowance grows with the largest position; half precision also rounds the
    rotated values (more if cos and sin are rounded to it first, which is fine)."""
    t = tolerance(dtype)
    reach = float(positions.abs().max()) if positions.numel() else 0.0
    scale = 1.0 if dtype == torch.float32 else 2.0
    return {"rtol": t["rtol"], "atol": scale * t["atol"] + 1e-6 * reach}


def randn(gen, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=gen).to(dtype)


def positions_from(rng, shape, high):
    return torch.from_numpy(rng.integers(0, high, size=shape)).long()


# --------------------------------------------------------------------------- against the reference


def test_random_shapes(submission, reference, seed):
    """Random (batch, heads, seq, d) inputs at random positions up to 4096 match the reference."""

    def check(sizes, case_seed):
        gen = torch.Generator().manual_seed(case_seed)
        rng = np.random.default_rng(case_seed)
        x = randn(gen, sizes["batch"], sizes["heads"], sizes["seq"], 2 * sizes["pairs"])
        positions = positions_from(rng, (sizes["seq"],), 4096)
        assert_close(
            submission.apply_rope(x, positions),
            expected(reference, x, positions),
            misconceptions=mistakes(x, positions),
            **tol(x.dtype, positions),
        )

    shrink(check, {"batch": 2, "heads": 3, "seq": 40, "pairs": 16}, seed=seed)


@pytest.mark.parametrize(
    "theta",
    [pytest.param(500000.0, id="theta-500000"), pytest.param(100.0, id="theta-100")],
)
def test_theta(submission, reference, rng, theta):
    """The base theta is a parameter: Llama 3 uses 500000."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    x = randn(gen, 2, 4, 24, 64)
    positions = positions_from(rng, (24,), 2048)
    assert_close(
        submission.apply_rope(x, positions, theta=theta),
        expected(reference, x, positions, theta=theta),
        misconceptions=mistakes(x, positions, theta),
        **tol(x.dtype, positions),
    )


# --------------------------------------------------------------------------- properties


def test_scores_depend_on_offset_only(submission, rng):
    """The dot product of q rotated at m and k rotated at n depends only on m - n."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    n_pairs, d = 64, 32
    q_and_k = randn(gen, n_pairs, 2, d)  # row 0 is a query, row 1 a key
    m = positions_from(rng, (n_pairs,), 2048)
    n = positions_from(rng, (n_pairs,), 2048)
    shift = positions_from(rng, (n_pairs,), 2048)
    at_m_n = torch.stack((m, n), dim=-1)  # (n_pairs, 2)
    # the same offset m - n, moved: the key at `shift`, the query at m - n + shift (kept >= 0)
    base = shift + torch.clamp(n - m, min=0)
    moved = torch.stack((m - n + base, base), dim=-1)

    def dots(positions):
        out = submission.apply_rope(q_and_k, positions)
        expect(
            isinstance(out, torch.Tensor) and tuple(out.shape) == (n_pairs, 2, d),
            f"apply_rope should return a tensor of x's shape ({n_pairs}, 2, {d})",
        )
        return (out[:, 0] * out[:, 1]).sum(-1)  # (n_pairs,)

    assert_close(
        dots(moved),
        dots(at_m_n),
        what="q . k after moving both positions by the same amount",
        rtol=1e-3,
        atol=2e-2,
        hint="q . k must depend only on m - n: rotate every pair by pos * theta^(-2i/d), the same "
        "rotation for queries and keys, nothing else depending on the position",
    )


def test_adjacent_pairs_keep_their_norm(submission, rng):
    """A rotation keeps lengths: the norm of every vector and of every pair (x[2i], x[2i+1])."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    x = randn(gen, 3, 20, 32)
    positions = positions_from(rng, (3, 20), 4096)
    out = submission.apply_rope(x, positions)
    expect(
        isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(x.shape),
        "apply_rope should return a tensor of x's shape",
    )
    assert_close(
        out.norm(dim=-1),
        x.norm(dim=-1),
        what="the norm of each rotated vector",
        rtol=1e-5,
        atol=1e-5,
        hint="each pair must be rotated, (a, b) -> (a cos - b sin, a sin + b cos), which keeps its length",
    )

    def pair_norms(t):
        return torch.sqrt(t[..., 0::2] ** 2 + t[..., 1::2] ** 2)

    assert_close(
        pair_norms(out),
        pair_norms(x),
        what="the norm of each adjacent pair (x[2i], x[2i+1])",
        rtol=1e-5,
        atol=1e-5,
        misconceptions={HALF_SPLIT: pair_norms(rope64(x, positions, layout="halves"))},
    )


@pytest.mark.parametrize("dtype", dtype_params())
def test_position_zero_every_dtype(submission, rng, dtype):
    """At position 0 every angle is 0: the output equals the input, in its dtype."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    x = randn(gen, 2, 3, 7, 16, dtype=dtype)
    assert_close(
        submission.apply_rope(x, torch.zeros(7, dtype=torch.long)),
        x,
        misconceptions={
            "returned float32? the output has x's dtype": x.float(),
            POSITIONS: rope64(x, torch.zeros(7, dtype=torch.long), ignore_positions=True),
        },
    )


# --------------------------------------------------------------------------- positions


def test_repeated_and_unordered_positions(submission, reference, rng):
    """Positions need not be 0..seq-1: any order, repeats, gaps."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    row = randn(gen, 1, 32)
    x = row.expand(8, 32).clone()  # eight copies of one vector
    positions = torch.tensor([700, 3, 3, 0, 1500, 700, 41, 3])
    out = submission.apply_rope(x, positions)
    assert_close(
        out,
        expected(reference, x, positions),
        misconceptions=mistakes(x, positions),
        **tol(x.dtype, positions),
    )
    for a, b in ((1, 2), (1, 7), (0, 5)):
        assert_close(
            out[b],
            out[a],
            what=f"row {b} (the same vector at the same position as row {a})",
            hint="the same vector at the same position must give the same output",
            **tol(x.dtype, positions),
        )


def test_decoding_steps(submission, reference, rng):
    """Decoding with a KV cache: the new token alone, at its position, gets the rotation it has in
    the full sequence."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    x = randn(gen, 2, 4, 30, 32)
    positions = torch.arange(30)
    full = expected(reference, x, positions)
    for step in (29, 17):
        new = x[..., step : step + 1, :]  # (2, 4, 1, 32)
        at = torch.tensor([step])
        assert_close(
            submission.apply_rope(new, at),
            full[..., step : step + 1, :],
            what=f"the token at position {step} rotated alone",
            misconceptions=mistakes(new, at),
            **tol(x.dtype, positions),
        )


def test_packed_sequences(submission, reference, rng):
    """Several sequences packed in one row: positions restart at 0 for each."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    lengths = [int(n) for n in rng.integers(3, 12, size=4)]
    positions = torch.cat([torch.arange(n) for n in lengths])
    x = randn(gen, 2, len(positions), 32)
    assert_close(
        submission.apply_rope(x, positions),
        expected(reference, x, positions),
        misconceptions=mistakes(x, positions),
        **tol(x.dtype, positions),
    )


def test_positions_per_sequence(submission, reference, rng):
    """A batch of sequences at different offsets: positions (batch, 1, seq) broadcast over heads."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    batch, heads, seq = 3, 4, 10
    x = randn(gen, batch, heads, seq, 32)
    offsets = positions_from(rng, (batch, 1, 1), 3000)
    positions = offsets + torch.arange(seq)  # (batch, 1, seq)
    assert_close(
        submission.apply_rope(x, positions),
        expected(reference, x, positions),
        misconceptions={
            "used the first sequence's positions for the whole batch? positions (batch, 1, seq) differ "
            "per sequence and broadcast over the heads": rope64(x, positions[0, 0]),
            **mistakes(x, positions),
        },
        **tol(x.dtype, positions),
    )


def test_position_layouts(submission, reference, rng):
    """The same positions given as (seq,), (1, 1, seq) or (batch, heads, seq), int64 or int32, give
    the same answer."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    x = randn(gen, 2, 3, 9, 16)
    positions = positions_from(rng, (9,), 2000)
    want = expected(reference, x, positions)
    assert_close(
        submission.apply_rope(x, positions),
        want,
        misconceptions=mistakes(x, positions),
        **tol(x.dtype, positions),
    )
    assert_invariant(
        submission.apply_rope,
        (x,),
        {
            "positions of shape (seq,)": {"token_positions": positions},
            "positions of shape (1, 1, seq)": {"token_positions": positions.view(1, 1, 9)},
            "positions of shape (batch, heads, seq)": {"token_positions": positions.expand(2, 3, 9).clone()},
            "int32 positions": {"token_positions": positions.int()},
        },
        expected=want,
        hint="token_positions broadcasts against x.shape[:-1]: add a trailing axis for the pairs "
        "(positions[..., None] * inv_freq) and let broadcasting do the rest",
        **tol(x.dtype, positions),
    )


# --------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", dtype_params())
def test_dtypes(submission, reference, rng, dtype):
    """float32, float16 and bfloat16 inputs at positions up to 2048 return their own dtype."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    x = randn(gen, 2, 2, 16, 64, dtype=dtype)
    positions = positions_from(rng, (16,), 2048)
    exact = reference.apply_rope(x.double(), positions)
    assert_close(
        submission.apply_rope(x, positions),
        exact.to(dtype),
        misconceptions={
            "returned float32? the output has x's dtype": exact.float(),
            **mistakes(x, positions),
        },
        hint=HALF_ANGLES if dtype != torch.float32 else "",
        **tol(dtype, positions),
    )


@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16"))
def test_long_positions_in_half_precision(submission, reference, rng, dtype):
    """Half-precision inputs deep into a long context (positions 3000 to 8000)."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    x = randn(gen, 4, 12, 32, dtype=dtype)
    positions = 3000 + positions_from(rng, (12,), 5000)
    assert_close(
        submission.apply_rope(x, positions),
        expected(reference, x, positions),
        hint=HALF_ANGLES,
        misconceptions=mistakes(x, positions),
        **tol(dtype, positions),
    )


# --------------------------------------------------------------------------- gradients, errors


def test_gradients(submission, rng):
    """apply_rope is differentiable: the gradient flows back to x (RoPE sits inside training)."""
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    x = randn(gen, 2, 3, 12, 16).requires_grad_(True)
    positions = positions_from(rng, (12,), 1000)
    grad = randn(gen, 2, 3, 12, 16)
    assert_close(
        submission.apply_rope(x.detach(), positions),
        rope64(x.detach(), positions),
        misconceptions=mistakes(x.detach(), positions),
        **tol(torch.float32, positions),
    )
    # the local side is rope64 (float64, differentiable): the `reference` fixture hands its
    # function copies of the arguments, so local autograd would never reach these leaves
    assert_gradients_close(
        submission.apply_rope,
        rope64,
        (x, positions),
        grad_output=grad,
        names=("x",),
        hint="build the result out of tensor operations on x: no in-place writes into x, no "
        ".detach(), .numpy() or .tolist() on the way",
        **tol(torch.float32, positions),
    )


def test_inputs_unchanged(submission, rng):
    """apply_rope leaves x and token_positions as they were: the caller still holds them."""
    # inputs only: the values on such inputs are checked by test_random_shapes and test_position_layouts
    gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    x = randn(gen, 2, 3, 10, 16)
    positions = positions_from(rng, (10,), 1000)
    out = call_unchanged(
        submission.apply_rope,
        x,
        positions,
        names=("x", "token_positions"),
        what="apply_rope",
        hint="build the result as a new tensor (torch.stack of the two rotated halves of every pair): "
        "writing the rotated pairs back into x (x[..., 0::2] = ...) changes the caller's tensor, "
        "and x.float() is x itself when x is float32",
    )
    expect(isinstance(out, torch.Tensor), "apply_rope must return a torch.Tensor")


@pytest.mark.parametrize("d", [pytest.param(7, id="d-7"), pytest.param(1, id="d-1")])
def test_odd_dimension_rejected(submission, d):
    """An odd feature dimension cannot be split into pairs: ValueError."""
    try:
        submission.apply_rope(torch.ones(3, d), torch.arange(3))
    except ValueError:
        return
    pytest.fail(f"apply_rope on x with d = {d} returned normally; an odd d must raise ValueError")


# --------------------------------------------------------------------------- performance

# The number of tensor ops (counted in the runner) at each sequence length: the reference issues the
# same 20 ops at any length (exponent 0). A loop over positions issues about 18 per position (1158
# at 64, 18438 at 1024: exponent 1.00). Honest variants (a cos/sin table indexed by position, complex
# multiplication, float64, slice assignment into a new tensor) stay flat.


@pytest.mark.performance
def test_vectorised(perf):
    """The number of tensor ops does not grow with the sequence length."""

    def make(rng, n):
        x = torch.from_numpy(rng.standard_normal((1, 4, n, 64), dtype=np.float32))
        positions = torch.from_numpy(rng.integers(0, 4 * n, size=n)).long()
        return Call("apply_rope", x, positions)

    def check(actual, want):
        assert_close(actual, want, what="the output of a measured call", rtol=1e-5, atol=1e-4 + 1e-6 * 4096)

    perf.scaling(
        "vectorised",
        make,
        check=check,
        hint="a Python loop over positions? compute every angle at once: positions[..., None] * inv_freq "
        "is (..., seq, d/2), and the rotation is four multiplications and two additions on whole tensors",
    )
