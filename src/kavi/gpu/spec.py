"""The frozen spec of a GPU kernel: its reference file, sizes, dtypes and speed target.

The reference file's text is part of the spec (``reference_source``), hashed and frozen at propose
time,
so the gates always judge a candidate against exactly what was proposed.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from kavi.errors import SpecError
from kavi.gpu import torch_missing_reason
from kavi.gpu.reference import DEFAULT_MIN_SPEEDUP, SUPPORTED_DTYPES, Size
from kavi.side_effects import SideEffect
from kavi.spec import SPEC_FORMAT, canonical_json, installed_paths, validate_name

PROBE_TIMEOUT_S = 300.0


class KernelSpec(BaseModel):
    """The frozen spec of a kernel: ``kernels/<name>.py`` must match ``reference_source``'s
    reference()."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    install_dir: ClassVar[str] = "kernels"

    format: int = SPEC_FORMAT
    kind: Literal["kernel"] = "kernel"
    name: str
    description: str
    side_effect: SideEffect = SideEffect.GPU_KERNEL
    reference_source: str
    reference_sha256: str
    check_sizes: tuple[Size, ...]
    bench_sizes: tuple[Size, ...]
    dtypes: tuple[str, ...]
    min_speedup: float = DEFAULT_MIN_SPEEDUP

    @field_validator("description")
    @classmethod
    def _description_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the description must not be empty")
        return value.strip()

    @field_validator("dtypes")
    @classmethod
    def _known_dtypes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [d for d in value if d not in SUPPORTED_DTYPES]
        if unknown or not value:
            raise ValueError(f"dtypes must be a non-empty subset of {SUPPORTED_DTYPES}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KernelSpec:
        if self.side_effect is not SideEffect.GPU_KERNEL:
            raise ValueError("a kernel spec's side effect is GPU_KERNEL")
        if hashlib.sha256(self.reference_source.encode()).hexdigest() != self.reference_sha256:
            raise ValueError("reference_sha256 does not match reference_source")
        if self.min_speedup <= 0:
            raise ValueError("min_speedup must be positive")
        return self

    @property
    def kernel_path(self) -> str:
        return installed_paths(self.install_dir, self.name)[0]

    @property
    def test_path(self) -> str:
        return installed_paths(self.install_dir, self.name)[1]

    @property
    def allowed_paths(self) -> tuple[str, str]:
        """The only paths a build may create or change (the diff allowlist)."""
        return (self.kernel_path, self.test_path)

    def canonical_json(self) -> bytes:
        """The bytes that are frozen and hashed: sorted keys, no whitespace variance."""
        return canonical_json(self.model_dump(mode="json"))


def kernel_build_rules(spec: KernelSpec) -> tuple[str, ...]:
    """The rules a builder reads in its packet (BuildPacket.rules) for a kernel proposal."""
    dtypes = ", ".join(spec.dtypes)
    return (
        f"Write {spec.kernel_path} exporting run(*inputs) -> torch.Tensor that matches "
        f"reference() in the frozen reference_source for every size and for dtypes {dtypes}, "
        f"and {spec.test_path}.",
        "Do the work in a real kernel: @triton.jit (no @triton.autotune if it must be checked"
        " without a GPU), a cupy.RawKernel/ElementwiseKernel, or "
        "torch.utils.cpp_extension.load_inline.",
        "Host code may only allocate (torch.empty/empty_like/zeros/ones/full), read shapes, "
        "strides and dtypes, reshape/view/contiguous, and launch: no torch compute, no @, no "
        "casts.",
        "No try/except, streams, threads, processes, ctypes, gc, inspect, sys, os or file "
        "access, no assignment to attributes of torch/triton/cupy/time, and no state kept "
        "between calls.",
        "Write every output element; never modify the inputs; return a fresh tensor of the "
        "reference's shape and dtype on the inputs' device.",
        "Accuracy is judged against float64: fp32 within 1e-4, fp16/bf16 within 1e-2 "
        "(relative norm and elementwise); accumulate in fp32, and use IEEE fp32 products (no "
        "tf32) for fp32.",
        "Inputs include odd, non-power-of-two sizes you have not seen, and normal, uniform, "
        "heavy-tailed and large-magnitude values: mask every load and store; be numerically "
        "stable.",
        "Speed: the 95% CI lower bound of the speedup over torch must be >= "
        f"{spec.min_speedup} at the BENCH_SIZES (measured on a GPU only).",
    )


def load_kernel_spec(data: bytes) -> KernelSpec:
    """Read a frozen kernel spec artifact back."""
    return KernelSpec.model_validate_json(data)


def freeze_reference(name: str, description: str, reference_file: Path) -> KernelSpec:
    """Validate a reference file (in a child process) and return the spec that will be frozen.

    Raises :class:`SpecError` when the name is invalid, torch is missing, or the reference is
    invalid or
    degenerate (nearly constant, nearly all zero, unchanged across seeds, not finite).
    """
    validate_name(name)
    if not reference_file.is_file():
        raise SpecError(f"reference file {reference_file} does not exist")
    source = reference_file.read_text(encoding="utf-8")
    missing = torch_missing_reason()
    if missing is not None:
        raise SpecError(f"cannot check the reference: {missing}")
    from kavi.gpu import gpu_status
    from kavi.gpu.process import spawn_child

    with tempfile.TemporaryDirectory(prefix="kavi-probe-") as scratch:
        workdir = Path(scratch)
        frozen = workdir / "reference.py"
        frozen.write_text(source, encoding="utf-8")
        outcome = spawn_child(
            "probe",
            {"reference_path": str(frozen), "name": name},
            workdir,
            out_name="probe.json",
            timeout_s=PROBE_TIMEOUT_S,
            interpret=not gpu_status().cuda,
        )
        if outcome.failure is not None:
            raise SpecError(f"the reference could not be checked: the probe {outcome.failure}")
        answer: dict[str, Any] = _read_json(outcome.out_path)
    if not answer.get("ok"):
        raise SpecError(f"reference refused: {answer.get('error', 'unknown reason')}")
    metadata = answer["metadata"]
    try:
        return KernelSpec(
            name=name,
            description=description,
            reference_source=source,
            reference_sha256=hashlib.sha256(source.encode()).hexdigest(),
            check_sizes=_sizes(metadata["check_sizes"]),
            bench_sizes=_sizes(metadata["bench_sizes"]),
            dtypes=tuple(metadata["dtypes"]),
            min_speedup=metadata["min_speedup"],
        )
    except ValidationError as exc:
        raise SpecError(f"invalid kernel spec: {exc.errors()[0]['msg']}") from None


def _sizes(raw: list[Any]) -> tuple[Size, ...]:
    return tuple(tuple(size) if isinstance(size, list) else int(size) for size in raw)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise SpecError("the reference probe gave a malformed answer")
    return value
