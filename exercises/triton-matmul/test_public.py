"""Public tests: small products, ragged edges, float16, a transposed weight, input checks and the
compile check.

Run them with `grader test triton-matmul triton_matmul.py`. Without a GPU, your kernel runs in
Triton's interpreter, where every load and store is checked against the tensors of its launch.
"""

import math

import numpy as np
import pytest
import torch

from grader.testing import Call, assert_close, expect, view_in_runner

RAGGED_HINT = (
    "mask every edge: rows past M and columns past N on the loads and the store, and the positions "
    "past K (offs_k < K - k * BLOCK_K) on the loads of both A and B, with other=0.0"
)
F16_ACCUMULATOR = (
    "accumulated in float16? Keep the accumulator in float32 (tl.zeros(..., dtype=tl.float32), "
    "acc = tl.dot(a, b, acc)) and convert to C's dtype once, before the store"
)
FLOAT16_HINT = (
    "accumulate in float32 (tl.zeros(..., dtype=tl.float32), acc = tl.dot(a, b, acc)) and round to "
    "float16 once, at the store"
)
ASSUMED_CONTIGUOUS = (
    "read a transposed or sliced input as if it were contiguous? Pass the tensors' own strides "
    "(a.stride(0), a.stride(1), b.stride(0), b.stride(1)) and address every element through them"
)


def randn(rng, *shape, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)).to(dtype)


def exact(a, b):
    """The product in float64: the oracle."""
    return a.double() @ b.double()


def float16_accumulated(a, b, block_k):
    """What a float16 accumulator gives (the sum rounded to float16 after every step of BLOCK_K)."""
    acc = torch.zeros(a.shape[0], b.shape[1], dtype=torch.float16)
    for k in range(0, a.shape[1], block_k):
        acc = (acc.float() + exact(a[:, k : k + block_k], b[k : k + block_k]).float().half().float()).half()
    return acc


def float32_tolerance(k):
    """Enough for TF32 (tl.dot's default for float32 on a GPU): inputs rounded to 10 mantissa bits."""
    return {"rtol": 3e-3, "atol": 3e-3 * math.sqrt(k)}


