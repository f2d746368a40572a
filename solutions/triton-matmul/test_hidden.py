"""Hidden tests for triton-matmul: random shapes and block sizes against the float64 product, every
group size, edge shapes, float16 accumulation, non-contiguous inputs made in the runner, input
checks, the kernel doing the work, and the kernel figures (memory traffic, the DRAM model) and
device speed."""

import math

import numpy as np
import pytest
import torch

from grader.testing import Call, assert_close, call_unchanged, expect, shrink, view_in_runner

RAGGED_HINT = (
    "mask every edge: rows past M and columns past N on the loads and the store, and the positions "
    "past K (offs_k < K - k * BLOCK_K) on the loads of both A and B, with other=0.0"
)
GRID_HINT = (
    "one program per tile: a 1-D grid of cdiv(M, block_m) * cdiv(N, block_n) programs, each mapped to "
    "its tile by the grouped formula, with group_size_m = min(num_pid_m - first_pid_m, GROUP_M)"
)
F16_ACCUMULATOR = (
    "accumulated in float16? Keep the accumulator in float32 (tl.zeros(..., dtype=tl.float32), "
    "acc = tl.dot(a, b, acc)) and convert to C's dtype once, before the store"
)
ASSUMED_CONTIGUOUS = (
    "read a transposed or sliced input as if it were contiguous? Pass the tensors' own strides "
    "(a.stride(0), a.stride(1), b.stride(0), b.stride(1)) and address every element through them"
)
STRIDES_HINT = (
    "address every element through the strides of the tensor given: a.stride(0), a.stride(1), "
    "b.stride(0), b.stride(1), none of them assumed"
)
FLOAT16_HINT = (
    "accumulate in float32 (tl.zeros(..., dtype=tl.float32), acc = tl.dot(a, b, acc)) and round to "
    "float16 once, at the store"
)
K_STEP_HINT = (
    "move the pointers one step along K by BLOCK_K * stride_ak for A and BLOCK_K * stride_bk for B "
    "(rows of B, not elements)"
)
RETURNED_FLOAT32 = "returned float32? Allocate C with a's dtype; convert the accumulator before the store"


def randn(rng, *shape, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)).to(dtype)


def exact(a, b):
    """The product in float64: the oracle."""
    return a.double() @ b.double()


def float32_tolerance(k):
    """As the lesson states: enough for TF32 (tl.dot's default for float32 on a GPU)."""
    return {"rtol": 3e-3, "atol": 3e-3 * math.sqrt(k)}


FLOAT16_TOLERANCE = {"rtol": 1e-3, "atol": 1e-3}


def float16_accumulated(a, b, block_k):
    """What a float16 accumulator gives (the sum rounded to float16 after every step of BLOCK_K)."""
    acc = torch.zeros(a.shape[0], b.shape[1], dtype=torch.float16)
    for k in range(0, a.shape[1], block_k):
        acc = (acc.float() + exact(a[:, k : k + block_k], b[k : k + block_k]).float().half().float()).half()
    return acc


def assumed_contiguous(base, offset, rows, cols):
    """What a kernel that assumes a contiguous (rows, cols) matrix reads from a view of `base` that
    starts `offset` elements in: the flat memory, taken row after row."""
    flat = base.reshape(-1)[offset : offset + rows * cols]
    return flat.reshape(rows, cols) if flat.numel() == rows * cols else None


def check_product(got, a, b, *, what, hint=RAGGED_HINT, misconceptions=None):
    """got = a @ b in a's dtype, within the lesson's tolerance for that dtype."""
    expect(isinstance(got, torch.Tensor), "matmul must return a torch.Tensor")
    want = exact(a, b)
    if a.dtype == torch.float16:
        expect(
            got.dtype == torch.float16,
            "float16 inputs must give a float16 result",
            hint=RETURNED_FLOAT32,
        )
        assert_close(
            got,
            want.half(),
            **FLOAT16_TOLERANCE,
            what=what,
            hint=hint,
            misconceptions=misconceptions,
        )
    else:
        assert_close(
            got,
            want.float(),
            **float32_tolerance(a.shape[1]),
            what=what,
            hint=hint,
            misconceptions=misconceptions,
        )


# ---------------------------------------------------------------------------- shapes and blocks

BLOCKS = [
    pytest.param((16, 16, 16, 2), id="16x16x16-group2"),
    pytest.param((32, 16, 64, 3), id="32x16x64-group3"),
    pytest.param((16, 64, 32, 1), id="16x64x32-group1"),
    pytest.param((64, 32, 16, 8), id="64x32x16-group8"),
]


