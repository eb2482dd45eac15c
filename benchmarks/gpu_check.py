"""The Python half of benchmarks/gpu_check.sh (the script runs each step with its own time limit).

    python benchmarks/gpu_check.py gpu        exit 0 on a CUDA GPU; else print why not and exit 3
    python benchmarks/gpu_check.py versions   driver, CUDA, torch, triton, cupy, the device
    python benchmarks/gpu_check.py cupy OUT   the CuPy path: correctness gate and bench of vector_scale_cupy
    python benchmarks/gpu_check.py goals BENCH_JSON   the issue's speed goals against a bench-kernel table

Nothing here measures on a CPU: without CUDA `gpu` says so and the script stops.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NO_GPU_EXIT = 3
# The goals, measured side by side with torch in the same run: (kernel, size, dtype, minimum speedup).
SPEEDUP_GOALS = (
    ("matmul_bf16", 8192, "bfloat16", 1.0, "matmul bf16 8192 >= 1.0x torch.matmul"),
    ("softmax", None, None, 1.3, "softmax >= 1.3x torch eager"),
    ("attention", None, None, 1.0, "attention forward >= 1.0x the torch reference (eager, not SDPA)"),
)
BANDWIDTH_BOUND = ("vector_add", "softmax", "layernorm")
BANDWIDTH_GOAL = 0.85


def gpu_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed (uv sync --extra gpu)"
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False: no CUDA GPU or driver on this machine"
    return None


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    smi = shutil.which("nvidia-smi")
    if smi:
        query = [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        found["nvidia-smi"] = subprocess.run(query, capture_output=True, text=True, check=False).stdout.strip()
    else:
        found["nvidia-smi"] = "not found"
    for package in ("torch", "triton", "cupy", "cupy-cuda12x", "cupy-cuda13x", "numpy", "kavi"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        import torch

        found["torch CUDA"] = str(torch.version.cuda)
        if torch.cuda.is_available():
            found["device"] = torch.cuda.get_device_name()
            found["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    except ImportError:
        found["torch"] = "not installed"
    if not any(key.startswith("cupy") for key in found):
        found["cupy"] = "not installed (the CuPy path is SKIPPED)"
    return found


def cupy_path(out: Path) -> dict[str, Any]:
    """Correctness gate and benchmark of the CuPy kernel, from its recording (not TRUSTED until this passes)."""
    from kavi.gates.kernel import KernelCorrectnessGate, KernelGateContext, KernelScreenGate
    from kavi.gpu.bench import bench_kernel
    from kavi.gpu.spec import freeze_reference

    name = "vector_scale_cupy"
    recording = ROOT / "src" / "kavi" / "demo_replays" / "kernels" / name / "kernels"
    spec = freeze_reference(name, "gpu check", ROOT / "kernels" / "references" / f"{name}.py")
    report: dict[str, Any] = {"kernel": name}
    with tempfile.TemporaryDirectory(prefix="kavi-gpu-check-") as scratch:
        sandbox = Path(scratch)
        (sandbox / "kernels").mkdir()
        for path in recording.glob("*.py"):
            shutil.copyfile(path, sandbox / "kernels" / path.name)
        context = KernelGateContext(spec=spec, sandbox=sandbox, cache_dir=sandbox / "cache")
        for gate in (KernelScreenGate(), KernelCorrectnessGate()):
            result = gate.run(context)
            report[gate.name] = {"status": str(result.status), "summary": result.summary}
        rows = bench_kernel(spec, workspace=ROOT, kernel_file=sandbox / spec.kernel_path, compile_baseline=False)
        report["bench"] = [row.to_json() for row in rows]
    (out / "cupy.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return report


def goals(bench_json: Path) -> list[str]:
    """One line per goal: met, missed, or not measured."""
    rows = json.loads(bench_json.read_text(encoding="utf-8")).get("rows", [])
    lines = []
    for kernel, size, dtype, minimum, label in SPEEDUP_GOALS:
        chosen = [
            r
            for r in rows
            if r["kernel"] == kernel and (size is None or r["size"] == size) and (dtype is None or r["dtype"] == dtype)
        ]
        if not chosen:
            lines.append(f"NOT MEASURED  {label}")
            continue
        worst = min(chosen, key=lambda r: r["speedup"])
        verdict = "met" if worst["speedup"] >= minimum else "MISSED"
        where = f"worst {worst['size']} {worst['dtype']}: {worst['speedup']:.2f} [{worst['speedup_low']:.2f}, "
        lines.append(f"{verdict:<13} {label} ({where}{worst['speedup_high']:.2f}])")
    for kernel in BANDWIDTH_BOUND:
        fractions = [r["roofline_fraction"] for r in rows if r["kernel"] == kernel and r.get("roofline_fraction")]
        label = f"{kernel} >= {BANDWIDTH_GOAL:.0%} of measured copy bandwidth"
        if not fractions:
            lines.append(f"NOT MEASURED  {label}")
            continue
        verdict = "met" if min(fractions) >= BANDWIDTH_GOAL else "MISSED"
        lines.append(f"{verdict:<13} {label} (lowest {min(fractions):.0%})")
    return lines


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "gpu":
        reason = gpu_reason()
        if reason is None:
            return 0
        print(f"no GPU: {reason}")
        return NO_GPU_EXIT
    if command == "versions":
        for key, value in versions().items():
            print(f"{key:<14} {value}")
        return 0
    if command == "cupy" and len(argv) == 2:
        print(json.dumps(cupy_path(Path(argv[1])), indent=2, sort_keys=True))
        return 0
    if command == "goals" and len(argv) == 2:
        print("\n".join(goals(Path(argv[1]))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
