"""Refusing a degenerate reference at propose time (runs in the child process, see
:mod:`kavi.gpu.child`).

A reference whose output is nearly constant, nearly all zero, unchanged across seeds or not finite
would
let a kernel that ignores its inputs pass the correctness gate; so would a ``make_inputs`` that is
not
deterministic in its seed. Such a proposal is refused with a message that says what to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kavi.errors import SpecError
from kavi.gpu.reference import (
    DISTRIBUTIONS,
    Size,
    hidden_size,
    load_reference,
    make_case_inputs,
    read_metadata,
    to_float64,
)

ZERO_FRACTION_LIMIT = 0.9
CONSTANT_SPREAD = 1e-6


def probe_reference(request: dict[str, Any]) -> dict[str, Any]:
    """Validate the reference file named in ``request``; answer ``{"ok": ..., "metadata" | "error":
    ...}``."""
    source = Path(request["reference_path"]).read_text(encoding="utf-8")
    try:
        module = load_reference(source, request["name"])
        metadata = read_metadata(module)
        device = "cuda" if _cuda() else "cpu"
        dtype = "float32" if "float32" in metadata.dtypes else metadata.dtypes[0]
        for size in metadata.check_sizes:
            _probe_size(module, size, device, dtype)
        _probe_size(module, hidden_size(module, metadata.check_sizes, 0), device, dtype)
        _probe_distributions(module, metadata.check_sizes[0], device, dtype)
    except SpecError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # the proposer's code failed: a refusal with its message, not a crash
        return {"ok": False, "error": f"the reference raised {type(exc).__name__}: {exc}"}
    return {
        "ok": True,
        "metadata": {
            "check_sizes": [list(s) if isinstance(s, tuple) else s for s in metadata.check_sizes],
            "bench_sizes": [list(s) if isinstance(s, tuple) else s for s in metadata.bench_sizes],
            "dtypes": list(metadata.dtypes),
            "min_speedup": metadata.min_speedup,
        },
    }


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _probe_size(module: Any, size: Size, device: str, dtype: str) -> None:
    import torch

    from kavi.gpu.compare import bitwise_equal

    first = make_case_inputs(module, size, 0, device, dtype, "normal")
    again = make_case_inputs(module, size, 0, device, dtype, "normal")
    other = make_case_inputs(module, size, 1, device, dtype, "normal")
    if len(first) != len(again) or not all(bitwise_equal(a, b) for a, b in zip(first, again, strict=True)):
        raise SpecError(f"make_inputs is not deterministic in its seed at size {size}: use a seeded Generator")
    if all(bitwise_equal(a, b) for a, b in zip(first, other, strict=True)):
        raise SpecError(f"make_inputs returns the same inputs for different seeds at size {size}")
    kept = [t.clone() for t in first]
    output = module.reference(*first)
    if not isinstance(output, torch.Tensor):
        raise SpecError(f"reference() must return one torch.Tensor, got {type(output).__name__}")
    if not all(bitwise_equal(a, b) for a, b in zip(first, kept, strict=True)):
        raise SpecError("reference() modifies its inputs: it must be a pure function")
    values = output.detach().to(torch.float64)
    _refuse_degenerate(values, size)
    other_values = module.reference(*other).detach().to(torch.float64)
    if other_values.shape == values.shape and torch.allclose(values, other_values, rtol=1e-6, atol=1e-12):
        raise SpecError(f"the reference output at size {size} is unchanged across seeds: it must depend on the inputs")
    precise = module.reference(*to_float64(first))
    if not isinstance(precise, torch.Tensor) or precise.shape != output.shape:
        raise SpecError(
            "reference() must accept float64 inputs and return the same shape (the gates "
            "compare against the float64 result)"
        )


def _refuse_degenerate(values: Any, size: Size) -> None:
    import torch

    if values.numel() == 0:
        raise SpecError(f"the reference output at size {size} is empty")
    if not torch.isfinite(values).all():
        raise SpecError(f"the reference output at size {size} has NaN or Inf on normal inputs")
    magnitude = values.abs()
    largest = magnitude.max().item()
    if largest == 0 or (magnitude == 0).double().mean().item() > ZERO_FRACTION_LIMIT:
        raise SpecError(
            f"the reference output at size {size} is (nearly) all zero: a kernel writing "
            "zeros would pass; choose inputs for which the answer carries information"
        )
    if values.numel() > 1 and (values.max() - values.min()).item() <= CONSTANT_SPREAD * largest:
        raise SpecError(
            f"the reference output at size {size} is (nearly) constant: a kernel writing one "
            "value would pass; choose inputs for which the answer varies"
        )


def _probe_distributions(module: Any, size: Size, device: str, dtype: str) -> None:
    """Every input distribution the gate uses must give a finite float64 answer."""
    import torch

    for seed, dist in enumerate(DISTRIBUTIONS):
        inputs = make_case_inputs(module, size, seed, device, dtype, dist)
        output = module.reference(*to_float64(inputs))
        if not torch.isfinite(output).all():
            raise SpecError(
                f"under the {dist} inputs the float64 reference is not finite at size {size}: "
                "keep make_inputs' magnitudes in range (accept a `dist` parameter to control them)"
            )
