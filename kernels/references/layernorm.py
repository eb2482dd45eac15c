"""Reference for `layernorm`: LayerNorm forward over the last axis of a 2-D tensor, with weight and bias.

Inputs are x (rows, cols), weight (cols,) and bias (cols,); eps is 1e-5. A size is (rows, cols). The
output has x's dtype. The large-magnitude inputs (x * 100, offset by 50) make a kernel that computes the
variance as E[x^2] - E[x]^2 in low precision lose every digit, so only a kernel that centres first passes.
"""

import torch

CHECK_SIZES = ((5, 100), (9, 257))
BENCH_SIZES = ((4096, 1024), (8192, 4096), (16384, 8192))
DTYPES = ("float32", "float16", "bfloat16")
MIN_SPEEDUP = 1.0
EPS = 1e-5


def _sample(shape, generator, dist, dtype):
    if dist == "uniform":
        values = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
    elif dist == "heavy_tailed":
        normal = torch.randn(shape, generator=generator, dtype=torch.float64)
        chi = torch.randn((3, *shape), generator=generator, dtype=torch.float64).square().mean(0).sqrt()
        values = (normal / chi).clamp(-1e3, 1e3)
    elif dist == "large_magnitude":
        values = torch.randn(shape, generator=generator, dtype=torch.float64) * 100 + 50
    else:
        values = torch.randn(shape, generator=generator, dtype=torch.float64)
    return values.to(dtype)


def make_inputs(size, seed, device, dtype, dist="normal"):
    rows, cols = size
    generator = torch.Generator().manual_seed(seed)
    x = _sample((rows, cols), generator, dist, dtype)
    weight = (1 + 0.1 * torch.randn(cols, generator=generator, dtype=torch.float64)).to(dtype)
    bias = (0.1 * torch.randn(cols, generator=generator, dtype=torch.float64)).to(dtype)
    return x.to(device), weight.to(device), bias.to(device)


def reference(x, weight, bias):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), weight, bias, EPS)


def flops(size):
    rows, cols = size
    return 8 * rows * cols


def bytes_moved(size, dtype):
    rows, cols = size
    return (2 * rows * cols + 2 * cols) * torch.finfo(dtype).bits // 8
