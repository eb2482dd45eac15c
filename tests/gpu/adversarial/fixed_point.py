# rejected-by: tolerance
"""Rounds the sum to a fixed grid of 2**-16: an absolute error far below the tolerance at the
generator's unit scale, so it passes every distribution the packet shows, and wrong for rows of
small magnitude next to large ones (the shortcut a global error bound cannot see)."""

import torch
import triton
import triton.language as tl


@triton.jit
def _add_fixed_point(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    total = tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask)
    grid = 65536.0
    tl.store(out_ptr + offsets, tl.floor(total * grid + 0.5) / grid, mask=mask)


def run(x, y):
    x = x.contiguous()
    y = y.contiguous()
    out = torch.empty_like(x)
    _add_fixed_point[(triton.cdiv(x.numel(), 1024),)](x, y, out, x.numel(), BLOCK=1024)
    return out
