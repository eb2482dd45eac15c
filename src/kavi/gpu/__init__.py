"""The kernel harness: reference specs, the anti-cheat screen, the correctness and speed protocols.

Nothing here imports torch, triton or numpy at module level: they live in the optional ``gpu``
extra, and
``import kavi.gpu`` must work (and say why kernels cannot be checked) on a machine without them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

MIN_TRITON_FOR_INTERPRETER = (3, 7)


@dataclass(frozen=True)
class GpuStatus:
    """What this machine can do with kernels, with the reason when it cannot."""

    torch_version: str | None
    triton_version: str | None
    cuda: bool
    device_name: str | None

    @property
    def reason(self) -> str | None:
        """Why kernels cannot be checked at all here (None when torch is usable)."""
        if self.torch_version is None:
            return "torch not installed: run `uv sync --extra gpu`"
        return None

    @property
    def interpreter_reason(self) -> str | None:
        """Why Triton's CPU interpreter cannot be used here (None when it can)."""
        if self.reason is not None:
            return self.reason
        if self.triton_version is None:
            return "triton not installed: run `uv sync --extra gpu`"
        if _version_tuple(self.triton_version) < MIN_TRITON_FOR_INTERPRETER:
            return (
                f"triton {self.triton_version} is older than 3.7, whose CPU interpreter "
                "gives wrong results: upgrade triton"
            )
        return None


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _installed_version(package: str) -> str | None:
    if importlib.util.find_spec(package) is None:
        return None
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_status() -> GpuStatus:
    """Probe torch, triton and CUDA; imports torch only when it is installed."""
    torch_version = _installed_version("torch")
    triton_version = _installed_version("triton")
    cuda = False
    device_name = None
    if torch_version is not None:
        import torch

        cuda = bool(torch.cuda.is_available())
        device_name = torch.cuda.get_device_name() if cuda else None
    return GpuStatus(torch_version, triton_version, cuda, device_name)


def torch_missing_reason() -> str | None:
    """A cheap check that never imports torch: the reason kernels cannot run, or None."""
    if importlib.util.find_spec("torch") is None:
        return "torch not installed: run `uv sync --extra gpu`"
    return None


__all__ = ["GpuStatus", "gpu_status", "torch_missing_reason"]
