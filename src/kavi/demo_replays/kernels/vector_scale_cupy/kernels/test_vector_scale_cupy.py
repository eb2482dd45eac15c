"""Tests for kernels/vector_scale_cupy.py: they need a CUDA GPU and CuPy, and skip (with the reason) without."""

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("vector_scale_cupy is a CUDA RawKernel: it needs a CUDA GPU", allow_module_level=True)
pytest.importorskip("cupy")

from vector_scale_cupy import run  # noqa: E402


@pytest.mark.parametrize("n", [1, 1000, 4099, 1 << 20])
def test_matches_torch(n):
    x = torch.randn(n, device="cuda")
    scale = torch.tensor([1.75], device="cuda")
    out = run(x, scale)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, x * scale)
