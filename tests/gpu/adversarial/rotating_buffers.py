# rejected-by: state
"""Two output buffers allocated at import time, chosen by a counter hidden in a tensor's shape that
``t_()`` flips on every call: consecutive calls never share memory (a check against the previous
call alone passes it), every other call reuses it (a caller holding an earlier result sees it
overwritten)."""

import torch
import triton
import triton.language as tl

_EVEN = torch.empty(1 << 16)
_ODD = torch.empty(1 << 16)
_FLIP = torch.empty(1, 2)


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
    _FLIP.t_()
    x = x.contiguous()
    y = y.contiguous()
    n = x.numel()
    out = (_EVEN if _FLIP.shape[0] == 1 else _ODD)[:n]
    _add_kernel[(triton.cdiv(n, 1024),)](x, y, out, n, BLOCK=1024)
    return out
