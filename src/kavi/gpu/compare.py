"""Comparing a candidate's output with the float64 reference.

The tolerance is per dtype and applies twice: to the relative error norm (the output as a whole is
right)
and elementwise (no single element is badly wrong, which a norm over a large tensor would hide). NaN
and
Inf positions must match the reference cast to the output dtype, and a NaN is never "within
tolerance".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOLERANCES = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 1e-2}


@dataclass(frozen=True)
class Comparison:
    """The verdict on one output: the failed check (``nonfinite`` or ``tolerance``) or None."""

    failed_check: str | None
    detail: str
    relative_error: float | None = None


def compare_output(output: Any, reference64: Any, dtype: str, *, rowwise: bool = False) -> Comparison:
    """Judge ``output`` (any float dtype) against ``reference64`` (float64, same shape).

    ``rowwise``: the elementwise bound's absolute part is the rms of the element's own row (the last
    axis; chunks of 64 for a vector), not of the whole output, so rows of small magnitude next to
    large ones are judged at their own scale (an absolute-error shortcut hides behind a global rms).
    """
    import torch

    tolerance = TOLERANCES[dtype]
    expected = reference64.to(output.dtype)
    for name, mask in (("NaN", torch.isnan), ("+Inf", torch.isposinf), ("-Inf", torch.isneginf)):
        wrong = (mask(output) != mask(expected)).sum().item()
        if wrong:
            return Comparison("nonfinite", f"{wrong} element(s) where {name} positions differ from the reference")
    finite = torch.isfinite(expected)
    scale = _row_rms(reference64.to(torch.float64), finite)[finite] if rowwise else None
    got = output.to(torch.float64)[finite]
    want = reference64.to(torch.float64)[finite]
    if got.numel() == 0:
        return Comparison(None, "no finite elements to compare", 0.0)
    error = (got - want).abs()
    reference_norm = want.norm().item()
    relative = error.norm().item() / max(reference_norm, 1e-300)
    if not relative <= tolerance:
        return Comparison("tolerance", f"relative error norm {relative:.3g} > {tolerance:g} ({dtype})", relative)
    rms = reference_norm / max(got.numel(), 1) ** 0.5 if scale is None else scale
    bound = tolerance * want.abs() + tolerance * rms + 1e-300
    bad = (~(error <= bound)).sum().item()
    if bad:
        worst = (error / bound).argmax().item()
        return Comparison(
            "tolerance",
            f"{bad} element(s) outside the elementwise tolerance {tolerance:g} ({dtype}); "
            f"worst: got {got[worst].item():.6g}, want {want[worst].item():.6g}",
            relative,
        )
    return Comparison(None, f"relative error norm {relative:.3g}", relative)


def _row_rms(reference: Any, finite: Any) -> Any:
    """Each element's row rms over the finite elements of its row, broadcast to the full shape."""
    import torch

    from kavi.gpu.reference import VECTOR_ROW

    values = torch.where(finite, reference, torch.zeros_like(reference))
    if values.dim() <= 1:
        flat = values.reshape(-1)
        mask = finite.reshape(-1)
        pad = (-flat.numel()) % VECTOR_ROW
        rows = torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, VECTOR_ROW)
        counts = torch.cat([mask.double(), flat.new_zeros(pad)]).reshape(-1, VECTOR_ROW).sum(-1, keepdim=True)
        rms = (rows.square().sum(-1, keepdim=True) / counts.clamp(min=1)).sqrt().expand_as(rows)
        return rms.reshape(-1)[: flat.numel()].reshape(reference.shape)
    counts = finite.double().sum(-1, keepdim=True).clamp(min=1)
    return (values.square().sum(-1, keepdim=True) / counts).sqrt().expand_as(values)


def bitwise_equal(first: Any, second: Any) -> bool:
    """Equal shape, dtype and bytes (NaN payloads included): the poison check needs exactly this."""
    if first.shape != second.shape or first.dtype != second.dtype:
        return False
    return bool((_bytes_view(first) == _bytes_view(second)).all().item())


def _bytes_view(tensor: Any) -> Any:
    import torch

    flat = tensor.detach().contiguous().reshape(-1)
    if flat.numel() == 0:
        return torch.zeros(0, dtype=torch.uint8)
    return flat.view(torch.uint8)
