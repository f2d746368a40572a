"""Public tests: the worked examples of the lesson, and a few small cases you can check by hand.

Run them with `grader test quantization quantization.py`.
"""

import torch

from grader.testing import assert_close, expect

HALF_UP = "rounded halves up (torch.floor(v + 0.5))? Use torch.round: halves go to the even neighbour"
BY_128 = "divided absmax by 128? The scale is absmax / 127 and the codes go from -127 to 127"
ZERO_SCALE = "scale 0 for the all-zero row? An all-zero row gets scale 1.0 (and codes 0): never 0 / 0"
WRONG_DIM = "one scale per column? Per output channel means one scale per ROW of W (absmax over dim 1)"
PER_TENSOR = "one scale for the whole tensor? per_channel=True asks for one scale per row"
SWAPPED = "nibbles swapped? Element 2i goes in the LOW nibble (bits 0-3), element 2i + 1 in the HIGH nibble"

W8 = torch.tensor([[1.984375, -1.0, 0.0078125, 0.0234375], [0.0, 0.0, 0.0, 0.0]])


def test_int8_worked_example(submission):
    """Per channel: row 0 has scale 1/64 and codes [127, -64, 0, 2] (ties to even); row 1 is all zeros."""
    q, scale = submission.quantize_int8(W8, per_channel=True)
    assert_close(
        scale,
        torch.tensor([0.015625, 1.0]),
        what="the scales",
        misconceptions={
            ZERO_SCALE: torch.tensor([0.015625, 0.0]),
            BY_128: torch.tensor([1.984375 / 128, 1.0]),
            WRONG_DIM: torch.tensor([1.984375, 1.0, 0.0078125, 0.0234375]) / 127,
            PER_TENSOR: torch.tensor(0.015625),
        },
    )
    assert_close(
        q,
        torch.tensor([[127, -64, 0, 2], [0, 0, 0, 0]], dtype=torch.int8),
        what="the int8 codes",
        misconceptions={
            HALF_UP: torch.tensor([[127, -64, 1, 2], [0, 0, 0, 0]], dtype=torch.int8),
            BY_128: torch.tensor([[127, -65, 1, 2], [0, 0, 0, 0]], dtype=torch.int8),
        },
    )


def test_int8_per_tensor(submission):
    """Per tensor: one 0-dim scale, 1.984375 / 127 = 1/64, for the whole matrix."""
    q, scale = submission.quantize_int8(W8, per_channel=False)
    assert_close(
        scale,
        torch.tensor(0.015625),
        what="the per-tensor scale (a 0-dim tensor)",
        misconceptions={BY_128: torch.tensor(1.984375 / 128)},
    )
    assert_close(
        q,
        torch.tensor([[127, -64, 0, 2], [0, 0, 0, 0]], dtype=torch.int8),
        what="the int8 codes",
        misconceptions={HALF_UP: torch.tensor([[127, -64, 1, 2], [0, 0, 0, 0]], dtype=torch.int8)},
    )
    assert_close(
        submission.dequantize_int8(q, scale),
        torch.tensor([[1.984375, -1.0, 0.0, 0.03125], [0.0, 0.0, 0.0, 0.0]]),
        what="dequantize_int8(q, scale)",
    )


def test_int4_worked_example(submission):
    """[-1.5, 0, 1.25, 6] in one group of 4: scale 0.5, zero point 3, codes [0, 3, 5, 15]."""
    w = torch.tensor([[-1.5, 0.0, 1.25, 6.0]])
    q, scale, zero = submission.quantize_int4(w, 4)
    assert_close(scale, torch.tensor([[0.5]]), what="the scale")
    assert_close(zero, torch.tensor([[3]], dtype=torch.uint8), what="the zero point")
    assert_close(
        q,
        torch.tensor([[0, 3, 5, 15]], dtype=torch.uint8),
        what="the int4 codes",
        misconceptions={HALF_UP: torch.tensor([[0, 3, 6, 15]], dtype=torch.uint8)},
    )
    assert_close(
        submission.dequantize_int4(q, scale, zero, 4),
        torch.tensor([[-1.5, 0.0, 1.0, 6.0]]),
        what="dequantize_int4(q, scale, zero_point, 4)",
        hint="(q - zero_point) * scale, subtracted in float32 (uint8 wraps around below 0)",
    )


def test_pack_worked_example(submission):
    """Codes [0, 3, 5, 15] pack to bytes [48, 245]: element 2i low nibble, 2i + 1 high nibble."""
    q = torch.tensor([[0, 3, 5, 15]], dtype=torch.uint8)
    packed = submission.pack_int4(q)
    assert_close(
        packed,
        torch.tensor([[48, 245]], dtype=torch.uint8),
        what="pack_int4(q)",
        misconceptions={SWAPPED: torch.tensor([[3, 95]], dtype=torch.uint8)},
    )
    assert_close(submission.unpack_int4(packed), q, what="unpack_int4(pack_int4(q))")


def test_int4_two_groups(submission):
    """Two rows, two groups of 2: every group has its own scale and zero point."""
    w = torch.tensor([[-1.0, 2.0, -0.5, 0.25], [3.0, -4.5, 0.0, 0.0]])
    q, scale, zero = submission.quantize_int4(w, 2)
    assert_close(scale, torch.tensor([[0.2, 0.05], [0.5, 1.0]]), what="the scales (one per group)")
    assert_close(zero, torch.tensor([[5, 10], [9, 0]], dtype=torch.uint8), what="the zero points")
    assert_close(q, torch.tensor([[0, 15, 0, 15], [15, 0, 0, 0]], dtype=torch.uint8), what="the int4 codes")


def test_odd_group_size_raises(submission):
    """group_size = 3 is odd: quantize_int4 raises ValueError."""
    try:
        submission.quantize_int4(torch.randn(2, 6), 3)
    except ValueError:
        return
    expect(False, "quantize_int4(w, 3) returned normally; an odd group size must raise ValueError")


def test_int4_matmul_small(submission):
    """x @ W_hat.T with the worked example's weight: [1, 1, 1, 1] gives -1.5 + 0 + 1 + 6 = 5.5."""
    packed = torch.tensor([[48, 245]], dtype=torch.uint8)
    zero = torch.tensor([[3]], dtype=torch.uint8)
    y = submission.int4_matmul(torch.ones(2, 4), packed, torch.tensor([[0.5]]), zero, 4)
    assert_close(y, torch.tensor([[5.5], [5.5]]), what="int4_matmul(x, packed, scale, zero_point, 4)")
