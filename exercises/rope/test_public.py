"""Public tests: small cases you can check by hand.

Run them with `grader test rope rope.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect


def rotated(x, angles):
    """x (d,) with pair i = (x[2i], x[2i+1]) rotated by angles[i], computed one number at a time."""
    out = []
    for i, phi in enumerate(angles):
        a, b = x[2 * i], x[2 * i + 1]
        out += [a * math.cos(phi) - b * math.sin(phi), a * math.sin(phi) + b * math.cos(phi)]
    return out


def halves(x, angles):
    """The same rotation with pair i = (x[i], x[i + d/2]): the layout this exercise does NOT use."""
    h = len(x) // 2
    first, second = [0.0] * h, [0.0] * h
    for i, phi in enumerate(angles):
        a, b = x[i], x[i + h]
        first[i], second[i] = a * math.cos(phi) - b * math.sin(phi), a * math.sin(phi) + b * math.cos(phi)
    return first + second


def test_by_hand(submission):
    """The lesson's example: d = 4, theta = 100 (frequencies 1 and 0.1), x = [1, 0, 0, 1] at
    positions 1, 0 and 2."""
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]] * 3)
    positions = torch.tensor([1, 0, 2])
    expected = torch.tensor(
        [
            [0.5403023, 0.8414710, -0.0998334, 0.9950042],  # position 1: angles 1 and 0.1
            [1.0, 0.0, 0.0, 1.0],  # position 0: unchanged
            [-0.4161468, 0.9092974, -0.1986693, 0.9800666],  # position 2: angles 2 and 0.2
        ]
    )
    row = [1.0, 0.0, 0.0, 1.0]

    def each(layout, frequencies, positions=(1, 0, 2)):
        return torch.tensor([layout(row, [p * f for f in frequencies]) for p in positions])

    assert_close(
        submission.apply_rope(x, positions, theta=100.0),
        expected,
        rtol=1e-5,
        atol=1e-5,
        misconceptions={
            "rotated the two halves (GPT-NeoX style) instead of adjacent pairs (x[2i], x[2i+1])?": each(
                halves, [1, 0.1]
            ),
            "frequencies theta^(-i/d) instead of theta^(-2i/d)? here they are 1 and 100^(-2/4) = 0.1": each(
                rotated, [1, 100 ** (-1 / 4)]
            ),
            "ignored token_positions and used 0..seq-1? row t must be rotated by its own position": each(
                rotated, [1, 0.1], positions=(0, 1, 2)
            ),
            "rotated the wrong way (sign of the sine)? (a, b) -> (a cos - b sin, a sin + b cos)": each(
                rotated, [-1, -0.1]
            ),
        },
    )


def test_position_zero_is_identity(submission):
    """At position 0 every angle is 0: nothing moves."""
    x = torch.randn(2, 5, 8)
    assert_close(
        submission.apply_rope(x, torch.zeros(5, dtype=torch.long)),
        x,
        hint="at position 0 every angle is 0, so cos = 1 and sin = 0: "
        "did you rotate by 0..seq-1 instead of token_positions?",
    )


def test_shape_and_dtype(submission):
    """x (2, 3, 5, 8) with positions (5,) gives (2, 3, 5, 8), in x's dtype."""
    x = torch.randn(2, 3, 5, 8)
    out = submission.apply_rope(x, torch.arange(5))
    expect(isinstance(out, torch.Tensor), "apply_rope must return a torch.Tensor")
    expect(
        tuple(out.shape) == (2, 3, 5, 8), f"the output has shape {tuple(out.shape)}; expected (2, 3, 5, 8)"
    )
    expect(out.dtype == torch.float32, f"the output has dtype {out.dtype}; expected torch.float32")
    half = submission.apply_rope(x.to(torch.bfloat16), torch.arange(5))
    expect(
        half.dtype == torch.bfloat16,
        f"for a bfloat16 x the output has dtype {half.dtype}; expected torch.bfloat16",
        hint="compute in float32, then cast the result back with .to(x.dtype)",
    )


def test_relative_position(submission):
    """q . k is the same for (query at 5, key at 2) and (query at 103, key at 100): only m - n counts."""
    q_and_k = torch.randn(2, 16)  # row 0: a query, row 1: a key
    near = submission.apply_rope(q_and_k, torch.tensor([5, 2]))
    far = submission.apply_rope(q_and_k, torch.tensor([103, 100]))
    assert_close(
        far[0] @ far[1],
        near[0] @ near[1],
        what="q . k at positions (103, 100)",
        rtol=1e-4,
        atol=1e-4,
        hint="rotate every pair by pos * theta^(-2i/d): then q . k depends on m - n only",
    )


def test_kv_cache_step(submission):
    """A KV-cache step: the token at position 4, rotated alone, matches its row in the full sequence."""
    x = torch.randn(3, 5, 8)  # (heads, seq, d)
    full = submission.apply_rope(x, torch.arange(5))
    alone = submission.apply_rope(x[:, 4:, :], torch.tensor([4]))
    assert_close(
        alone,
        full[:, 4:, :],
        what="the last token rotated alone at position 4",
        rtol=1e-5,
        atol=1e-5,
        hint="use token_positions, not 0..seq-1: alone, the token is still at position 4",
    )


@pytest.mark.parametrize("d", [pytest.param(5, id="d-5"), pytest.param(3, id="d-3")])
def test_odd_dimension_raises(submission, d):
    """An odd d cannot be cut into pairs: ValueError."""
    with pytest.raises(ValueError):
        submission.apply_rope(torch.ones(2, d), torch.arange(2))
