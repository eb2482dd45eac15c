"""benchmarks/gpu_check.sh: on a machine without a GPU it measures nothing and says so (exit 3, a report that
names the reason); the goals table reads a bench-kernel results file."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAVI_PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def _helper():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_the_check_fails_clearly_and_writes_why(tmp_path: Path) -> None:
    if _helper().gpu_reason() is None:
        pytest.skip("checks the behaviour on a machine without a GPU")
    result = _run(str(tmp_path / "out"))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "gpu_check: NOT RUN: no GPU" in result.stderr
    assert "nothing was measured" in result.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Versions" in report and "torch" in report and "triton" in report and "cupy" in report
    assert "NOT RUN: no GPU" in report
    assert "## kavi bench-kernel" not in report  # no step ran: nothing can pass silently
    assert not (tmp_path / "out" / "bench.json").exists()


def test_without_a_folder_it_says_how_to_call_it() -> None:
    result = _run()
    assert result.returncode == 2 and "usage:" in result.stderr


def test_the_goals_table_names_met_missed_and_unmeasured(tmp_path: Path) -> None:
    def row(kernel: str, size: object, dtype: str, speedup: float, roofline: float | None) -> dict[str, object]:
        return {
            "kernel": kernel,
            "size": size,
            "dtype": dtype,
            "speedup": speedup,
            "speedup_low": speedup - 0.05,
            "speedup_high": speedup + 0.05,
            "roofline_fraction": roofline,
        }

    rows = [
        row("matmul_bf16", 8192, "bfloat16", 1.07, 0.7),
        row("softmax", [4096, 1024], "float16", 1.5, 0.9),
        row("softmax", [8192, 4096], "float32", 1.2, 0.8),
        row("vector_add", 1 << 24, "float32", 1.0, 0.91),
    ]
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"rows": rows}))
    lines = _helper().goals(bench)
    assert any(line.startswith("met") and "matmul bf16 8192" in line for line in lines)
    assert any(line.startswith("MISSED") and "softmax >= 1.3x" in line and "1.20" in line for line in lines)
    assert any(line.startswith("NOT MEASURED") and "attention" in line for line in lines)
    assert any(line.startswith("met") and "vector_add" in line and "91%" in line for line in lines)
    assert any(line.startswith("MISSED") and "softmax >= 85%" in line for line in lines)
    assert any(line.startswith("NOT MEASURED") and "layernorm" in line for line in lines)
