"""kavi.gpu and the kernel gates import and answer sensibly on a machine without torch."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
for name in ("torch", "triton", "numpy", "cupy"):
    sys.modules[name] = None  # makes `import torch` fail and find_spec return None
import kavi.gpu, kavi.gpu.screen, kavi.gpu.spec, kavi.gpu.correctness, kavi.gpu.bench
import kavi.gates.kernel
from kavi.gpu import torch_missing_reason, gpu_status
from kavi.gpu.bench import bench_kernel
print(torch_missing_reason())
print(gpu_status().reason)
print(bench_kernel("vector_add"))
"""


def test_import_without_torch_reports_it():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("torch not installed")
    assert lines[1].startswith("torch not installed")
    assert lines[2] == "[]"
    assert "no GPU" in result.stderr  # bench_kernel logs why it returned nothing
