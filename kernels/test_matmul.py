"""Tests for kernels/matmul.py (run on a GPU, or through Triton's CPU interpreter without one)."""

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from matmul import run  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("mnk", [(16, 16, 16), (33, 65, 47), (64, 48, 80)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_matches_float64(mnk, dtype):
    m, n, k = mnk
    a = torch.randn(m, k, device=DEVICE, dtype=dtype)
    b = torch.randn(k, n, device=DEVICE, dtype=dtype)
    out = run(a, b)
    assert out.shape == (m, n) and out.dtype == dtype
    expected = a.double() @ b.double()
    tolerance = 1e-4 if dtype == torch.float32 else 1e-2
    assert (out.double() - expected).norm() / expected.norm() < tolerance


def test_non_contiguous_b():
    a = torch.randn(40, 24, device=DEVICE)
    b = torch.randn(56, 24, device=DEVICE).t()
    torch.testing.assert_close(run(a, b), a @ b, rtol=1e-4, atol=1e-4)