def wrong_tiles(got, want, block_m, block_n, tol):
    """The tiles of C (tile row, tile column) where got differs from want: for the detail."""
    bad = ((got.double() - want).abs() > tol["atol"] + tol["rtol"] * want.abs()) | ~torch.isfinite(got)
    tiles = sorted({(int(i) // block_m, int(j) // block_n) for i, j in bad.nonzero().tolist()})
    return ", ".join(str(t) for t in tiles[:12]) + (" ..." if len(tiles) > 12 else "")


def test_compiles_for_h100(submission, perf):
    """After a float16 call with the default blocks (96 x 64 @ 64 x 80), every kernel launched compiles
    for an H100 (sm_90) with no register spills, and the kernel doing tl.dot uses the tensor cores."""
    rng = np.random.default_rng(3)
    a, b = randn(rng, 96, 64, dtype=torch.float16), randn(rng, 64, 80, dtype=torch.float16)
    figures = perf.kernel_probe(Call("matmul", a, b))
    built = perf.compile_kernels()
    expect(len(built) >= 1, "no Triton kernel was launched: matmul must launch one")
    for kernel in built:
        expect(
            not kernel["error"],
            f"kernel {kernel['kernel']} does not compile for an H100 (sm_90)",
            detail=kernel["error"],
        )
        expect(
            kernel["spill_bytes"] == 0,
            f"kernel {kernel['kernel']} spills registers to local memory on an H100",
            detail=f"{kernel['spill_bytes']} bytes of spills, {kernel['registers']} registers",
            hint="launch with num_warps=8: a 128 x 128 float32 accumulator is 64 registers per thread over "
            "256 threads; with 4 warps it needs 128 per thread, and spills",
        )
    if figures["dot_flops"] > 0:
        expect(
            any(kernel["tensor_cores"] for kernel in built),
            "the kernel's tl.dot does not use the tensor cores for float16 inputs",
            detail=", ".join(f"{k['kernel']}: tensor_cores={k['tensor_cores']}" for k in built),
            hint="give tl.dot the float16 tiles as loaded, with a float32 accumulator: converting them to "
            "float32 with input_precision='ieee' runs on the ordinary float32 units, many times slower",
        )


def test_worked_example(submission):
    """[[1, 2, 3], [4, 5, 6]] @ [[1, 0], [0, 1], [1, 1]] = [[4, 5], [10, 11]], with the default blocks."""
    a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out = submission.matmul(a, b)
    expect(isinstance(out, torch.Tensor), "matmul must return a torch.Tensor")
    assert_close(
        out,
        torch.tensor([[4.0, 5.0], [10.0, 11.0]]),
        what="matmul(a, b) for a 2 x 3 and a 3 x 2 matrix",
        hint=RAGGED_HINT,
    )


def test_ragged_edges(submission):
    """70 x 50 @ 50 x 90 with 32 x 32 x 32 blocks: the last tile row has 6 rows, the last tile column
    26 columns, the second K step 18 positions; 3 tile rows, so the last group of GROUP_M = 8 is short."""
    rng = np.random.default_rng(0)
    a, b = randn(rng, 70, 50), randn(rng, 50, 90)
    got = submission.matmul(a, b, block_m=32, block_n=32, block_k=32)
    want = exact(a, b)
    tol = float32_tolerance(50)
    hint = RAGGED_HINT + "; size the grid with cdiv, and clamp the last group (group_size_m = min(...))"
    if isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == torch.float32:
        tiles = wrong_tiles(got, want, 32, 32, tol)
        expect(
            not tiles,
            "some 32 x 32 tiles of C are wrong or were never written",
            detail=f"wrong tiles (tile row, tile column): {tiles}",
            hint=hint,
        )
    assert_close(
        got, want.float(), **tol, what="matmul(a, b) for a of shape (70, 50), b of shape (50, 90)", hint=hint
    )


def test_float16(submission):
    """48 x 300 @ 300 x 40 in float16 (block_k = 16, so 19 steps along K): a float16 result, accumulated
    in float32 and rounded once."""
    rng = np.random.default_rng(1)
    a, b = randn(rng, 48, 300, dtype=torch.float16), randn(rng, 300, 40, dtype=torch.float16)
    out = submission.matmul(a, b, block_m=32, block_n=32, block_k=16)
    expect(isinstance(out, torch.Tensor), "matmul must return a torch.Tensor")
    expect(
        out.dtype == torch.float16,
        "float16 inputs must give a float16 result",
        detail=f"got {out.dtype}",
        hint="allocate C with a's dtype; the kernel converts the float32 accumulator once, before the store",
    )
    assert_close(
        out,
        exact(a, b).half(),
        rtol=1e-3,
        atol=1e-3,
        what="matmul(a, b) in float16",
        hint=FLOAT16_HINT,
        misconceptions={F16_ACCUMULATOR: float16_accumulated(a, b, 16)},
    )


def test_transposed_weight(submission):
    """x @ w.T for w of shape (40, 60), as nn.Linear computes it: b = w.T is a view with strides (1, 60),
    made inside the runner (a tensor sent as an argument arrives contiguous)."""
    rng = np.random.default_rng(2)
    x, w = randn(rng, 24, 60), randn(rng, 40, 60)
    w_t = view_in_runner(submission.matmul, w, ("t", ()))  # w.t(), a (60, 40) view of w, in the runner
    assert_close(
        submission.matmul(x, w_t, block_m=16, block_n=16, block_k=16),
        exact(x, w.T).float(),
        **float32_tolerance(60),
        what="matmul(x, w.T) for w of shape (40, 60)",
        misconceptions={ASSUMED_CONTIGUOUS: exact(x, w.reshape(60, 40)).float()},
        hint="address every element through the strides: b_ptr + k * b.stride(0) + n * b.stride(1), "
        "with the strides of the tensor given (here (1, 60)), never those of a contiguous matrix",
    )


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("one-dim", id="a-1-d-input"),
        pytest.param("inner", id="inner-dims-differ"),
        pytest.param("mixed", id="mixed-dtypes"),
        pytest.param("float64", id="float64"),
    ],
)
def test_bad_inputs_raise(submission, case):
    """Inputs that are not 2-D, inner dimensions that differ, mixed dtypes or float64 raise ValueError."""
    a, b = torch.ones(4, 3), torch.ones(3, 5)
    if case == "one-dim":
        a = torch.ones(3)
    elif case == "inner":
        b = torch.ones(4, 5)
    elif case == "mixed":
        b = b.half()
    else:
        a, b = a.double(), b.double()
    with pytest.raises(ValueError):
        submission.matmul(a, b)
