"""Public tests: small cases you can check by hand.

Run them with `grader test sinusoidal-positions sinusoidal.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect


def table(positions, d, *, layout="interleaved", exponent="2i", base=10000.0, sign=-1.0):
    """The encoding of each position, one number at a time in Python floats (float64): the paper's
    formula by default, or one of the usual mistakes."""
    rows = []
    for pos in positions:
        if layout == "halves":
            w = [base ** (sign * 2 * i / d) for i in range(d // 2)]
            rows.append([math.sin(pos * f) for f in w] + [math.cos(pos * f) for f in w])
            continue
        row = []
        for j in range(d):
            two_i = j - j % 2 if exponent == "2i" else j  # "j": every dimension its own exponent
            angle = pos * base ** (sign * two_i / d)
            row.append(math.sin(angle) if j % 2 == 0 else math.cos(angle))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


def test_worked_example(submission):
    """The lesson's example: d_model = 4 (frequencies 1 and 0.01) at positions 0, 1 and 2."""
    positions = [0, 1, 2]
    expected = torch.tensor(
        [
            [0.0, 1.0, 0.0, 1.0],  # position 0: sin 0 = 0, cos 0 = 1
            [0.8414710, 0.5403023, 0.0099998, 0.9999500],  # sin 1, cos 1, sin 0.01, cos 0.01
            [0.9092974, -0.4161468, 0.0199987, 0.9998000],  # sin 2, cos 2, sin 0.02, cos 0.02
        ]
    )
    assert_close(
        submission.sinusoidal_positions(torch.tensor(positions), 4),
        expected,
        rtol=1e-5,
        atol=1e-6,
        misconceptions={
            "sines then cosines (two halves)? sin goes on the even dimensions, cos on the odd ones, "
            "interleaved": table(positions, 4, layout="halves").float(),
            "exponent j/d for every dimension j? both dimensions of pair i use 10000^(-2i/d)": table(
                positions, 4, exponent="j"
            ).float(),
            "multiplied by 10000^(2i/d)? the angle is pos / 10000^(2i/d), so the frequencies are at most "
            "1": table(positions, 4, sign=1.0).float(),
            "cos on the even dimensions and sin on the odd ones? it is the other way round": expected.view(
                3, 2, 2
            )
            .flip(-1)
            .reshape(3, 4),
            "base 1000? the paper's base is 10000": table(positions, 4, base=1000.0).float(),
        },
    )


def test_kv_cache_position(submission):
    """One decoding step at position 57 (d_model = 8) gets PE[57], not PE[0]."""
    assert_close(
        submission.sinusoidal_positions(torch.tensor([57]), 8),
        table([57], 8).float(),
        misconceptions={
            "ignored the given positions and used 0..n-1? row r encodes positions[r]": table([0], 8).float(),
        },
    )


def test_unordered_positions(submission):
    """Positions in any order, with a repeat: row r is the encoding of positions[r]."""
    positions = [5, 0, 3, 5]
    assert_close(
        submission.sinusoidal_positions(torch.tensor(positions), 6),
        table(positions, 6).float(),
        misconceptions={
            "ignored the given positions and used 0..n-1? row r encodes positions[r]": table(
                range(4), 6
            ).float(),
        },
    )


def test_dot_product_depends_on_the_offset(submission):
    """PE[p] . PE[p + 1] = cos 1 + cos 0.01 = 1.540252 for d_model = 4, at p = 0 and at p = 100."""
    pe = submission.sinusoidal_positions(torch.tensor([0, 1, 100, 101]), 4)
    expect(
        isinstance(pe, torch.Tensor) and tuple(pe.shape) == (4, 4),
        "sinusoidal_positions(positions of shape (4,), 4) must return a tensor of shape (4, 4)",
        detail=f"got {tuple(pe.shape) if isinstance(pe, torch.Tensor) else type(pe).__name__}",
    )
    dots = torch.stack((pe[0] @ pe[1], pe[2] @ pe[3]))
    assert_close(
        dots,
        torch.full((2,), math.cos(1) + math.cos(0.01), dtype=torch.float32),
        what="PE[0] . PE[1] and PE[100] . PE[101]",
        rtol=1e-5,
        atol=1e-5,
        hint="both dimensions of pair i must hold the sine and the cosine of the same angle pos * w_i, "
        "so that sin a sin b + cos a cos b = cos(a - b)",
    )


def test_shape_and_dtype(submission):
    """5 positions, d_model = 6: shape (5, 6), float32 by default and bfloat16 when asked."""
    out = submission.sinusoidal_positions(torch.arange(5), 6)
    expect(isinstance(out, torch.Tensor), "sinusoidal_positions must return a torch.Tensor")
    expect(tuple(out.shape) == (5, 6), f"the output has shape {tuple(out.shape)}; expected (5, 6)")
    expect(out.dtype == torch.float32, f"the output has dtype {out.dtype}; expected torch.float32")
    half = submission.sinusoidal_positions(torch.arange(5), 6, dtype=torch.bfloat16)
    expect(
        isinstance(half, torch.Tensor) and half.dtype == torch.bfloat16,
        f"with dtype=torch.bfloat16 the output has dtype {getattr(half, 'dtype', None)}; expected "
        "torch.bfloat16",
        hint="compute in float64, then cast the table with .to(dtype) at the end",
    )


def test_float16_far_positions_are_finite(submission):
    """float16 output at positions 0, 70000 and 10^6: no inf or NaN (70000 > 65504, float16's largest)."""
    out = submission.sinusoidal_positions(torch.tensor([0, 70_000, 1_000_000]), 8, dtype=torch.float16)
    expect(isinstance(out, torch.Tensor), "sinusoidal_positions must return a torch.Tensor")
    expect(out.dtype == torch.float16, f"the output has dtype {out.dtype}; expected torch.float16")
    expect(
        bool(torch.isfinite(out).all()),
        "the float16 output has inf or NaN values",
        detail=f"output: {out}",
        hint="the table has inf or NaN values: a far position overflowed the dtype the angles were "
        "computed in; compute them in float64 and cast only the final table",
    )
    expect(tuple(out.shape) == (3, 8), f"the output has shape {tuple(out.shape)}; expected (3, 8)")


@pytest.mark.parametrize("d_model", [pytest.param(5, id="d-5"), pytest.param(0, id="d-0")])
def test_bad_d_model_raises(submission, d_model):
    """d_model must be a positive even number: 5 and 0 raise ValueError."""
    with pytest.raises(ValueError):
        submission.sinusoidal_positions(torch.arange(3), d_model)
