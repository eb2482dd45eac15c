"""Tests for kernels/vector_add.py (run on a GPU, or through Triton's CPU interpreter without one)."""

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from vector_add import run  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("n", [1, 1000, 1025, 4099])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_matches_torch(n, dtype):
    x = torch.randn(n, device=DEVICE, dtype=dtype)
    y = torch.randn(n, device=DEVICE, dtype=dtype)
    out = run(x, y)
    assert out.shape == x.shape and out.dtype == dtype
    torch.testing.assert_close(out, x + y)


def test_inputs_unchanged():
    x = torch.randn(3000, device=DEVICE)
    y = torch.randn(3000, device=DEVICE)
    x0, y0 = x.clone(), y.clone()
    run(x, y)
    assert torch.equal(x, x0) and torch.equal(y, y0)
