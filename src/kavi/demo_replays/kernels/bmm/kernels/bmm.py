"""bmm: batched C[b] = A[b] @ B[b], one grid axis per batch entry, tiled with an fp32 accumulator.

Each program computes one BLOCK_M x BLOCK_N tile of one batch entry's C, walking K in BLOCK_K steps with
masked loads (any M, N, K, any strides). Tiles are visited in groups of GROUP_M rows for L2 reuse. fp32
inputs use IEEE products (no tf32), so an fp32 spec keeps fp32 accuracy.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _bmm_kernel(
    a_ptr, b_ptr, c_ptr, M, N, K,
    stride_ab, stride_am, stride_ak,
    stride_bb, stride_bk, stride_bn,
    stride_cb, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    batch = tl.program_id(1)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    group_size = GROUP_M * num_n
    first_m = (pid // group_size) * GROUP_M
    rows_in_group = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group_size) % rows_in_group
    pid_n = (pid % group_size) // rows_in_group

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    a_base = a_ptr + batch.to(tl.int64) * stride_ab
    b_base = b_ptr + batch.to(tl.int64) * stride_bb
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_idx = k0 + offs_k
        a = tl.load(
            a_base + offs_m[:, None] * stride_am + k_idx[None, :] * stride_ak,
            mask=(offs_m[:, None] < M) & (k_idx[None, :] < K),
            other=0.0,
        )
        b = tl.load(
            b_base + k_idx[:, None] * stride_bk + offs_n[None, :] * stride_bn,
            mask=(k_idx[:, None] < K) & (offs_n[None, :] < N),
            other=0.0,
        )
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    c = acc.to(c_ptr.dtype.element_ty)
    c_base = c_ptr + batch.to(tl.int64) * stride_cb
    tl.store(
        c_base + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn,
        c,
        mask=(offs_m[:, None] < M) & (offs_n[None, :] < N),
    )


def run(a, b):
    batch, m, k = a.shape
    batch_b, k_b, n = b.shape
    assert batch == batch_b and k == k_b, "batch or inner dimensions differ"
    c = torch.empty((batch, m, n), device=a.device, dtype=a.dtype)
    wide = a.element_size() == 2
    block_m, block_n, block_k = (128, 128, 64) if wide else (64, 64, 32)
    warps, stages = (8, 3) if wide else (4, 3)
    precision = "ieee" if a.dtype == torch.float32 else "tf32"
    grid = (triton.cdiv(m, block_m) * triton.cdiv(n, block_n), batch)
    _bmm_kernel[grid](
        a, b, c, m, n, k,
        a.stride(0), a.stride(1), a.stride(2),
        b.stride(0), b.stride(1), b.stride(2),
        c.stride(0), c.stride(1), c.stride(2),
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=8, PRECISION=precision,
        num_warps=warps, num_stages=stages,
    )
    return c
