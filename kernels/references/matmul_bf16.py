"""Reference for `matmul_bf16`: C = A @ B in bfloat16 (fp16 too), at SPAK's sizes 4096, 8192 and 16384.

A size is (M, N, K), or a single int n for a square n x n x n product (the benchmark sizes). The output
is in the input dtype. bf16 is the dtype this kernel is for (tensor cores, fp32 accumulator); fp16 is
checked as well, and is the one Triton's CPU interpreter can check (it is silently wrong for bf16, so bf16
is checked on a GPU only). A bf16 or fp16 accumulator fails the tolerance on the larger K.
"""

import torch

CHECK_SIZES = ((33, 17, 40), (20, 48, 72))
BENCH_SIZES = (4096, 8192, 16384)
DTYPES = ("bfloat16", "float16")
MIN_SPEEDUP = 0.9


def _dims(size):
    return (size, size, size) if isinstance(size, int) else tuple(size)


def _sample(shape, generator, dist, dtype):
    if dist == "uniform":
        values = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
    elif dist == "heavy_tailed":
        normal = torch.randn(shape, generator=generator, dtype=torch.float64)
        chi = torch.randn((3, *shape), generator=generator, dtype=torch.float64).square().mean(0).sqrt()
        values = (normal / chi).clamp(-10, 10)
    elif dist == "large_magnitude":
        values = torch.randn(shape, generator=generator, dtype=torch.float64) * 8
    else:
        values = torch.randn(shape, generator=generator, dtype=torch.float64)
    return values.to(dtype)


def make_inputs(size, seed, device, dtype, dist="normal"):
    m, n, k = _dims(size)
    generator = torch.Generator().manual_seed(seed)
    a = _sample((m, k), generator, dist, dtype)
    b = _sample((k, n), generator, dist, dtype)
    return a.to(device), b.to(device)


def reference(a, b):
    return a @ b


def derive_size(size, k):
    m, n, kk = _dims(size)
    step = 2 * (k % 4)
    return (m + step + 1, n + step + 3, kk + step + 5)


def flops(size):
    m, n, k = _dims(size)
    return 2 * m * n * k


def bytes_moved(size, dtype):
    m, n, k = _dims(size)
    return (m * k + k * n + m * n) * torch.finfo(dtype).bits // 8
