# rejected-by: state
"""Counts its calls and does the work only on the last call for each rotating input set of the
timing loop (100 samples, 3 sets, after 10 warm-ups): a re-check of only those outputs passes it,
every other timed call returns at once with garbage."""

import torch
import triton
import triton.language as tl

_CALLS = [0]


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
    _CALLS[0] += 1
    out = torch.empty_like(x)
    if _CALLS[0] > 107:
        _add_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, out, x.numel(), BLOCK=1024)
    return out
