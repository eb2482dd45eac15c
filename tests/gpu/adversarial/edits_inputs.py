# rejected-by: inputs-unchanged
"""Computes the right answer, then zeroes its first input (a kernel that scribbles on its
inputs)."""

import torch
import triton
import triton.language as tl


@triton.jit
def _add_and_clear(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, x + tl.load(y_ptr + offsets, mask=mask), mask=mask)
    tl.store(x_ptr + offsets, x * 0, mask=mask)


def run(x, y):
    out = torch.empty_like(x)
    _add_and_clear[(triton.cdiv(x.numel(), 1024),)](x, y, out, x.numel(), BLOCK=1024)
    return out
