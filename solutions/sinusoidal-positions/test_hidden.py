"""Hidden tests for sinusoidal-positions: random widths and positions against a float64 computation
of the paper's formula, arbitrary positions (KV-cache steps, packed, unordered, int32, empty), the
properties the lesson teaches (offsets, rotations, norms), large positions in every dtype, argument
checks, the positions left alone, and a check that the work does not grow op by op with n."""

import math

import numpy as np
import pytest
import torch

from grader.testing import Call, assert_close, call_unchanged, compare, dtype_params, expect, shrink

HALVES = "sines then cosines (two halves)? sin goes on the even dimensions, cos on the odd ones, interleaved"
EXPONENT_J = "exponent j/d for every dimension j? both dimensions of pair i use 10000^(-2i/d)"
INVERTED = "multiplied by 10000^(2i/d)? the angle is pos / 10000^(2i/d), so the frequencies are at most 1"
SWAPPED = "cos on the even dimensions and sin on the odd ones? it is the other way round"
BASE_1000 = "base 1000? the paper's base is 10000"
POSITIONS = "ignored the given positions and used 0..n-1? row r encodes positions[r]"
FLOAT32_ANGLES = (
    "angles computed in float32? far positions are misplaced by up to 0.03 rad at 10^6: compute the "
    "frequencies, angles, sines and cosines in float64 and cast only the table"
)
HALF_ANGLES = (
    "angles computed in the output's half dtype? float16 holds nothing past 65504 (inf, then NaN) and "
    "bfloat16 no integer past 256 exactly: compute in float64 and cast only the table"
)
RETURNED_FLOAT32 = "returned float32? the table must have the requested dtype"
FAR_ONLY = (
    "right at small positions but not at far ones: compute the frequencies, the angles, the sines and the "
    "cosines in float64 (float32 places the angle of position 10^6 only to about 0.03 rad), and cast the "
    "table to the requested dtype at the end"
)
NOT_FINITE = (
    "the table has inf or NaN values: a far position overflowed the dtype the angles were computed in; "
    "compute them in float64 and cast only the final table"
)

# tolerances against the exact table rounded to each dtype: float32's default, float64 to 1e-9 (the
# angle of position 10^6 is itself only placed to ~1e-10 in float64), and for the half dtypes one unit
# in the last place (rtol = the dtype's epsilon), which one rounding of a float64 result, or two
# through float32, stays within
TOLERANCE = {
    torch.float32: {"rtol": 1.3e-6, "atol": 1e-5},
    torch.float64: {"rtol": 1e-9, "atol": 1e-9},
    torch.float16: {"rtol": 2.0**-10, "atol": 1e-7},
    torch.bfloat16: {"rtol": 2.0**-7, "atol": 1e-7},
}

FAR = [0, 1, 2047, 2049, 65503, 65504, 65505, 70_000, 123_457, 524_289, 999_999, 1_000_000]


# --------------------------------------------------------------------------- the oracle and mistakes


def encode(
    positions,
    d,
    dtype=torch.float32,
    *,
    layout="interleaved",
    exponent="2i",
    base=10000.0,
    sign=-1.0,
    swap=False,
    ignore_positions=False,
    compute=torch.float64,
):
    """The paper's table computed in float64 and cast to `dtype` (the oracle), or one of the
    likely mistakes, computed in `compute`."""
    positions = torch.as_tensor(positions)
    if ignore_positions:
        positions = torch.arange(positions.shape[0])
    j = torch.arange(d, dtype=torch.float64)
    two_i = j - j % 2 if exponent == "2i" else j  # (d,): the exponent's numerator of every dimension
    if layout == "halves":
        two_i = torch.arange(0, d, 2, dtype=torch.float64).repeat(2)
    freq = base ** (sign * two_i.to(compute) / d)  # (d,), computed in `compute`
    angles = positions.to(compute).unsqueeze(-1) * freq  # (n, d)
    sin_here = (j % 2 == 0) if layout == "interleaved" else (j < d // 2)
    if swap:
        sin_here = ~sin_here
    out = torch.where(sin_here, angles.sin(), angles.cos())
    return out.to(dtype)


def annotated(positions, d, dtype=torch.float32):
    """The Annotated Transformer's table: frequencies exp(-2i ln(10000) / d) and angles in float32."""
    div_term = torch.exp(torch.arange(0, d, 2).float() * -(math.log(10000.0) / d))
    angles = torch.as_tensor(positions).float().unsqueeze(-1) * div_term
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2).to(dtype)


