"""Triton kernels in a sandbox without a GPU: interpreted, bounds-checked, counted, compiled for
Hopper, and timed through the device-time protocol."""

from __future__ import annotations

import math

import pytest
import torch

from grader.measurement import protocol
from grader.remote import RemoteError, RemoteModule
from grader.runner import messages
from grader.runner.build import parse_ptxas
from grader.spec import PerformanceSpec
from grader.testing import Call
from grader.testing.asserts import assert_close
from sandbox import Limits, Sandbox
from tests.conftest import StartModule, client_of

SOURCE = """
import torch
import triton
import triton.language as tl


@triton.jit
def fused(out_ptr, in_ptr, stride, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    x = tl.load(in_ptr + row * stride + offs, mask=mask, other=-float("inf"))
    e = tl.exp(x - tl.max(x, axis=0))
    tl.store(out_ptr + row * n_cols + offs, e / tl.sum(e, axis=0), mask=mask)


@triton.jit
def row_max(out_ptr, in_ptr, stride, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    x = tl.load(in_ptr + row * stride + offs, mask=offs < n_cols, other=-float("inf"))
    tl.store(out_ptr + row, tl.max(x, axis=0))


@triton.jit
def row_sum(out_ptr, in_ptr, max_ptr, stride, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    x = tl.load(in_ptr + row * stride + offs, mask=offs < n_cols, other=-float("inf"))
    tl.store(out_ptr + row, tl.sum(tl.exp(x - tl.load(max_ptr + row)), axis=0))


@triton.jit
def normalise(out_ptr, in_ptr, max_ptr, sum_ptr, stride, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    x = tl.load(in_ptr + row * stride + offs, mask=mask)
    y = tl.exp(x - tl.load(max_ptr + row)) / tl.load(sum_ptr + row)
    tl.store(out_ptr + row * n_cols + offs, y, mask=mask)


@triton.jit
def unmasked(out_ptr, in_ptr, stride, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    x = tl.load(in_ptr + row * stride + offs)
    tl.store(out_ptr + row * n_cols + offs, x, mask=offs < n_cols)


def softmax(x):
    out = torch.empty(x.shape, dtype=x.dtype)
    fused[(x.shape[0],)](out, x, x.stride(0), x.shape[1], BLOCK=triton.next_power_of_2(x.shape[1]))
    return out


def softmax_unfused(x):
    n, m = x.shape
    block = triton.next_power_of_2(m)
    top, total = torch.empty(n), torch.empty(n)
    out = torch.empty(x.shape, dtype=x.dtype)
    row_max[(n,)](top, x, x.stride(0), m, BLOCK=block)
    row_sum[(n,)](total, x, top, x.stride(0), m, BLOCK=block)
    normalise[(n,)](out, x, top, total, x.stride(0), m, BLOCK=block)
    return out


def copy_unmasked(x):
    out = torch.empty(x.shape, dtype=x.dtype)
    unmasked[(x.shape[0],)](out, x, x.stride(0), x.shape[1], BLOCK=triton.next_power_of_2(x.shape[1]))
    return out


@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, GROUP_M: tl.constexpr,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BM)
    num_n = tl.cdiv(N, BN)
    if GROUP_M > 0:
        group = pid // (GROUP_M * num_n)
        first_m = group * GROUP_M
        size_m = min(num_m - first_m, GROUP_M)
        pid_m = first_m + (pid % (GROUP_M * num_n)) % size_m
        pid_n = (pid % (GROUP_M * num_n)) // size_m
    else:
        pid_m = pid // num_n
        pid_n = pid % num_n
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BK)):
        kk = k * BK + rk
        a_mask = (rm[:, None] < M) & (kk[None, :] < K)
        b_mask = (kk[:, None] < K) & (rn[None, :] < N)
        a = tl.load(a_ptr + rm[:, None] * K + kk[None, :], mask=a_mask, other=0.0)
        b = tl.load(b_ptr + kk[:, None] * N + rn[None, :], mask=b_mask, other=0.0)
        acc += tl.dot(a, b)
    c = acc.to(c_ptr.dtype.element_ty)
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], c, mask=(rm[:, None] < M) & (rn[None, :] < N))


def matmul(a, b, group_m=0):
    M, K = a.shape
    N = b.shape[1]
    c = torch.empty((M, N), dtype=a.dtype)
    grid = (triton.cdiv(M, 16) * triton.cdiv(N, 16),)
    matmul_kernel[grid](a, b, c, M, N, K, GROUP_M=group_m, BM=16, BN=16, BK=16, num_warps=4)
    return c
"""

LIMITS = Limits(call_seconds=60, cpu_seconds=300, memory_mb=3072)


@pytest.fixture
def module(bwrap: Sandbox, start_module: StartModule) -> RemoteModule:
    return start_module(bwrap, SOURCE, limits=LIMITS, preload=("torch", "triton"))


