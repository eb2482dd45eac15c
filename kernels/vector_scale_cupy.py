"""vector_scale_cupy: out = x * scale[0] with a CUDA C++ RawKernel launched through CuPy.

Tensors cross to CuPy through DLPack without a copy; the kernel reads the scale from device memory so
no host synchronisation is needed. Needs a CUDA GPU and `cupy-cuda12x` (or the CuPy build for your CUDA).
"""

import cupy
import torch

_SOURCE = r"""
extern "C" __global__
void scale_f32(const float* __restrict__ x, const float* __restrict__ scale,
               float* __restrict__ out, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = x[i] * scale[0];
    }
}
"""
_KERNEL = cupy.RawKernel(_SOURCE, "scale_f32")
_THREADS = 256


def run(x, scale):
    x = x.contiguous()
    out = torch.empty_like(x)
    n = x.numel()
    blocks = (n + _THREADS - 1) // _THREADS
    _KERNEL(
        (blocks,),
        (_THREADS,),
        (cupy.from_dlpack(x), cupy.from_dlpack(scale), cupy.from_dlpack(out), cupy.int64(n)),
    )
    return out
