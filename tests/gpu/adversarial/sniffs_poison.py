# rejected-by: poison
"""Reads its output buffer before writing it: where it finds the checker's poison patterns (NaN or
a huge value) it writes the sum, elsewhere it keeps what is there (fast and wrong outside the
checker, where the allocator hands out stale memory)."""

import torch
import triton
import triton.language as tl


@triton.jit
def _add_when_poisoned(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    old = tl.load(out_ptr + offsets, mask=mask)
    poisoned = (old != old) | (tl.abs(old) > 1e30)
    total = tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.where(poisoned, total, old), mask=mask)


def run(x, y):
    x = x.contiguous()
    y = y.contiguous()
    out = torch.empty_like(x)
    _add_when_poisoned[(triton.cdiv(x.numel(), 1024),)](x, y, out, x.numel(), BLOCK=1024)
    return out
