"""Reference for `bmm`: batched matrix multiply, C[b] = A[b] @ B[b] for A (batch, M, K) and B (batch, K, N).

A size is (batch, M, N, K). The output has A's dtype. A kernel must accumulate in fp32: an fp16
accumulator fails the fp16 tolerance on the larger K, and an fp32 spec computed with tf32 or fp16 inputs
fails the fp32 tolerance. Every batch entry is an independent product, so a kernel that reuses one
entry's tiles for another fails.
"""

import torch

CHECK_SIZES = ((3, 33, 17, 40), (2, 20, 48, 24))
BENCH_SIZES = ((32, 1024, 1024, 1024), (16, 2048, 2048, 512), (64, 512, 512, 2048))
DTYPES = ("float16", "bfloat16", "float32")
MIN_SPEEDUP = 0.9


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
    batch, m, n, k = size
    generator = torch.Generator().manual_seed(seed)
    a = _sample((batch, m, k), generator, dist, dtype)
    b = _sample((batch, k, n), generator, dist, dtype)
    return a.to(device), b.to(device)


def reference(a, b):
    return torch.bmm(a, b)


def flops(size):
    batch, m, n, k = size
    return 2 * batch * m * n * k


def bytes_moved(size, dtype):
    batch, m, n, k = size
    return batch * (m * k + k * n + m * n) * torch.finfo(dtype).bits // 8