@pytest.mark.parametrize("blocks", BLOCKS)
def test_random_shapes(submission, seed, blocks):
    """Random ragged shapes with several block sizes and groups, against the exact product."""
    block_m, block_n, block_k, group_m = blocks

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        a, b = randn(rng, sizes["m"], sizes["k"]), randn(rng, sizes["k"], sizes["n"])
        check_product(
            submission.matmul(a, b, block_m=block_m, block_n=block_n, block_k=block_k, group_m=group_m),
            a,
            b,
            what=f"matmul(a, b) for a of shape {tuple(a.shape)}, b of shape {tuple(b.shape)}",
            hint=RAGGED_HINT + "; " + K_STEP_HINT,
        )

    shrink(check, {"m": 45, "n": 70, "k": 37}, seed=seed, minimum={"m": 1, "n": 1, "k": 1})


EDGES = [
    pytest.param((1, 1, 1, 16, 16, 16), id="1x1x1"),
    pytest.param((1, 37, 5, 16, 16, 16), id="one-row"),
    pytest.param((37, 1, 70, 16, 16, 32), id="one-column"),
    pytest.param((5, 6, 1, 16, 16, 16), id="k-is-1"),
    pytest.param((20, 24, 10, 16, 16, 64), id="block-k-larger-than-k"),
    pytest.param((64, 64, 64, 32, 32, 32), id="exact-multiples"),
    pytest.param((33, 17, 65, 32, 16, 32), id="one-past-the-blocks"),
]


@pytest.mark.parametrize("case", EDGES)
def test_edge_shapes(submission, rng, case):
    """Matrices of one row or column, K = 1, block_k larger than K, exact multiples of the blocks."""
    m, n, k, block_m, block_n, block_k = case
    a, b = randn(rng, m, k), randn(rng, k, n)
    check_product(
        submission.matmul(a, b, block_m=block_m, block_n=block_n, block_k=block_k),
        a,
        b,
        what=f"matmul(a, b) for a of shape {(m, k)}, b of shape {(k, n)} with blocks {block_m} x {block_n} "
        f"x {block_k}",
        hint=RAGGED_HINT + "; size the grid with cdiv",
    )


@pytest.mark.parametrize("group_m", [1, 2, 3, 8, 16])
def test_group_sizes(submission, rng, group_m):
    """7 tile rows by 5 tile columns (16 x 16 tiles): every group size gives the same product, also
    when the last group is short and when group_m exceeds the tile rows."""
    a, b = randn(rng, 109, 16), randn(rng, 16, 80)  # one step along K: the order alone
    check_product(
        submission.matmul(a, b, block_m=16, block_n=16, block_k=16, group_m=group_m),
        a,
        b,
        what=f"matmul(a, b) for a of shape (109, 16), b of shape (16, 80) with group_m={group_m}",
        hint=GRID_HINT,
    )


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.float32, id="float32"), pytest.param(torch.float16, id="float16")]
)
def test_dtypes(submission, rng, dtype):
    """A ragged product in float32 and in float16: C has the inputs' dtype."""
    a, b = randn(rng, 50, 72, dtype=dtype), randn(rng, 72, 41, dtype=dtype)
    got = submission.matmul(a, b, block_m=32, block_n=32, block_k=32)
    expect(isinstance(got, torch.Tensor), "matmul must return a torch.Tensor")
    expect(got.dtype == dtype, "C must have the dtype of the inputs", hint=RETURNED_FLOAT32)
    half = dtype == torch.float16
    check_product(
        got,
        a,
        b,
        what="matmul(a, b)",
        hint=FLOAT16_HINT if half else RAGGED_HINT,
        misconceptions={F16_ACCUMULATOR: float16_accumulated(a, b, 32)} if half else None,
    )


def test_float16_accumulation(submission, rng):
    """A float16 product over K = 512 in steps of 16: accumulated in float32, it is the exact product
    rounded once; a float16 accumulator, rounded 32 times, is not."""
    a, b = randn(rng, 40, 512, dtype=torch.float16), randn(rng, 512, 36, dtype=torch.float16)
    got = submission.matmul(a, b, block_m=32, block_n=32, block_k=16)
    check_product(
        got,
        a,
        b,
        what="matmul(a, b) in float16 for K = 512",
        hint=FLOAT16_HINT,
        misconceptions={F16_ACCUMULATOR: float16_accumulated(a, b, 16)},
    )


# ---------------------------------------------------------------------------- strides


