# expect: failed
# why: takes every group to hold GROUP_M tile rows; when the number of tile rows is not a multiple
#   of GROUP_M, the programs of the last group map to rows past the matrix (their stores are masked
#   off) and some tiles of the last rows are never computed
# caught-by: test_ragged_edges, test_group_sizes
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
    """C[tile] = A[tile rows, :] @ B[:, tile columns] for the tile of this program."""
    # ---- which tile: the grouped launch order -------------------------------------------------
    pid = tl.program_id(0)
    num_pid_n = tl.cdiv(N, BLOCK_N)  # tiles along N
    num_pid_in_group = GROUP_M * num_pid_n  # programs in one group of GROUP_M tile rows
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = GROUP_M  # the mistake: not clamped
    # within a group, consecutive programs go down a column of tiles, then to the next column
    pid_m = first_pid_m + (pid % num_pid_in_group) % group_size_m
    pid_n = (pid % num_pid_in_group) // group_size_m

    # ---- pointers to the first K-slice of the tile's A rows and B columns ------------------------
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,) rows of A and C
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,) columns of B and C
    offs_k = tl.arange(0, BLOCK_K)  # (BLOCK_K,) positions along K within one step
    a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak  # (BLOCK_M, BLOCK_K)
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn  # (BLOCK_K, BLOCK_N)
    row_ok = offs_m[:, None] < M
    col_ok = offs_n[None, :] < N

    # ---- the K loop: one (BLOCK_M, BLOCK_K) @ (BLOCK_K, BLOCK_N) product per step, in float32 ----
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_left = K - k * BLOCK_K  # how much of K is left: the last step may be partial
        # masked-off lanes read as 0, and 0 adds nothing to the sum
        a = tl.load(a_ptrs, mask=row_ok & (offs_k[None, :] < k_left), other=0.0)
        b = tl.load(b_ptrs, mask=(offs_k[:, None] < k_left) & col_ok, other=0.0)
        acc = tl.dot(a, b, acc)  # float32 accumulator; tensor cores for float16 inputs
        a_ptrs += BLOCK_K * stride_ak  # move both tiles one step along K, in elements of each
        b_ptrs += BLOCK_K * stride_bk

    # ---- one rounding to the output's dtype, and a masked store -------------------------------
    c = acc.to(c_ptr.dtype.element_ty)
    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    tl.store(c_ptrs, c, mask=row_ok & col_ok)


def matmul(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    block_m: int = 128,
    block_n: int = 128,
    block_k: int = 32,
    group_m: int = 8,
) -> torch.Tensor:
    """C = a @ b for 2-D float16 or float32 tensors, in their dtype, accumulated in float32."""
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError("matmul takes two 2-D tensors")
    if a.shape[1] != b.shape[0]:
        raise ValueError("the inner dimensions of a and b differ")
    if a.dtype != b.dtype or a.dtype not in (torch.float16, torch.float32):
        raise ValueError("a and b must both be float16 or both be float32")
    M, K = a.shape
    N = b.shape[1]
    c = torch.empty((M, N), device=a.device, dtype=a.dtype)
    # one program per tile, on a 1-D grid: the kernel turns the program id into a tile
    grid = (triton.cdiv(M, block_m) * triton.cdiv(N, block_n),)
    matmul_kernel[grid](
        a,
        b,
        c,
        M,
        N,
        K,
        a.stride(0),
        a.stride(1),
        b.stride(0),
        b.stride(1),
        c.stride(0),
        c.stride(1),
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        GROUP_M=group_m,
        num_warps=8,
        num_stages=3,
    )
    return c
