# rejected-by: nonfinite
"""Softmax without subtracting the row max: exp overflows on large-magnitude inputs."""

import torch
import triton
import triton.language as tl


@triton.jit
def _naive_softmax(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=-float("inf")).to(tl.float32)
    numerator = tl.exp(x)
    tl.store(
        out_ptr + row * n_cols + cols,
        (numerator / tl.sum(numerator, axis=0)).to(out_ptr.dtype.element_ty),
        mask=mask,
    )


def run(x):
    x = x.contiguous()
    out = torch.empty_like(x)
    _naive_softmax[(x.shape[0],)](x, out, x.shape[1], BLOCK=triton.next_power_of_2(x.shape[1]))
    return out