@pytest.mark.parametrize("which", ["b", "a", "both"])
def test_transposed_inputs(submission, rng, which):
    """Transposed views made in the runner: b = w.T (nn.Linear's layout), a = x.T, or both."""
    m, n, k = 30, 44, 52
    x, w = randn(rng, k, m), randn(rng, n, k)  # a = x.T is (m, k), b = w.T is (k, n)
    a_plain, b_plain = randn(rng, m, k), randn(rng, k, n)
    a_sent = view_in_runner(submission.matmul, x, ("t", ())) if which in ("a", "both") else a_plain
    b_sent = view_in_runner(submission.matmul, w, ("t", ())) if which in ("b", "both") else b_plain
    a = x.T if which in ("a", "both") else a_plain
    b = w.T if which in ("b", "both") else b_plain
    wrong_a = assumed_contiguous(x, 0, m, k) if which in ("a", "both") else a_plain
    wrong_b = assumed_contiguous(w, 0, k, n) if which in ("b", "both") else b_plain
    check_product(
        submission.matmul(a_sent, b_sent, block_m=16, block_n=32, block_k=16),
        a,
        b,
        what=f"matmul(a, b) with {'a and b' if which == 'both' else which} transposed",
        hint=STRIDES_HINT,
        misconceptions={ASSUMED_CONTIGUOUS: exact(wrong_a, wrong_b).float()},
    )


def test_strided_views(submission, rng):
    """Slices made in the runner: a = big[3:43, 5:55] (an offset, rows 64 apart), b = tall[::2] (every
    other row), and a column step a = wide[:, ::2]."""
    big, tall = randn(rng, 48, 64), randn(rng, 100, 36)
    a_sent = view_in_runner(submission.matmul, big, ("narrow", (0, 3, 40)), ("narrow", (1, 5, 50)))
    b_sent = view_in_runner(submission.matmul, tall, ("view", (50, 2, 36)), ("select", (1, 0)))
    a, b = big[3:43, 5:55], tall[::2]
    wrong = exact(assumed_contiguous(big, 3 * 64 + 5, 40, 50), assumed_contiguous(tall, 0, 50, 36))
    check_product(
        submission.matmul(a_sent, b_sent, block_m=16, block_n=16, block_k=16),
        a,
        b,
        what="matmul(big[3:43, 5:55], tall[::2])",
        hint=STRIDES_HINT,
        misconceptions={ASSUMED_CONTIGUOUS: wrong.float()},
    )
    wide, b2 = randn(rng, 24, 60), randn(rng, 30, 20)
    a2_sent = view_in_runner(submission.matmul, wide, ("view", (24, 30, 2)), ("select", (2, 0)))
    check_product(
        submission.matmul(a2_sent, b2, block_m=16, block_n=16, block_k=16),
        wide[:, ::2],
        b2,
        what="matmul(wide[:, ::2], b): a with a column step of 2",
        hint=STRIDES_HINT,
        misconceptions={ASSUMED_CONTIGUOUS: exact(assumed_contiguous(wide, 0, 24, 30), b2).float()},
    )


def test_inputs_unchanged(submission, rng):
    """matmul leaves a and b as they were."""
    a, b = randn(rng, 20, 33), randn(rng, 33, 18)
    got = call_unchanged(
        submission.matmul,
        a,
        b,
        names=("a", "b"),
        what="matmul",
        hint="the kernel only reads a and b: store into the new tensor C only",
        block_m=16,
        block_n=16,
        block_k=16,
    )
    # only the inputs here: the values are checked by the other tests
    expect(isinstance(got, torch.Tensor), "matmul must return a torch.Tensor")


# ---------------------------------------------------------------------------- input checks

BAD = [
    pytest.param("three-dim", id="a-3-d-input"),
    pytest.param("b-one-dim", id="b-1-d-input"),
    pytest.param("inner", id="inner-dims-differ"),
    pytest.param("half-float", id="float16-with-float32"),
    pytest.param("bfloat16", id="bfloat16"),
    pytest.param("int", id="int32"),
]


@pytest.mark.parametrize("case", BAD)
def test_bad_inputs_raise(submission, case):
    """Inputs that are not 2-D, inner dimensions that differ, mixed dtypes, or dtypes other than
    float16 and float32 raise ValueError."""
    a, b = torch.ones(6, 4), torch.ones(4, 5)
    if case == "three-dim":
        a = torch.ones(2, 6, 4)
    elif case == "b-one-dim":
        b = torch.ones(4)
    elif case == "inner":
        a = torch.ones(6, 3)
    elif case == "half-float":
        a = a.half()
    elif case == "bfloat16":
        a, b = a.bfloat16(), b.bfloat16()
    else:
        a, b = a.int(), b.int()
    try:
        submission.matmul(a, b)
    except ValueError:
        return
    pytest.fail(f"matmul returned normally for the case {case!r}; it must raise ValueError")


# ---------------------------------------------------------------------------- the kernel does it


