# rejected-by: constant-output
"""Writes the same value whatever the inputs (every element written, so the poison check passes)."""

import torch
import triton
import triton.language as tl


@triton.jit
def _constant(out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offsets, tl.full((BLOCK,), 0.5, tl.float32), mask=offsets < n)


def run(x, y):
    out = torch.empty_like(x)
    _constant[(triton.cdiv(x.numel(), 1024),)](out, x.numel(), BLOCK=1024)
    return out
