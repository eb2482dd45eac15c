# rejected-by: state
"""Caches results by input pointer, so a second call on new data at the same address returns stale
output."""

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


_CACHE = {}


def run(x, y):
    key = (x.data_ptr(), y.data_ptr())
    if key not in _CACHE:
        out = torch.empty_like(x)
        _add_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, out, x.numel(), BLOCK=1024)
        _CACHE[key] = out
    return _CACHE[key]
