# rejected-by: tolerance
"""Computes in fp16 for an fp32 spec: fast, and wrong beyond the fp32 tolerance."""

import torch
import triton
import triton.language as tl


@triton.jit
def _add_fp16(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask).to(tl.float16)
    y = tl.load(y_ptr + offsets, mask=mask).to(tl.float16)
    tl.store(out_ptr + offsets, (x + y).to(out_ptr.dtype.element_ty), mask=mask)


def run(x, y):
    out = torch.empty_like(x)
    _add_fp16[(triton.cdiv(x.numel(), 1024),)](x, y, out, x.numel(), BLOCK=1024)
    return out
