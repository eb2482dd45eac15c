"""Reference for `vector_scale_cupy`: out = x * scale, with scale an fp32 tensor of shape (1,).

The CuPy path of the harness: the kernel is a CUDA C++ RawKernel, so it needs a CUDA GPU (on a machine
without one, its correctness and speed gates report SKIPPED with the reason).
"""

import torch

CHECK_SIZES = (1000, 4099)
BENCH_SIZES = (1 << 24, 1 << 26)
DTYPES = ("float32",)
MIN_SPEEDUP = 0.9


def make_inputs(size, seed, device, dtype, dist="normal"):
    generator = torch.Generator().manual_seed(seed)
    if dist == "uniform":
        x = torch.rand(size, generator=generator, dtype=torch.float64) * 2 - 1
    elif dist == "heavy_tailed":
        chi = torch.randn(3, size, generator=generator, dtype=torch.float64).square().mean(0).sqrt()
        x = (torch.randn(size, generator=generator, dtype=torch.float64) / chi).clamp(-1e3, 1e3)
    elif dist == "large_magnitude":
        x = torch.randn(size, generator=generator, dtype=torch.float64) * 1e4
    else:
        x = torch.randn(size, generator=generator, dtype=torch.float64)
    scale = torch.rand(1, generator=generator, dtype=torch.float64) * 4 - 2
    return x.to(device=device, dtype=dtype), scale.to(device=device, dtype=dtype)


def reference(x, scale):
    return x * scale


def bytes_moved(size, dtype):
    return 2 * size * torch.finfo(dtype).bits // 8
