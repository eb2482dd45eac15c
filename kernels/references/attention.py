"""Reference for `attention`: scaled dot-product attention forward, causal or not.

Inputs are q, k, v of shape (batch, heads, seq, head_dim) and `causal`, an int32 tensor of shape (1,)
holding 0 or 1 (a tensor, so one kernel serves both modes without a host-side branch on data).
A size is (batch, heads, seq, head_dim, causal). The output has q's shape and dtype.
"""

import math

import torch

CHECK_SIZES = ((1, 2, 19, 16, 0), (1, 1, 24, 24, 1))
BENCH_SIZES = ((4, 16, 4096, 64, 0), (4, 16, 4096, 64, 1), (2, 16, 8192, 128, 1))
DTYPES = ("float16", "bfloat16", "float32")
MIN_SPEEDUP = 0.8


def _sample(shape, generator, dist, dtype):
    if dist == "uniform":
        values = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
    elif dist == "heavy_tailed":
        normal = torch.randn(shape, generator=generator, dtype=torch.float64)
        chi = torch.randn((3, *shape), generator=generator, dtype=torch.float64).square().mean(0).sqrt()
        values = (normal / chi).clamp(-8, 8)
    elif dist == "large_magnitude":
        values = torch.randn(shape, generator=generator, dtype=torch.float64) * 6
    else:
        values = torch.randn(shape, generator=generator, dtype=torch.float64)
    return values.to(dtype)


def make_inputs(size, seed, device, dtype, dist="normal"):
    batch, heads, seq, head_dim, causal = size
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, heads, seq, head_dim)
    q, k, v = (_sample(shape, generator, dist, dtype).to(device) for _ in range(3))
    flag = torch.tensor([int(causal)], dtype=torch.int32, device=device)
    return q, k, v, flag


def reference(q, k, v, causal):
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if int(causal.item()):
        seq = q.shape[-2]
        upper = torch.ones(seq, seq, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(upper, float("-inf"))
    return torch.softmax(scores.float() if scores.dtype != torch.float64 else scores, dim=-1).to(q.dtype) @ v


def derive_size(size, k):
    batch, heads, seq, head_dim, causal = size
    return (batch, heads + k % 2, seq + 2 * (k % 4) + 3, head_dim, (causal + k) % 2)


def flops(size):
    batch, heads, seq, head_dim, causal = size
    full = 4 * batch * heads * seq * seq * head_dim
    return full // 2 if causal else full


def bytes_moved(size, dtype):
    batch, heads, seq, head_dim, _ = size
    return 4 * batch * heads * seq * head_dim * torch.finfo(dtype).bits // 8
