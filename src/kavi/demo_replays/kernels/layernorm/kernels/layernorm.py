"""layernorm: LayerNorm forward over rows, fused (the row is read once when it fits, written once).

One program per row, in fp32 whatever the input dtype. The mean comes first and the variance is the mean
of the centred squares (never E[x^2] - E[x]^2, which loses every digit on rows far from zero). A row that
fits in BLOCK columns stays in registers; a longer row is walked in BLOCK-sized chunks, three passes.
"""

import torch
import triton
import triton.language as tl

MAX_BLOCK = 8192


@triton.jit
def _layernorm_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, n_cols, x_row_stride, out_row_stride, eps,
    BLOCK: tl.constexpr, ONE_PASS: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * x_row_stride
    out_row = out_ptr + row * out_row_stride
    cols = tl.arange(0, BLOCK)
    if ONE_PASS:
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=0) / n_cols
        centred = tl.where(mask, x - mean, 0.0)
        variance = tl.sum(centred * centred, axis=0) / n_cols
        inverse = 1.0 / tl.sqrt(variance + eps)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        y = centred * inverse * w + b
        tl.store(out_row + cols, y.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        total = tl.zeros((BLOCK,), dtype=tl.float32)
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            total += tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(total, axis=0) / n_cols
        squares = tl.zeros((BLOCK,), dtype=tl.float32)
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            x = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            centred = tl.where(mask, x - mean, 0.0)
            squares += centred * centred
        inverse = 1.0 / tl.sqrt(tl.sum(squares, axis=0) / n_cols + eps)
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            x = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            w = tl.load(w_ptr + start + cols, mask=mask, other=0.0).to(tl.float32)
            b = tl.load(b_ptr + start + cols, mask=mask, other=0.0).to(tl.float32)
            y = (x - mean) * inverse * w + b
            tl.store(out_row + start + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def run(x, weight, bias):
    x = x.contiguous()
    weight = weight.contiguous()
    bias = bias.contiguous()
    n_rows, n_cols = x.shape
    out = torch.empty_like(x)
    block = min(triton.next_power_of_2(n_cols), MAX_BLOCK)
    num_warps = 4 if block <= 2048 else 8 if block <= 4096 else 16
    _layernorm_kernel[(n_rows,)](
        x, weight, bias, out, n_cols, x.stride(0), out.stride(0), 1e-5,
        BLOCK=block, ONE_PASS=n_cols <= block, num_warps=num_warps,
    )
    return out
