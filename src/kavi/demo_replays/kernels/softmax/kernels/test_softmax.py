"""Tests for kernels/softmax.py (run on a GPU, or through Triton's CPU interpreter without one)."""

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from softmax import run  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("shape", [(1, 1), (5, 100), (37, 257)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_matches_torch(shape, dtype):
    x = torch.randn(shape, device=DEVICE, dtype=dtype)
    out = run(x)
    assert out.shape == x.shape and out.dtype == dtype
    expected = torch.softmax(x.double(), dim=-1).to(dtype)
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=1e-2)


def test_stable_for_large_inputs():
    x = torch.randn(8, 100, device=DEVICE) * 1000
    out = run(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.sum(-1), torch.ones(8, device=DEVICE))