def test_kernels_run_in_the_interpreter_and_are_counted(module: RemoteModule) -> None:
    x = torch.randn(9, 70)
    out, stats = protocol.probe(client_of(module), Call("softmax", x))
    assert_close(out, torch.softmax(x, -1))
    assert stats["interpreted"] is True
    assert stats["launches"] == 1 and stats["programs"] == 9
    assert stats["loaded_bytes"] == stats["stored_bytes"] == 9 * 70 * 4
    assert stats["traffic_bytes"] == 2 * 9 * 70 * 4
    # one read of 2520 contiguous bytes from the start of its allocation is 20 lines of 128 bytes,
    # plus the stores in full
    assert stats["dram_bytes"] == 20 * 128 + 9 * 70 * 4


def test_an_unfused_kernel_moves_more_bytes_in_more_launches(module: RemoteModule) -> None:
    x = torch.randn(12, 200)
    client = client_of(module)
    out, unfused = protocol.probe(client, Call("softmax_unfused", x))
    assert_close(out, torch.softmax(x, -1))
    _, fused = protocol.probe(client, Call("softmax", x))
    assert unfused["launches"] == 3 and fused["launches"] == 1
    ratio = unfused["traffic_bytes"] / fused["traffic_bytes"]
    assert 1.95 < ratio < 2.1, ratio  # three reads and a write against one of each, plus the row stats


def test_an_access_past_the_end_raises_out_of_bounds(module: RemoteModule) -> None:
    with pytest.raises(RemoteError) as caught:
        module.copy_unmasked(torch.randn(3, 50))  # a block of 64 over rows of 50
    assert caught.value.type_name == "OutOfBounds"
    assert "mask the accesses past the end" in str(caught.value)
    assert torch.equal(module.copy_unmasked(torch.ones(2, 64)), torch.ones(2, 64))  # no tail: fine


def test_a_grouped_launch_order_lowers_the_dram_model(module: RemoteModule) -> None:
    a, b = torch.randn(64, 64), torch.randn(64, 512)
    client = client_of(module)
    out, row_major = protocol.probe(client, Call("matmul", a, b, group_m=0))
    assert_close(out, a @ b, rtol=1e-4, atol=1e-4)
    _, grouped = protocol.probe(client, Call("matmul", a, b, group_m=4))
    assert grouped["traffic_bytes"] == row_major["traffic_bytes"]  # the same loads, in another order
    assert grouped["dot_flops"] == row_major["dot_flops"] == 2 * 64 * 512 * 64
    # 16 programs of one wave: half a row of tiles reads 1 + 16 tiles, a 4 x 4 group 4 + 4
    assert row_major["dram_bytes"] > 1.5 * grouped["dram_bytes"]


def test_launched_kernels_compile_for_hopper_without_a_gpu(module: RemoteModule) -> None:
    client = client_of(module)
    module.softmax(torch.randn(4, 100))
    module.matmul(torch.randn(20, 30).half(), torch.randn(30, 40).half())
    reply = client.request(messages.Build(90), timeout=LIMITS.cpu_seconds)
    built = {found["kernel"]: found for found in reply.kernels}
    assert set(built) == {"fused", "matmul_kernel"}
    assert all(found["error"] == "" and found["registers"] > 0 for found in built.values()), built
    assert built["matmul_kernel"]["tensor_cores"] is True and built["fused"]["tensor_cores"] is False
    assert built["fused"]["spill_bytes"] == 0


def test_ptxas_figures_are_read_from_its_log() -> None:
    log = (
        "ptxas info    : Function properties for k\n"
        "    0 bytes stack frame, 24 bytes spill stores, 16 bytes spill loads\n"
        "ptxas info    : Used 255 registers, used 1 barriers, 8 bytes cmem[0]\n"
    )
    assert parse_ptxas(log) == {"registers": 255, "spill_bytes": 40}
    assert parse_ptxas("") == {"registers": 0, "spill_bytes": 0}


def test_device_times_answer_every_call_and_its_time(module: RemoteModule) -> None:
    client = client_of(module)
    x = torch.randn(5, 30)
    outputs, times = protocol.device_times(client, [Call("softmax", x), Call("softmax", x * 2)])
    assert_close(outputs[1], torch.softmax(x * 2, -1))
    assert len(times) == 2 and all(t > 0 for t in times)


def test_device_time_ratio_of_a_kernel_against_itself_passes(
    bwrap: Sandbox, start_module: StartModule
) -> None:
    one = client_of(start_module(bwrap, SOURCE, limits=LIMITS, preload=("torch", "triton")))
    two = client_of(start_module(bwrap, SOURCE, limits=LIMITS, preload=("torch", "triton")))
    spec = PerformanceSpec(metric="device_time", threshold=3.0, min_pairs=5, max_pairs=9)

    def make(rng: object) -> Call:
        return Call("softmax", torch.randn(8, 64))

    result = protocol.device_time_ratio("speed", one, two, make, spec, lambda a, e: assert_close(a, e))
    assert result.passed and result.metric == "device_time" and result.source == "device"
    assert 5 <= result.pairs <= 9 and math.isfinite(result.ratio)


def test_without_triton_there_are_no_kernel_figures(bwrap: Sandbox, start_module: StartModule) -> None:
    plain = start_module(bwrap, "def double(x):\n    return x * 2\n", limits=LIMITS, preload=("torch",))
    _, stats = protocol.probe(client_of(plain), Call("double", torch.ones(3)))
    assert stats["interpreted"] is False and "traffic_bytes" not in stats