def test_kernel_does_the_work(submission, perf):
    """The product is computed by a Triton kernel: at least one launch, which loads at least the bytes
    of a and b and stores at least those of C."""
    rng = np.random.default_rng(11)
    a, b = randn(rng, 40, 30), randn(rng, 30, 50)
    figures = perf.kernel_probe(Call("matmul", a, b, block_m=16, block_n=16, block_k=16))
    expect(figures["launches"] >= 1, "matmul launched no Triton kernel: the product must be computed by one")
    expect(
        figures["loaded_bytes"] >= (a.numel() + b.numel()) * 4,
        "the kernels loaded fewer bytes than a and b hold: the product must be computed by the kernel",
    )
    expect(
        figures["stored_bytes"] >= 40 * 50 * 4,
        "the kernels stored fewer bytes than C holds: the kernel must write every element of C",
    )


# ---------------------------------------------------------------------------- performance


def float32_check(k):
    def check(actual, expected):
        assert_close(actual, expected, **float32_tolerance(k), what="the measured product")

    return check


@pytest.mark.performance
def test_memory_traffic(perf):
    """Bytes loaded and stored by the kernel for 100 x 70 @ 70 x 150 (32 x 32 x 32 blocks), against the
    reference's.

    Measured: the reference moves 368,000 bytes; a kernel that loads a (32, all of N) slice of B for
    every row of C, 4.3 MB (11.7x); the tutorial's modulo-wrapped loads about 1.15x.
    """

    def make(rng):
        a = torch.from_numpy(rng.standard_normal((100, 70), dtype=np.float32))
        b = torch.from_numpy(rng.standard_normal((70, 150), dtype=np.float32))
        return Call("matmul", a, b, block_m=32, block_n=32, block_k=32)

    perf.measure(
        "traffic",
        make,
        check=float32_check(70),
        hint="each program must compute a whole BLOCK_M x BLOCK_N tile of C, so that every tile of A and B "
        "it loads serves BLOCK_N (or BLOCK_M) outputs",
    )


LAUNCH_ORDER_HINT = (
    "number the tiles in the grouped order, on a 1-D grid: a wave of consecutive programs should cover a "
    "compact block of tiles (GROUP_M tile rows by a few columns), not one row or one column of tiles"
)


def launch_order_call(m, n):
    def make(rng):
        a = torch.from_numpy(rng.standard_normal((m, 256), dtype=np.float32))
        b = torch.from_numpy(rng.standard_normal((256, n), dtype=np.float32))
        return Call("matmul", a, b, block_m=32, block_n=32, block_k=256, group_m=4)

    return make


@pytest.mark.performance
def test_launch_order_wide(perf):
    """DRAM traffic in the lesson's model (waves of 16 programs, 128-byte lines shared within a wave) for
    128 x 256 @ 256 x 512 in float32: a grid of 4 x 16 tiles of 32 x 32, group_m = 4.

    Measured: the reference 1.25 to 1.37 MiB (the 128-byte alignment of a and b moves it by up to 10%);
    the row-major order 2.37 MiB (1.73x to 1.9x).
    """
    perf.measure("dram_wide", launch_order_call(128, 512), check=float32_check(256), hint=LAUNCH_ORDER_HINT)


@pytest.mark.performance
def test_launch_order_tall(perf):
    """DRAM traffic in the lesson's model for 512 x 256 @ 256 x 128 in float32: a grid of 16 x 4 tiles of
    32 x 32, group_m = 4.

    Measured: the reference 1.25 to 1.37 MiB; the column-major order (a 2-D grid with the tile row on axis
    0) 2.5 MiB (1.82x to 2.0x); GROUP_M = 8 whatever group_m says, 1.63 MiB (1.2x to 1.3x).
    """
    perf.measure("dram_tall", launch_order_call(512, 128), check=float32_check(256), hint=LAUNCH_ORDER_HINT)


@pytest.mark.performance
def test_speed(perf):
    """On a GPU host: 4096 x 4096 @ 4096 x 4096 in float16 with the default blocks, device time against
    the reference's."""

    def make(rng):
        a = torch.from_numpy(rng.standard_normal((4096, 4096), dtype=np.float32)).half()
        b = torch.from_numpy(rng.standard_normal((4096, 4096), dtype=np.float32)).half()
        return Call("matmul", a, b)

    def check(actual, expected):
        assert_close(actual, expected, rtol=1e-2, atol=1e-1, what="the measured product")

    perf.measure(
        "speed",
        make,
        check=check,
        hint="tile the product (tl.dot on float16 tiles, float32 accumulator), number the tiles in the "
        "grouped order, and launch with num_warps=8, num_stages=3",
    )
