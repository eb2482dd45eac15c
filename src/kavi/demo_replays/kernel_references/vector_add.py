"""Reference for `vector_add`: the elementwise sum of two vectors of the same length.

A size is the vector length. Bandwidth-bound: the kernel reads two vectors and writes one.
"""

import torch

CHECK_SIZES = (1000, 4099)
BENCH_SIZES = (1 << 24, 1 << 26, 1 << 28)
DTYPES = ("float32", "float16", "bfloat16")
# Bandwidth-bound: matching torch's own elementwise kernel is the goal, beating it by much is not possible.
MIN_SPEEDUP = 0.9


def _sample(shape, generator, dist, dtype):
    if dist == "uniform":
        values = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
    elif dist == "heavy_tailed":
        normal = torch.randn(shape, generator=generator, dtype=torch.float64)
        chi = torch.randn((3, *shape), generator=generator, dtype=torch.float64).square().mean(0).sqrt()
        values = (normal / chi).clamp(-1e3, 1e3)
    elif dist == "large_magnitude":
        scale = 1e4 if dtype == torch.float32 else 1e3
        values = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    else:
        values = torch.randn(shape, generator=generator, dtype=torch.float64)
    return values.to(dtype)


def make_inputs(size, seed, device, dtype, dist="normal"):
    generator = torch.Generator().manual_seed(seed)
    x = _sample((size,), generator, dist, dtype)
    y = _sample((size,), generator, dist, dtype)
    return x.to(device), y.to(device)


def reference(x, y):
    return x + y


def flops(size):
    return size


def bytes_moved(size, dtype):
    return 3 * size * torch.finfo(dtype).bits // 8