def mistakes(positions, d, dtype=torch.float32):
    """The output of each likely mistake, labelled with the hint that names it."""
    found = {
        HALVES: encode(positions, d, dtype, layout="halves"),
        EXPONENT_J: encode(positions, d, dtype, exponent="j"),
        INVERTED: encode(positions, d, dtype, sign=1.0),
        SWAPPED: encode(positions, d, dtype, swap=True),
        BASE_1000: encode(positions, d, dtype, base=1000.0),
        POSITIONS: encode(positions, d, dtype, ignore_positions=True),
    }
    if dtype in (torch.float16, torch.bfloat16):
        found[HALF_ANGLES] = encode(positions, d, dtype, compute=dtype)
        found[RETURNED_FLOAT32] = encode(positions, d, torch.float32)
    return found


def float32_angles(got, positions, d, dtype):
    """Whether `got` is the table computed in float32, with one of the usual forms of the frequencies
    (10000 ** (-2i/d) in float32 or in float64, or exp(-2i ln(10000) / d) as the Annotated
    Transformer writes it)."""
    exact_freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.as_tensor(positions).float().unsqueeze(-1) * exact_freq.float()
    tables = (
        encode(positions, d, dtype, compute=torch.float32),
        annotated(positions, d, dtype),
        torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2).to(dtype),
    )
    return any(compare(got, table, **TOLERANCE[dtype]) is None for table in tables)


def check_table(got, positions, d, dtype=torch.float32, *, what="the table", hint=""):
    """`got` against the oracle, the likely mistakes named."""
    if isinstance(got, torch.Tensor) and got.is_floating_point():
        if not bool(torch.isfinite(got).all()):
            hint = NOT_FINITE
        elif float32_angles(got, positions, d, dtype):
            hint = FLOAT32_ANGLES
    assert_close(
        got,
        encode(positions, d, dtype),
        what=what,
        hint=hint,
        misconceptions=mistakes(positions, d, dtype),
        **TOLERANCE[dtype],
    )


def long(values):
    return torch.tensor(values, dtype=torch.long)


def random_positions(rng, n, high):
    return torch.from_numpy(rng.integers(0, high, size=n)).long()


# --------------------------------------------------------------------------- against the oracle


def test_random_widths_and_positions(submission, seed):
    """Random widths and random positions up to 10000 against the paper's formula."""

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        d = 2 * sizes["pairs"]
        positions = random_positions(rng, sizes["n"], 10_000)
        check_table(submission.sinusoidal_positions(positions, d), positions, d)

    shrink(check, {"n": 40, "pairs": 24}, seed=seed)


@pytest.mark.parametrize(
    "d",
    [
        pytest.param(2, id="d-2-one-pair"),
        pytest.param(6, id="d-6"),
        pytest.param(128, id="d-128"),
        pytest.param(1024, id="d-1024"),
    ],
)
def test_widths(submission, d):
    """Positions 0..49 at widths from a single pair (d_model = 2) to 1024."""
    positions = torch.arange(50)
    check_table(submission.sinusoidal_positions(positions, d), positions, d)


# --------------------------------------------------------------------------- positions


def test_kv_cache_steps(submission):
    """Decoding steps: one position at a time (0, 1, 511, 4095) gets that position's encoding."""
    for step in (0, 1, 511, 4095):
        at = long([step])
        check_table(
            submission.sinusoidal_positions(at, 32),
            at,
            32,
            what=f"the encoding of the single position {step}",
        )


def test_packed_sequences(submission, rng):
    """Several sequences packed in one row: positions restart at 0 for each."""
    lengths = [int(n) for n in rng.integers(3, 12, size=4)]
    positions = torch.cat([torch.arange(n) for n in lengths])
    check_table(submission.sinusoidal_positions(positions, 16), positions, 16)


def test_unordered_and_repeated_positions(submission):
    """Positions in any order, with repeats and gaps: equal positions give equal rows."""
    positions = long([700, 3, 3, 0, 1500, 700, 41, 3])
    got = submission.sinusoidal_positions(positions, 32)
    check_table(got, positions, 32)


