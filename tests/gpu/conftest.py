"""Shared helpers for the GPU harness tests. torch is imported lazily so screen tests run without
it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KERNELS = REPO / "kernels"
REPLAYS = REPO / "src" / "kavi" / "demo_replays" / "kernels"


def shipped_file(filename: str) -> Path:
    """A shipped kernel file: TRUSTED in kernels/, or only a recording when no GPU could verify it (CuPy)."""
    trusted = KERNELS / filename
    if trusted.is_file():
        return trusted
    name = filename.removeprefix("test_").removesuffix(".py")
    return REPLAYS / name / "kernels" / filename


ADVERSARIAL = Path(__file__).resolve().parent / "adversarial"


def make_spec(name: str, *, dtypes: tuple[str, ...] | None = None, check_sizes=None):
    """A KernelSpec for a shipped reference, built in-process (no probe child: fast)."""
    from kavi.gpu.reference import load_reference, read_metadata
    from kavi.gpu.spec import KernelSpec

    source = (KERNELS / "references" / f"{name}.py").read_text(encoding="utf-8")
    metadata = read_metadata(load_reference(source, name))
    return KernelSpec(
        name=name,
        description=f"test spec for {name}",
        reference_source=source,
        reference_sha256=hashlib.sha256(source.encode()).hexdigest(),
        check_sizes=check_sizes or metadata.check_sizes,
        bench_sizes=metadata.bench_sizes,
        dtypes=dtypes or metadata.dtypes,
        min_speedup=metadata.min_speedup,
    )


def make_context(spec, tmp_path: Path, kernel_source: Path, test_source: Path | None = None):
    """A sandbox holding the candidate as kernels/<name>.py (+ its test) and a gate context on
    it."""
    from kavi.gates.kernel import KernelGateContext

    sandbox = tmp_path / "sandbox"
    (sandbox / "kernels").mkdir(parents=True)
    shutil.copyfile(kernel_source, sandbox / spec.kernel_path)
    test = test_source or shipped_file(f"test_{spec.name}.py")
    shutil.copyfile(test, sandbox / spec.test_path)
    return KernelGateContext(spec=spec, sandbox=sandbox, cache_dir=tmp_path / "cache", timeout_s=300)


@pytest.fixture
def needs_triton():
    """Skip (with the reason) when the gpu extra is not installed."""
    pytest.importorskip("torch", reason="torch not installed: `uv sync --extra gpu`")
    pytest.importorskip("triton", reason="triton not installed: `uv sync --extra gpu`")
