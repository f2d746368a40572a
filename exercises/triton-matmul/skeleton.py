"""A tiled matrix multiply in Triton: complete the kernel and its wrapper. Read README.md first.

Save your file as triton_matmul.py. Use the classic Triton API only (tl.program_id, tl.arange,
tl.load / tl.store with mask= and other=, tl.dot, tl.zeros, tl.cdiv, tl.constexpr): no
make_block_ptr, no tensor descriptors, no autotune.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def matmul_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_cn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """Compute one BLOCK_M x BLOCK_N tile of C = A @ B (A is M x K, B is K x N, C is M x N).

    - The grid is 1-D, one program per tile: cdiv(M, BLOCK_M) * cdiv(N, BLOCK_N) programs.
      Program `pid = tl.program_id(0)` computes tile (pid_m, pid_n) in the grouped order: groups
      of GROUP_M tile rows; within a group, consecutive programs go down a column of tiles
      (pid_m fastest), then on to the next column; the last group may have fewer than GROUP_M
      rows. (The formula is in README.md, "The kernel, step by step", step 1.)
    - Element (i, j) of a matrix X lives at x_ptr + i * stride_xi + j * stride_xj: use the
      strides for every address, never assume a contiguous layout.
    - Loop over K in steps of BLOCK_K; accumulate tl.dot of the (BLOCK_M, BLOCK_K) tile of A and
      the (BLOCK_K, BLOCK_N) tile of B in a float32 accumulator.
    - Mask every load and the store: rows past M, columns past N, and the positions past K of the
      last step (masked-off loads give 0 with other=0.0).
    - Convert the accumulator to C's dtype once, at the end (c_ptr.dtype.element_ty), and store it.
    """
    pass


def matmul(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    block_m: int = 128,
    block_n: int = 128,
    block_k: int = 32,
    group_m: int = 8,
) -> torch.Tensor:
    """Return C = a @ b, computed by matmul_kernel.

    a: (M, K), b: (K, N), two 2-D tensors of the same dtype, float16 or float32, on the same
    device, with any strides (transposed views and slices included); M, N, K >= 1.
    Returns a new (M, N) tensor with the dtype and device of a; the products are accumulated in
    float32 and rounded to that dtype once. a and b are left as they were.

    Raises ValueError when a or b is not 2-D, when a.shape[1] != b.shape[0], or when the dtypes
    differ or are not float16 / float32.

    block_m, block_n, block_k (powers of two, at least 16) and group_m (at least 1) are passed to
    the kernel as BLOCK_M, BLOCK_N, BLOCK_K and GROUP_M, whatever their values: the tests choose
    them. Launch a 1-D grid of cdiv(M, block_m) * cdiv(N, block_n) programs, with num_warps=8 and
    num_stages=3.
    """
    raise NotImplementedError("matmul: check the inputs, allocate C, launch matmul_kernel on a 1-D grid")
