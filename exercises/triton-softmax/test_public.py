"""Public tests: the worked example, ragged rows, float16, strided rows and the compile check.

Run them with `grader test triton-softmax triton_softmax.py`. Without a GPU, your kernel runs in
Triton's interpreter, where every load and store is checked against the tensors of its launch.
"""

import math

import numpy as np
import pytest
import torch

from grader.testing import assert_close, expect, kept_result, view_in_runner

PAD_WITH_ZERO = (
    "the padded lanes were counted in the sum: load the tail with other=-float('inf'), whose exp is 0, "
    "not other=0.0"
)
NOT_NORMALISED = "the rows do not sum to 1: divide each exp(x - max) by the row's sum"
IGNORES_STRIDE = (
    "the rows were read n_cols elements apart: row i of x starts x.stride(0) elements after row i - 1 "
    "(pass x.stride(0) to the kernel, and the output's own stride for the output)"
)


def pad_with_zero(x):
    """What a kernel that pads the tail lanes with 0.0 (instead of -inf) returns for x."""
    xf = x.double()
    n_cols = x.shape[-1]
    pad = 2 ** math.ceil(math.log2(n_cols)) - n_cols
    m = xf.max(dim=-1, keepdim=True).values.clamp_min(0.0) if pad else xf.max(dim=-1, keepdim=True).values
    e = (xf - m).exp()
    return (e / (e.sum(dim=-1, keepdim=True) + pad * (-m).exp())).to(x.dtype)


def packed_rows(wide, start, n_rows, n_cols):
    """What a kernel that steps n_cols elements from row to row reads of wide[:, start:start + n_cols]."""
    return wide.reshape(-1)[start : start + n_rows * n_cols].reshape(n_rows, n_cols)


def in_runner(fn, wide, start, n_cols):
    """wide[:, start:start + n_cols], made inside the runner: a view whose rows are wide.stride(0)
    elements apart (a tensor sent as an argument arrives contiguous)."""
    return view_in_runner(fn, wide, ("narrow", (1, start, n_cols)))


def test_compiles_for_h100(submission, perf, device):
    """After a call on 37 x 300 float32 rows, every kernel launched so far compiles for an H100
    (sm_90) with no register spills."""
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((37, 300), dtype=np.float32))
    submission.softmax(x)
    built = perf.compile_kernels()
    if not built and device != "cpu":
        pytest.skip("on a GPU host the kernels are compiled, and checked, when they run")
    expect(len(built) >= 1, "no Triton kernel was launched: softmax must launch one")
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
            hint="each thread holds BLOCK_SIZE / (32 * num_warps) values of the row: keep num_warps at 4 "
            "or more (8 from blocks of 2048)",
        )


def test_worked_example(submission):
    """The lesson's row [1, 2, 3, 0.5, -1] (5 columns in a block of 8), and the same row reversed."""
    x = torch.tensor([[1.0, 2.0, 3.0, 0.5, -1.0], [-1.0, 0.5, 3.0, 2.0, 1.0]])
    want = torch.tensor([[0.0844, 0.2294, 0.6236, 0.0512, 0.0114], [0.0114, 0.0512, 0.6236, 0.2294, 0.0844]])
    assert_close(
        submission.softmax(x),
        want,
        rtol=0.0,
        atol=1e-4,
        what="softmax of the worked example",
        misconceptions={PAD_WITH_ZERO: pad_with_zero(x), NOT_NORMALISED: (x - 3.0).exp()},
    )


def test_ragged_rows(submission):
    """37 rows of 300 columns (a block of 512, so 212 lanes of every row masked off), float32,
    against torch.softmax."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((37, 300), dtype=np.float32) * 3.0)
    assert_close(
        submission.softmax(x),
        torch.softmax(x, dim=-1),
        what="softmax(x) for x of shape (37, 300)",
        misconceptions={PAD_WITH_ZERO: pad_with_zero(x)},
        hint="the rows here are 300 long: BLOCK_SIZE must cover the whole row (next_power_of_2(300) = 512), "
        "with the 212 lanes past the end masked off in the load (other=-inf) and in the store",
    )


def test_float16(submission):
    """A float16 input (16 rows of 100) gives a float16 output, computed in float32 inside."""
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((16, 100), dtype=np.float32) * 4.0).half()
    out = submission.softmax(x)
    expect(isinstance(out, torch.Tensor), "softmax must return a torch.Tensor")
    expect(
        out.dtype == torch.float16,
        "a float16 input must give a float16 output",
        detail=f"got {out.dtype}",
        hint="allocate the output with x's dtype: the store rounds the float32 results to it",
    )
    assert_close(
        out,
        torch.softmax(x.float(), dim=-1).half(),
        rtol=1e-3,
        atol=1e-5,
        what="softmax(x) in float16",
        misconceptions={PAD_WITH_ZERO: pad_with_zero(x)},
    )


def test_strided_rows(submission):
    """x = wide[:, 37:337] of a (24, 400) tensor: 300 columns, rows 400 elements apart. The output
    is a new contiguous (24, 300) tensor."""
    rng = np.random.default_rng(2)
    wide = torch.from_numpy(rng.standard_normal((24, 400), dtype=np.float32) * 2.0)
    x = wide[:, 37:337]
    view = in_runner(submission.softmax, wide, 37, 300)
    out = submission.softmax(view)
    assert_close(
        out,
        torch.softmax(x, dim=-1),
        what="softmax(wide[:, 37:337])",
        misconceptions={
            IGNORES_STRIDE: torch.softmax(packed_rows(wide, 37, 24, 300), dim=-1),
            PAD_WITH_ZERO: pad_with_zero(x),
        },
    )
    kept = kept_result(submission.softmax, view)
    expect(kept.call("is_contiguous") is True, "the output of softmax must be a contiguous tensor")
