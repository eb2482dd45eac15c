"""Tests for kernels/bmm.py (run on a GPU, or through Triton's CPU interpreter without one)."""

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from bmm import run  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("bmnk", [(1, 16, 16, 16), (3, 33, 65, 47), (2, 64, 48, 80)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_matches_float64(bmnk, dtype):
    batch, m, n, k = bmnk
    a = torch.randn(batch, m, k, device=DEVICE, dtype=dtype)
    b = torch.randn(batch, k, n, device=DEVICE, dtype=dtype)
    out = run(a, b)
    assert out.shape == (batch, m, n) and out.dtype == dtype
    expected = torch.bmm(a.double(), b.double())
    tolerance = 1e-4 if dtype == torch.float32 else 1e-2
    for entry in range(batch):
        assert (out[entry].double() - expected[entry]).norm() / expected[entry].norm() < tolerance


def test_batch_entries_are_independent():
    a = torch.randn(4, 24, 40, device=DEVICE)
    b = torch.randn(4, 40, 8, device=DEVICE)
    b[2] = 0
    out = run(a, b)
    assert torch.count_nonzero(out[2]) == 0 and torch.count_nonzero(out[1]) > 0


def test_non_contiguous_b():
    a = torch.randn(2, 40, 24, device=DEVICE)
    b = torch.randn(2, 56, 24, device=DEVICE).transpose(1, 2)
    torch.testing.assert_close(run(a, b), torch.bmm(a, b), rtol=1e-4, atol=1e-4)