def test_int32_positions(submission, rng):
    """int32 positions give the same table as int64 ones."""
    positions = random_positions(rng, 20, 5000)
    check_table(
        submission.sinusoidal_positions(positions.int(), 24),
        positions,
        24,
        what="the table for int32 positions",
    )


@pytest.mark.parametrize("dtype", dtype_params("float32", "bfloat16"))
def test_empty_positions(submission, dtype):
    """No positions at all: an empty (0, d_model) table of the requested dtype."""
    got = submission.sinusoidal_positions(torch.zeros(0, dtype=torch.long), 8, dtype=dtype)
    name = str(dtype).removeprefix("torch.")
    expect(
        isinstance(got, torch.Tensor) and tuple(got.shape) == (0, 8) and got.dtype == dtype,
        f"with no positions the result must be an empty {name} tensor of shape (0, 8)",
        hint="positions[:, None] * frequencies is (0, d_model / 2) when there are no positions: the same "
        "code handles it",
    )


# --------------------------------------------------------------------------- properties


def pair_frequencies(d):
    return 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)


def test_dot_products_depend_on_the_offset(submission, rng):
    """PE[p] . PE[q] = sum_i cos((p - q) w_i): the same for every pair of positions at one offset."""
    n, d = 40, 64
    p = random_positions(rng, n, 3000)
    q = random_positions(rng, n, 3000)
    shift = random_positions(rng, n, 3000)
    pe_p = submission.sinusoidal_positions(p, d)
    pe_q = submission.sinusoidal_positions(q, d)
    pe_ps = submission.sinusoidal_positions(p + shift, d)
    pe_qs = submission.sinusoidal_positions(q + shift, d)
    for t in (pe_p, pe_q, pe_ps, pe_qs):
        expect(
            isinstance(t, torch.Tensor) and tuple(t.shape) == (n, d),
            f"sinusoidal_positions(positions of shape ({n},), {d}) must return a tensor of shape ({n}, {d})",
        )
    dots = (pe_p.double() * pe_q.double()).sum(-1)  # (n,)
    moved = (pe_ps.double() * pe_qs.double()).sum(-1)
    assert_close(
        moved,
        dots,
        what="PE[p + s] . PE[q + s] against PE[p] . PE[q]",
        rtol=1e-4,
        atol=1e-3,
        hint="both dimensions of pair i must hold the sine and the cosine of the same angle pos * w_i, "
        "so that sin a sin b + cos a cos b = cos(a - b)",
    )
    closed = torch.cos((p - q).double().unsqueeze(-1) * pair_frequencies(d)).sum(-1)
    assert_close(
        dots,
        closed,
        what="PE[p] . PE[q] against sum_i cos((p - q) w_i)",
        rtol=1e-4,
        atol=1e-3,
        hint="the frequencies are w_i = 10000^(-2i/d), one per pair, shared by its sine and its cosine",
    )


def test_shift_is_a_rotation(submission, rng):
    """Moving k positions rotates every pair (PE[2i], PE[2i+1]) by the angle k w_i."""
    n, d = 30, 32
    p = random_positions(rng, n, 2000)
    k = random_positions(rng, n, 500)
    here = submission.sinusoidal_positions(p, d)
    there = submission.sinusoidal_positions(p + k, d)
    for t in (here, there):
        expect(
            isinstance(t, torch.Tensor) and tuple(t.shape) == (n, d),
            f"sinusoidal_positions(positions of shape ({n},), {d}) must return a tensor of shape ({n}, {d})",
        )
    turn = k.double().unsqueeze(-1) * pair_frequencies(d)  # (n, d/2)
    c, s = turn.cos(), turn.sin()
    sin_p, cos_p = here.double()[:, 0::2], here.double()[:, 1::2]
    rotated = torch.stack((c * sin_p + s * cos_p, -s * sin_p + c * cos_p), dim=-1).flatten(-2)
    assert_close(
        there.double(),
        rotated,
        what="PE[p + k] against the pairs of PE[p] rotated by k w_i",
        rtol=1e-4,
        atol=1e-4,
        hint="pair i is (dimension 2i, dimension 2i + 1) = (sin(pos w_i), cos(pos w_i)): interleaved, "
        "with w_i = 10000^(-2i/d)",
    )


