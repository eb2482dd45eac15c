"""Tests for kernels/matmul_bf16.py (bf16 on a GPU; fp16 through Triton's CPU interpreter without one,
which is silently wrong for bf16)."""

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from matmul_bf16 import run  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float16, torch.bfloat16] if DEVICE == "cuda" else [torch.float16]


@pytest.mark.parametrize("mnk", [(16, 16, 16), (33, 65, 47), (130, 260, 200)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_float64(mnk, dtype):
    m, n, k = mnk
    a = torch.randn(m, k, device=DEVICE, dtype=dtype)
    b = torch.randn(k, n, device=DEVICE, dtype=dtype)
    out = run(a, b)
    assert out.shape == (m, n) and out.dtype == dtype
    expected = a.double() @ b.double()
    assert (out.double() - expected).norm() / expected.norm() < 1e-2


def test_non_contiguous_b():
    a = torch.randn(40, 24, device=DEVICE, dtype=torch.float16)
    b = torch.randn(56, 24, device=DEVICE, dtype=torch.float16).t()
    expected = a.double() @ b.double()
    assert (run(a, b).double() - expected).norm() / expected.norm() < 1e-2


@pytest.mark.skipif(DEVICE != "cuda", reason="bfloat16 needs a GPU: Triton's CPU interpreter is wrong for it")
def test_bfloat16_on_a_gpu():
    a = torch.randn(300, 200, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(200, 100, device=DEVICE, dtype=torch.bfloat16)
    expected = a.double() @ b.double()
    assert (run(a, b).double() - expected).norm() / expected.norm() < 1e-2
