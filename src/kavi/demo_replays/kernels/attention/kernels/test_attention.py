"""Tests for kernels/attention.py (run on a GPU, or through Triton's CPU interpreter without one)."""

import math
import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from attention import run  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _expected(q, k, v, causal):
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        seq = q.shape[-2]
        scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool, device=q.device).triu(1), -math.inf)
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("shape", [(1, 1, 17, 16), (2, 2, 40, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_matches_float64(causal, shape, dtype):
    q, k, v = (torch.randn(shape, device=DEVICE, dtype=dtype) for _ in range(3))
    flag = torch.tensor([causal], dtype=torch.int32, device=DEVICE)
    out = run(q, k, v, flag)
    assert out.shape == q.shape and out.dtype == dtype
    expected = _expected(q, k, v, causal)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-2
    assert (out.double() - expected).norm() / expected.norm() < tolerance


def test_first_causal_row_is_first_value():
    q, k, v = (torch.randn(1, 1, 20, 16, device=DEVICE) for _ in range(3))
    out = run(q, k, v, torch.tensor([1], dtype=torch.int32, device=DEVICE))
    torch.testing.assert_close(out[0, 0, 0], v[0, 0, 0], rtol=1e-5, atol=1e-5)
