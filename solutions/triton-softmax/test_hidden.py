"""Hidden tests of the fused Triton softmax: random ragged shapes against torch.softmax, edge row
lengths, large logits, -inf entries, strided rows, float16 precision, an unchanged input, the work
done by kernels, one launch, memory traffic, and (on a GPU host) device time.

The oracle is torch.softmax, on the trusted side, in float64 for the precision checks. Without a
GPU the submission's kernels run in Triton's interpreter, instrumented by the runner: accesses are
bounds-checked, launches and bytes counted (`perf.kernel_probe`, metrics launches and traffic).
"""

import math

import numpy as np
import pytest
import torch

from grader.testing import (
    Call,
    assert_close,
    call_unchanged,
    expect,
    kept_result,
    shrink,
    tolerance,
    view_in_runner,
)

PAD_WITH_ZERO = (
    "the padded lanes were counted in the sum: load the tail with other=-float('inf'), whose exp is 0, "
    "not other=0.0"
)
NO_MAX = (
    "subtract the row's max before exp: exp overflows float32 past 88.7, softmax(x) = softmax(x - max(x))"
)
IGNORES_STRIDE = (
    "the rows were read n_cols elements apart: row i of x starts x.stride(0) elements after row i - 1 "
    "(pass x.stride(0) to the kernel, and the output's own stride for the output)"
)
TAIL = (
    "BLOCK_SIZE must cover the whole row (triton.next_power_of_2(n_cols)), with the lanes past n_cols "
    "masked off in the load (other=-inf) and in the store"
)
FLOAT32_OUT = "allocate the output with x's dtype: the store rounds the float32 results to it"

HALF_MIN_NORMAL = 2.0**-14  # float16: 10 bits of mantissa, normal numbers from 2^-14


def randn(rng, *shape, scale=1.0, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).to(dtype)


def oracle(x):
    """torch.softmax in float64, rounded once to x's dtype."""
    return torch.softmax(x.double(), dim=-1).to(x.dtype)


def pad_with_zero(x):
    """What a kernel that pads the tail lanes with 0.0 (instead of -inf) returns for x."""
    xf = x.double()
    n_cols = x.shape[-1]
    pad = 2 ** math.ceil(math.log2(n_cols)) - n_cols
    m = xf.max(dim=-1, keepdim=True).values
    if pad:
        m = m.clamp_min(0.0)
    e = (xf - m).exp()
    return (e / (e.sum(dim=-1, keepdim=True) + pad * (-m).exp())).to(x.dtype)


def mistakes(x):
    found = {}
    if x.shape[-1] & (x.shape[-1] - 1):  # not a power of two: padded lanes exist
        found[PAD_WITH_ZERO] = pad_with_zero(x)
    return found


def packed_rows(wide, start, n_rows, n_cols):
    """What a kernel that steps n_cols elements from row to row reads of wide[:, start:start + n_cols]."""
    return wide.reshape(-1)[start : start + n_rows * n_cols].reshape(n_rows, n_cols)


def in_runner(fn, wide, start, n_cols):
    """wide[:, start:start + n_cols], made inside the runner: a view whose rows are wide.stride(0)
    elements apart (a tensor sent as an argument arrives contiguous)."""
    return view_in_runner(fn, wide, ("narrow", (1, start, n_cols)))


def check_dtype(out, dtype):
    expect(isinstance(out, torch.Tensor), "softmax must return a torch.Tensor")
    name = str(dtype).removeprefix("torch.")
    expect(out.dtype == dtype, f"a {name} input must give a {name} output", hint=FLOAT32_OUT)


