"""The shipped kernels pass the gates through Triton's CPU interpreter; GPU-only parts: SKIPPED."""

from __future__ import annotations

import json
import logging

import pytest

from kavi.gates.base import GateResult, GateStatus
from kavi.gates.kernel import (
    KernelCorrectnessGate,
    KernelScreenGate,
    KernelSpeedGate,
    promotion_allowed,
)

from .conftest import KERNELS, REPLAYS, REPO, make_context, make_spec, shipped_file

torch = pytest.importorskip("torch", reason="torch not installed: `uv sync --extra gpu`")
pytest.importorskip("triton", reason="triton not installed: `uv sync --extra gpu`")

NO_CUDA = not torch.cuda.is_available()
TRITON_KERNELS = ["vector_add", "softmax", "matmul", "attention", "bmm", "layernorm", "matmul_bf16"]


@pytest.mark.slow
@pytest.mark.parametrize("name", TRITON_KERNELS)
def test_shipped_kernel_passes_screen_and_correctness(name, tmp_path):
    spec = make_spec(name)
    context = make_context(spec, tmp_path, KERNELS / f"{name}.py")
    assert KernelScreenGate().run(context).status is GateStatus.PASS
    result = KernelCorrectnessGate().run(context)
    assert result.status is GateStatus.PASS, result.report
    assert all(verdict == "pass" for verdict in result.facts["checks"].values())
    assert result.facts["seeds"] >= 5 and len(result.facts["sizes"]) >= 3
    hidden = result.facts["hidden_size"]
    assert (tuple(hidden) if isinstance(hidden, list) else hidden) not in spec.check_sizes
    assert result.facts["cases"] == 5 * len(result.facts["sizes"]) * len(result.facts["dtypes"])
    assert set(result.facts["distributions"]) == {
        "normal",
        "uniform",
        "heavy_tailed",
        "large_magnitude",
    }
    if NO_CUDA:
        assert result.facts["interpreter"] is True
        assert set(result.facts["dtypes"]) == set(spec.dtypes) - {"bfloat16"} <= {"float32", "float16"}
        assert "bfloat16: SKIPPED" in result.report  # bf16 is never silently passed on CPU
        assert "SKIPPED bfloat16" in result.summary
        assert result.facts["skipped_dtypes"] == ["bfloat16"]


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only behaviour")
def test_cupy_kernel_is_skipped_with_the_reason_on_cpu(tmp_path):
    spec = make_spec("vector_scale_cupy")
    context = make_context(spec, tmp_path, shipped_file("vector_scale_cupy.py"))
    assert KernelScreenGate().run(context).status is GateStatus.PASS
    result = KernelCorrectnessGate().run(context)
    assert result.status is GateStatus.SKIPPED
    assert "CuPy or CUDA C++ kernel needs a CUDA GPU" in result.summary


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only behaviour")
def test_speed_gate_is_unmeasured_without_a_gpu(tmp_path):
    context = make_context(make_spec("vector_add"), tmp_path, KERNELS / "vector_add.py")
    result = KernelSpeedGate().run(context)
    assert result.status is GateStatus.SKIPPED
    assert result.summary.startswith("unmeasured: no GPU")
    assert result.facts["measured"] is False


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only behaviour")
def test_bench_kernel_reports_no_gpu_and_returns_nothing(caplog, tmp_path):
    from kavi.gpu.bench import bench_kernel, write_bench_json

    with caplog.at_level(logging.WARNING, logger="kavi.gpu.bench"):
        rows = bench_kernel("matmul", workspace=REPO)
    assert rows == []
    assert "no GPU" in caplog.text
    written = write_bench_json(rows, tmp_path / "bench.json", reason="no GPU")
    assert json.loads(written.read_text()) == {"rows": [], "measured": False, "reason": "no GPU"}


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only behaviour")
def test_bench_kernel_all_says_no_gpu_and_names_the_kernels_it_would_skip(tmp_path):
    from kavi.gpu.bench import benchable_kernels
    from tests.support import run_cli

    installed, missing = benchable_kernels(REPO)
    assert {"bmm", "layernorm", "matmul_bf16", "matmul"} <= set(installed) and missing == ["vector_scale_cupy"]
    out = tmp_path / "bench.json"
    result = run_cli("bench-kernel", "--all", "--no-compile", "--json", "--out", str(out), "--workspace", str(REPO))
    assert result.code == 0, result.stderr
    answer = result.json()
    assert answer["measured"] is False and answer["rows"] == [] and answer["reason"].startswith("no GPU")
    assert answer["notes"] == [
        "vector_scale_cupy: not benchmarked: no installed kernels/vector_scale_cupy.py (not TRUSTED yet)"
    ]
    assert json.loads(out.read_text())["reason"] == answer["reason"]


