"""Tests for kernels/layernorm.py (run on a GPU, or through Triton's CPU interpreter without one)."""

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from layernorm import MAX_BLOCK, run  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _expected(x, weight, bias):
    return torch.nn.functional.layer_norm(x.double(), (x.shape[-1],), weight.double(), bias.double(), 1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (5, 100), (37, 257)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_matches_float64(shape, dtype):
    x = torch.randn(shape, device=DEVICE, dtype=dtype)
    weight = torch.randn(shape[-1], device=DEVICE, dtype=dtype)
    bias = torch.randn(shape[-1], device=DEVICE, dtype=dtype)
    out = run(x, weight, bias)
    assert out.shape == x.shape and out.dtype == dtype
    tolerance = 1e-4 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(out.double(), _expected(x, weight, bias), atol=tolerance, rtol=tolerance)


def test_rows_far_from_zero_keep_their_digits():
    x = torch.randn(4, 300, device=DEVICE) + 3000  # E[x^2] - E[x]^2 in fp32 would be off by about 0.5
    weight = torch.ones(300, device=DEVICE)
    bias = torch.zeros(300, device=DEVICE)
    torch.testing.assert_close(run(x, weight, bias).double(), _expected(x, weight, bias), atol=1e-3, rtol=1e-3)


def test_rows_longer_than_one_block_take_the_chunked_path():
    cols = MAX_BLOCK + 77
    x = torch.randn(2, cols, device=DEVICE)
    weight = torch.randn(cols, device=DEVICE)
    bias = torch.randn(cols, device=DEVICE)
    torch.testing.assert_close(run(x, weight, bias).double(), _expected(x, weight, bias), atol=1e-4, rtol=1e-4)