# ---------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.float32, id="float32"), pytest.param(torch.float16, id="float16")]
)
def test_random_shapes(submission, seed, dtype):
    """Random ragged shapes against torch.softmax; a failure is reduced to the smallest failing shape."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        x = randn(rng, sizes["rows"], sizes["cols"], scale=3.0, dtype=dtype)
        out = submission.softmax(x)
        check_dtype(out, dtype)
        assert_close(
            out,
            oracle(x),
            what=f"softmax(x) for x of shape ({sizes['rows']}, {sizes['cols']})",
            **tolerance(dtype),
            misconceptions=mistakes(x),
            hint=TAIL,
        )

    shrink(check, {"rows": 9, "cols": 150}, seed=seed, minimum={"rows": 1, "cols": 1})


@pytest.mark.parametrize(
    "n_cols",
    [
        pytest.param(1, id="one-column"),
        pytest.param(2, id="two-columns"),
        pytest.param(64, id="power-of-two"),
        pytest.param(129, id="one-past-a-power-of-two"),
        pytest.param(1000, id="a-thousand"),
    ],
)
def test_row_lengths(submission, rng, n_cols):
    """Row lengths at the edges of a block: 1 (every output is 1), powers of two, one past one."""
    x = randn(rng, 5, n_cols, scale=2.0)
    assert_close(
        submission.softmax(x),
        oracle(x),
        what=f"softmax(x) for rows of {n_cols}",
        misconceptions=mistakes(x),
        hint=TAIL,
    )


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("scale-100", id="logits-in-the-hundreds"),
        pytest.param("shift-1000", id="rows-shifted-by-1000"),
        pytest.param("float16-extremes", id="float16-near-65504"),
    ],
)
def test_large_logits(submission, rng, case):
    """Large logits: exp(x) overflows, exp(x - max) does not; the softmax of a row shifted by a
    constant is the softmax of the row."""
    if case == "scale-100":
        x = randn(rng, 6, 50, scale=100.0)
    elif case == "shift-1000":
        x = randn(rng, 6, 50) + torch.tensor([0.0, 1000.0, -1000.0, 500.0, 90.0, -90.0]).unsqueeze(-1)
    else:
        x = randn(rng, 6, 50, scale=3.0) + torch.tensor([60000.0, -60000.0, 0.0, 65000.0, 1e4, -1e4])[:, None]
        x[:, ::7] = torch.tensor([65504.0, -65504.0, 1.0, 65504.0, -1e4, 1e4])[:, None]
        x = x.half()
    out = submission.softmax(x)
    check_dtype(out, x.dtype)
    expect(
        bool(torch.isfinite(out).all()),
        "the output has inf or NaN values for large logits",
        hint=NO_MAX,
    )
    assert_close(
        out, oracle(x), what="softmax(x) for large logits", **tolerance(x.dtype), misconceptions=mistakes(x)
    )


def test_minus_inf_entries(submission, rng):
    """Rows with some entries equal to -inf (masked logits): those get exactly 0, the rest the
    softmax of the finite entries."""
    x = randn(rng, 7, 45, scale=2.0)
    x[:, ::3] = -float("inf")
    x[2, :44] = -float("inf")  # one finite entry: probability 1
    x[5, :] = -float("inf")
    x[5, 4] = 1.0
    out = submission.softmax(x)
    check_dtype(out, torch.float32)
    expect(
        bool(torch.isfinite(out).all()),
        "the output has inf or NaN values for rows with -inf entries",
        hint="-inf entries have exp(-inf - max) = 0: with the max taken over the row, nothing else changes",
    )
    expect(
        bool((out[torch.isinf(x)] == 0).all()),
        "entries equal to -inf must get probability exactly 0",
    )
    assert_close(out, oracle(x), what="softmax(x) with -inf entries", misconceptions=mistakes(x))


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param((17, 500, 3, 257, torch.float32), id="float32-offset-3"),
        pytest.param((9, 1024, 512, 512, torch.float16), id="float16-right-half"),
        pytest.param((11, 130, 1, 7, torch.float32), id="short-rows-far-apart"),
    ],
)
def test_strided_rows(submission, rng, layout):
    """x = wide[:, a:a + n] of a wider tensor: rows x.stride(0) elements apart, read in place; the
    output is a new contiguous tensor."""
    n_rows, width, start, n_cols, dtype = layout
    wide = randn(rng, n_rows, width, scale=2.0, dtype=dtype)
    x = wide[:, start : start + n_cols]
    view = in_runner(submission.softmax, wide, start, n_cols)
    kept = kept_result(submission.softmax, view)
    out = kept.read_back()
    check_dtype(out, dtype)
    assert_close(
        out,
        oracle(x),
        what="softmax of rows taken from a wider tensor",
        **tolerance(dtype),
        misconceptions={IGNORES_STRIDE: oracle(packed_rows(wide, start, n_rows, n_cols)), **mistakes(x)},
    )
    expect(kept.call("is_contiguous") is True, "the output of softmax must be a contiguous tensor")


def test_float16_rounded_once(submission, rng):
    """float16 results are within one float16 unit in the last place of the exact softmax (computed
    in float32 and rounded once by the store)."""
    x = randn(rng, 16, 200, scale=4.0, dtype=torch.float16)
    out = submission.softmax(x)
    check_dtype(out, torch.float16)
    exact = torch.softmax(x.double(), dim=-1)
    assert_close(out, exact.half(), **tolerance(torch.float16), misconceptions=mistakes(x))
    # the spacing of float16's numbers at each exact value (constant below the smallest normal)
    ulp = torch.pow(2.0, torch.floor(torch.log2(exact.clamp_min(HALF_MIN_NORMAL))) - 10)
    worst = float(((out.double() - exact).abs() / ulp).max())
    expect(
        worst <= 1.0,
        "the float16 output is off by more than one unit in the last place somewhere: compute in "
        "float32 inside the kernel and let the store round once",
        detail=f"worst error {worst:.2f} units in the last place",
    )


def test_input_unchanged(submission, rng):
    """softmax leaves x as it was: the kernel writes only to the output."""
    x = randn(rng, 9, 77, scale=2.0)
    got = call_unchanged(
        submission.softmax,
        x,
        names=("x",),
        what="softmax",
        hint="allocate the output with torch.empty and store into it, never into x",
    )
    expect(isinstance(got, torch.Tensor), "softmax must return a torch.Tensor")


def test_kernels_do_the_work(submission, perf):
    """The work is done by Triton kernels: at least one launch, which loads the whole input and
    stores the whole output."""
    x = torch.from_numpy(np.random.default_rng(7).standard_normal((8, 96), dtype=np.float32))
    figures = perf.kernel_probe(Call("softmax", x))
    nbytes = x.numel() * x.element_size()
    expect(figures["launches"] >= 1, "softmax launched no Triton kernel")
    expect(
        figures["loaded_bytes"] >= nbytes,
        "the kernels did not load the whole input: the softmax must be computed by your kernel",
    )
    expect(
        figures["stored_bytes"] >= nbytes,
        "the kernels did not store the whole output: the softmax must be computed by your kernel",
    )


# ---------------------------------------------------------------------------- performance

# 48 rows of 700 float16 columns (a block of 1024). Counted in the interpreter: the reference
# makes 1 launch and moves 2 x 48 x 700 x 2 bytes; three kernels (max; exp and sum into a float32
# buffer; divide) make 3 launches and move 3.5x the bytes; a kernel that loads its row twice moves
# 1.5x. The figures are exact counts, not timings.


def traffic_call(rng):
    return Call("softmax", randn(rng, 48, 700, scale=3.0, dtype=torch.float16))


@pytest.mark.performance
def test_one_launch(perf):
    """One kernel launch per call (the reference's count), on 48 rows of 700 float16 columns."""
    perf.measure(
        "launches",
        traffic_call,
        check=lambda a, e: assert_close(a, e, **tolerance(torch.float16)),
        hint="fuse the max, the exponentials, the sum and the division into one kernel",
    )


@pytest.mark.performance
def test_memory_traffic(perf):
    """The bytes loaded and stored by the kernels, against the reference's (the row read once, the
    output written once), on 48 rows of 700 float16 columns."""
    perf.measure(
        "traffic",
        traffic_call,
        check=lambda a, e: assert_close(a, e, **tolerance(torch.float16)),
        hint="load each row once and keep it in registers; no intermediate buffers; store the output "
        "once, in x's dtype",
    )


@pytest.mark.performance
def test_speed(perf):
    """Device time on a 4096 x 4096 float32 input, against the reference's (GPU hosts only)."""

    def make(rng):
        return Call("softmax", torch.from_numpy(rng.standard_normal((4096, 4096), dtype=np.float32)))

    perf.measure(
        "speed",
        make,
        check=lambda a, e: assert_close(a, e, **tolerance(torch.float32)),
        hint="one launch, each row read once and written once; num_warps 8 for blocks of 4096",
    )