def test_bench_rows_summarise_raw_samples():
    from kavi.gpu.bench import DEFAULT_MATMUL_SIZES, summarize_row

    assert DEFAULT_MATMUL_SIZES == (4096, 8192, 16384)
    assert make_spec("matmul").bench_sizes == DEFAULT_MATMUL_SIZES
    raw = {
        "size": 4096,
        "dtype": "float16",
        "samples": {
            "candidate": {"event_ms": [1.0 + i * 1e-3 for i in range(100)], "host_ms": [1.2] * 100},
            "torch": {"event_ms": [2.0 + i * 1e-3 for i in range(100)], "host_ms": [2.2] * 100},
        },
        "recheck": {"ok": True, "problems": []},
        "flops": 2 * 4096**3,
        "bytes_moved": 3 * 4096 * 4096 * 2,
    }
    machine = {"bandwidth_bytes_per_s": 3e12, "peak_flops_per_s": {"float16": 7e14}}
    row = summarize_row("matmul", raw, machine, "test device")
    assert row.speedup == pytest.approx(2.0, rel=0.05)
    assert row.speedup_low <= row.speedup <= row.speedup_high
    assert row.trustworthy and not row.impossible
    assert row.roofline_fraction == pytest.approx(2 * 4096**3 / 7e14 * 1e3 / row.kernel_ms)
    fake = {
        **raw,
        "samples": {
            **raw["samples"],
            "candidate": {"event_ms": [0.01] * 100, "host_ms": [0.02] * 100},
        },
    }
    assert summarize_row("matmul", fake, machine, "test device").impossible
    lying = {
        **raw,
        "samples": {
            **raw["samples"],
            "candidate": {"event_ms": [1.0] * 100, "host_ms": [0.1] * 100},
        },
    }
    assert not summarize_row("matmul", lying, machine, "test device").clocks_agree


def test_promotion_needs_allow_unmeasured_without_a_gpu():
    passed = GateResult("kernel-correctness", GateStatus.PASS, "ok")
    unmeasured = GateResult("kernel-speed", GateStatus.SKIPPED, "unmeasured: no GPU")
    slow = GateResult("kernel-speed", GateStatus.FAIL, "CI lower bound 0.8 < 1.0")
    assert promotion_allowed([passed, unmeasured], allow_unmeasured=False)[0] is False
    assert "--allow-unmeasured" in promotion_allowed([passed, unmeasured], allow_unmeasured=False)[1]
    assert promotion_allowed([passed, unmeasured], allow_unmeasured=True)[0] is True
    assert promotion_allowed([passed, slow], allow_unmeasured=True)[0] is False


def test_a_missing_kernel_file_fails_the_screen(tmp_path):
    from kavi.gates.kernel import KernelGateContext

    context = KernelGateContext(make_spec("vector_add"), tmp_path, tmp_path / "cache")
    result = KernelScreenGate().run(context)
    assert result.status is GateStatus.FAIL and "missing" in result.report


@pytest.mark.parametrize("name", TRITON_KERNELS)
def test_demo_replays_hold_the_same_bytes_as_kernels(name):
    for filename in (f"{name}.py", f"test_{name}.py"):
        replay = REPLAYS / name / "kernels" / filename
        assert replay.read_bytes() == (KERNELS / filename).read_bytes(), replay
    assert (KERNELS / "references" / f"{name}.py").is_file()


def test_the_cupy_kernel_is_a_recording_only_until_a_gpu_verifies_it():
    """kernels/ holds TRUSTED code only; without a GPU the CuPy kernel's correctness cannot be checked."""
    assert not (KERNELS / "vector_scale_cupy.py").exists()
    assert (REPLAYS / "vector_scale_cupy" / "kernels" / "vector_scale_cupy.py").is_file()
    assert (KERNELS / "references" / "vector_scale_cupy.py").is_file()


@pytest.mark.slow
def test_bench_protocol_dry_run_on_cpu_rechecks_timed_outputs():
    """The whole bench pipeline (child, rotation, interleaving, re-check, rows) through the
    interpreter; host-clock times, so only the plumbing and the re-check are asserted."""
    from kavi.gpu.bench import run_benchmark

    from .conftest import ADVERSARIAL

    spec = make_spec("vector_add", dtypes=("float32",))
    honest = run_benchmark(spec, KERNELS / "vector_add.py", sizes=(1000,), device="cpu")
    assert honest.measured and len(honest.rows) == 1
    row = honest.rows[0]
    assert row.samples == 100 and row.outputs_correct and row.clocks_agree
    assert row.speedup_low <= row.speedup <= row.speedup_high
    assert "dry run" in row.device
    cheat = run_benchmark(spec, ADVERSARIAL / "low_precision.py", sizes=(1000,), device="cpu")
    assert not cheat.rows[0].outputs_correct
    assert any("[tolerance]" in note for note in cheat.rows[0].notes)
