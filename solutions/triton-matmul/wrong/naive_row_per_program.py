# expect: too_slow
# why: one program per row of C, holding the whole row (all N columns) and walking along K: correct,
#   but every program loads all of B, so B is read M times over instead of once per tile row: about
#   ten times the memory traffic of a tiled kernel on the measured shape
# caught-by: test_memory_traffic
import torch
import triton
import triton.language as tl


@triton.jit
def row_kernel(
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
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    row = tl.program_id(0)
    offs_n = tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(a_ptr + row * stride_am + offs_k * stride_ak, mask=offs_k < K, other=0.0)
        b = tl.load(
            b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn,
            mask=(offs_k[:, None] < K) & (offs_n[None, :] < N),
            other=0.0,
        )  # the mistake: a (BLOCK_K, all of N) slice of B, loaded again by every row
        acc += tl.sum(a[:, None].to(tl.float32) * b.to(tl.float32), axis=0)
    tl.store(c_ptr + row * stride_cm + offs_n * stride_cn, acc.to(c_ptr.dtype.element_ty), mask=offs_n < N)


def matmul(a, b, *, block_m=128, block_n=128, block_k=32, group_m=8):
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError("matmul takes two 2-D tensors")
    if a.shape[1] != b.shape[0]:
        raise ValueError("the inner dimensions of a and b differ")
    if a.dtype != b.dtype or a.dtype not in (torch.float16, torch.float32):
        raise ValueError("a and b must both be float16 or both be float32")
    M, K = a.shape
    N = b.shape[1]
    c = torch.empty((M, N), device=a.device, dtype=a.dtype)
    row_kernel[(M,)](
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
        BLOCK_N=triton.next_power_of_2(N),
        BLOCK_K=64,
    )
    return c
