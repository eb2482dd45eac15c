"""attention: fused scaled dot-product attention forward with an online softmax (FlashAttention style).

One program per (BLOCK_M queries, batch*head). It streams K and V in BLOCK_N tiles, keeping a running
row max `m_i`, a running denominator `l_i` and an fp32 accumulator, so the seq x seq score matrix never
exists in memory. The causal flag is read inside the kernel; in causal mode the key loop stops at the
diagonal. Any seq length (masked tiles); head_dim is padded to a power of two.
"""

import math

import torch
import triton
import triton.language as tl


@triton.jit
def _attention_kernel(
    q_ptr, k_ptr, v_ptr, causal_ptr, out_ptr,
    stride_qb, stride_qh, stride_qs, stride_kb, stride_kh, stride_ks,
    stride_vb, stride_vh, stride_vs, stride_ob, stride_oh, stride_os,
    heads, seq, head_dim, scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    batch = bh // heads
    head = bh % heads
    causal = tl.load(causal_ptr) != 0

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < head_dim
    q_base = q_ptr + batch * stride_qb + head * stride_qh
    k_base = k_ptr + batch * stride_kb + head * stride_kh
    v_base = v_ptr + batch * stride_vb + head * stride_vh

    q = tl.load(
        q_base + offs_m[:, None] * stride_qs + offs_d[None, :],
        mask=(offs_m[:, None] < seq) & d_mask[None, :],
        other=0.0,
    )
    m_i = tl.full((BLOCK_M,), -float("inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    qk_scale = scale * 1.4426950408889634  # log2(e): use exp2

    end_n = seq
    if causal:
        end_n = tl.minimum(start_m + BLOCK_M, seq)
    for start_n in range(0, end_n, BLOCK_N):
        cols = start_n + offs_n
        kt = tl.load(
            k_base + cols[None, :] * stride_ks + offs_d[:, None],
            mask=(cols[None, :] < seq) & d_mask[:, None],
            other=0.0,
        )
        s = tl.dot(q, kt, input_precision=PRECISION) * qk_scale
        valid = cols[None, :] < seq
        if causal:
            valid = valid & (cols[None, :] <= offs_m[:, None])
        s = tl.where(valid, s, -float("inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        # Rows whose every score so far is masked keep m_new = -inf; shift by 0 there to avoid inf - inf.
        m_safe = tl.where(m_new == -float("inf"), 0.0, m_new)
        p = tl.exp2(s - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_base + cols[:, None] * stride_vs + offs_d[None, :],
            mask=(cols[:, None] < seq) & d_mask[None, :],
            other=0.0,
        )
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    out = acc / l_i[:, None]
    tl.store(
        out_ptr + batch * stride_ob + head * stride_oh + offs_m[:, None] * stride_os + offs_d[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=(offs_m[:, None] < seq) & d_mask[None, :],
    )


def run(q, k, v, causal):
    q = q.contiguous()
    k = k.contiguous()
    v = v.contiguous()
    batch, heads, seq, head_dim = q.shape
    out = torch.empty_like(q)
    block_d = max(16, triton.next_power_of_2(head_dim))
    if q.is_cuda:
        block_m, block_n, warps, stages = 128, 64, (4 if block_d <= 64 else 8), 2
        if q.dtype == torch.float32:
            block_m, block_n = 64, 32
    else:  # Triton's CPU interpreter: small tiles keep it fast
        block_m, block_n, warps, stages = 16, 16, 4, 1
    precision = "ieee" if q.dtype == torch.float32 else "tf32"
    grid = (triton.cdiv(seq, block_m), batch * heads)
    _attention_kernel[grid](
        q, k, v, causal, out,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
        heads, seq, head_dim, 1.0 / math.sqrt(head_dim),
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, PRECISION=precision,
        num_warps=warps, num_stages=stages,
    )
    return out
