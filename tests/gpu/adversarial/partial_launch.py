# rejected-by: poison
"""Launches half the grid: the second half of the output is whatever the allocator handed out."""

import torch
import triton
import triton.language as tl


@triton.jit
def _add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(
        out_ptr + offsets,
        tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask),
        mask=mask,
    )


def run(x, y):
    out = torch.empty_like(x)
    blocks = triton.cdiv(x.numel(), 128)
    _add_kernel[(blocks // 2,)](x, y, out, x.numel(), BLOCK=128)
    return out