def test_every_encoding_has_the_same_length(submission, rng):
    """|PE[pos]|^2 = d_model / 2 at every position: each pair is a sine and a cosine of one angle."""
    positions = random_positions(rng, 50, 100_000)
    pe = submission.sinusoidal_positions(positions, 48)
    expect(
        isinstance(pe, torch.Tensor) and tuple(pe.shape) == (50, 48),
        "sinusoidal_positions(positions of shape (50,), 48) must return a tensor of shape (50, 48)",
    )
    assert_close(
        pe.double().pow(2).sum(-1),
        torch.full((50,), 24.0, dtype=torch.float64),
        what="|PE[pos]|^2 for 50 positions up to 100000",
        rtol=1e-5,
        atol=1e-4,
        hint="each dimension 2i + 1 must hold the cosine of the angle whose sine is in dimension 2i",
    )


# --------------------------------------------------------------------------- precision and dtypes


@pytest.mark.parametrize("dtype", dtype_params("float32", "float16", "bfloat16", "float64"))
def test_far_positions(submission, dtype):
    """Positions up to 10^6 (past float16's 65504 and float32's exact angles) in every dtype."""
    positions = long(FAR)
    got = submission.sinusoidal_positions(positions, 64, dtype=dtype)
    hint = ""
    if isinstance(got, torch.Tensor) and got.is_floating_point() and not bool(torch.isfinite(got).all()):
        hint = NOT_FINITE
    else:
        near = torch.arange(8)
        near_ok = compare(
            submission.sinusoidal_positions(near, 64, dtype=dtype),
            encode(near, 64, dtype),
            **TOLERANCE[dtype],
        )
        hint = FAR_ONLY if near_ok is None else ""
    check_table(got, positions, 64, dtype, hint=hint)


@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16"))
def test_half_precision_random_positions(submission, rng, dtype):
    """float16 and bfloat16 tables at random positions up to 200000, rounded once from the exact values."""
    positions = random_positions(rng, 64, 200_000)
    got = submission.sinusoidal_positions(positions, 32, dtype=dtype)
    check_table(got, positions, 32, dtype)


def test_float64_precision(submission, rng):
    """dtype=torch.float64 gives float64's precision (to 1e-9) at positions up to 10^6."""
    positions = random_positions(rng, 32, 1_000_001)
    check_table(
        submission.sinusoidal_positions(positions, 64, dtype=torch.float64),
        positions,
        64,
        torch.float64,
    )


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "d_model",
    [
        pytest.param(7, id="d-7"),
        pytest.param(1, id="d-1"),
        pytest.param(0, id="d-0"),
        pytest.param(-4, id="d-negative"),
    ],
)
def test_bad_d_model_rejected(submission, d_model):
    """An odd, zero or negative d_model raises ValueError."""
    try:
        submission.sinusoidal_positions(torch.arange(3), d_model)
    except ValueError:
        return
    pytest.fail(f"sinusoidal_positions(positions, {d_model}) returned normally; it must raise ValueError")


def test_positions_unchanged(submission, rng):
    """sinusoidal_positions leaves positions as they were."""
    # inputs only: the values on such inputs are checked by test_random_widths_and_positions
    positions = random_positions(rng, 12, 1000)
    got = call_unchanged(
        submission.sinusoidal_positions,
        positions,
        16,
        names=("positions", "d_model"),
        what="sinusoidal_positions",
        hint="build new tensors (positions.to(torch.float64)), never an in-place operation on positions",
    )
    expect(isinstance(got, torch.Tensor), "sinusoidal_positions must return a torch.Tensor")


# --------------------------------------------------------------------------- performance

# The number of tensor ops (counted in the runner) at 32, 128 and 512 positions: the reference issues
# the same dozen ops at any n (exponent 0); a loop over positions issues about 7 per position
# (exponent 1.0). A loop over the d/2 pairs, a table indexed by position, or torch.where stay flat.


@pytest.mark.performance
def test_vectorised(perf):
    """The number of tensor ops does not grow with the number of positions."""

    def make(rng, n):
        positions = torch.from_numpy(rng.integers(0, 100_000, size=n)).long()
        return Call("sinusoidal_positions", positions, 64)

    perf.scaling(
        "vectorised",
        make,
        hint="a Python loop over positions? compute every angle at once: positions[:, None] * frequencies "
        "is (n, d_model / 2)",
    )
