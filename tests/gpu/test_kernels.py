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
    assert row.wall_clock_ok and row.fresh_inputs and row.trustworthy  # inside the parent's own clock
    assert row.speedup_low <= row.speedup <= row.speedup_high
    assert "dry run" in row.device
    cheat = run_benchmark(spec, ADVERSARIAL / "low_precision.py", sizes=(1000,), device="cpu")
    assert not cheat.rows[0].outputs_correct
    assert any("[tolerance]" in note for note in cheat.rows[0].notes)


# --- issue 15 §1: the speed protocol's checks, through the CPU dry run and from raw samples --------


@pytest.mark.slow
def test_a_forged_answer_file_is_refused_not_believed():
    """The candidate overwrites the harness's answer at exit with made-up times: without the signed
    channel the parent would report a 100x speedup; with it, the run is refused."""
    from kavi.gpu.bench import run_benchmark, summarize_row

    from .conftest import ADVERSARIAL

    forged_source = (ADVERSARIAL / "forges_timing.py").read_text()
    assert '"event_ms": [0.01] * 100' in forged_source
    fake = {
        "size": 1000,
        "dtype": "float32",
        "samples": {
            "candidate": {"event_ms": [0.01] * 100, "host_ms": [0.02] * 100},
            "torch": {"event_ms": [1.0] * 100, "host_ms": [1.1] * 100},
        },
        "recheck": {"ok": True, "problems": []},
    }
    believed = summarize_row("vector_add", fake, {"peak_flops_per_s": {}}, "forged")
    assert believed.trustworthy and believed.speedup_low > 50  # what trusting the file would give
    spec = make_spec("vector_add", dtypes=("float32",))
    outcome = run_benchmark(spec, ADVERSARIAL / "forges_timing.py", sizes=(1000,), device="cpu")
    assert not outcome.rows
    assert "[timing-channel]" in (outcome.reason or "")


@pytest.mark.slow
def test_lazy_timed_calls_are_caught_by_the_secret_recheck():
    """Work done only on each input set's last timed call passes a re-check of those calls alone; the
    secretly drawn calls (and fresh inputs per call) catch it."""
    from kavi.gpu.bench import run_benchmark

    from .conftest import ADVERSARIAL

    spec = make_spec("vector_add", dtypes=("float32",))
    outcome = run_benchmark(spec, ADVERSARIAL / "lazy_timed_calls.py", sizes=(1000,), device="cpu")
    row = outcome.rows[0]
    assert row.fresh_inputs and not row.outputs_correct and not row.trustworthy
    last_calls = {97, 98, 99}
    failed = [int(note.split()[1].rstrip(":")) for note in row.notes if note.startswith("call ")]
    assert failed and not set(failed) & last_calls  # the last call per set alone would have passed


def _raw_row(candidate_ms, torch_ms, *, torch_first=None, io_bytes=None, wall=None):
    raw = {
        "size": 1 << 24,
        "dtype": "float32",
        "samples": {
            "candidate": {"event_ms": candidate_ms, "host_ms": [t + 0.01 for t in candidate_ms]},
            "torch": {"event_ms": torch_ms, "host_ms": [t + 0.01 for t in torch_ms]},
        },
        "recheck": {"ok": True, "problems": []},
        "io_bytes": io_bytes,
    }
    if torch_first is not None:
        raw["samples"]["torch"]["first"] = torch_first
    if wall is not None:
        raw["wall_start"], raw["wall_end"] = wall
    return raw


def test_a_time_under_the_roofline_floor_is_a_rejection():
    """An H100 reads at most 3.35 TB/s: 192 MiB in 0.01 ms is impossible, whatever the probe said."""
    from kavi.gpu.bench import summarize_row

    honest = summarize_row("k", _raw_row([0.09] * 100, [0.1] * 100, io_bytes=3 * 4 << 24), {}, "NVIDIA H100 80GB HBM3")
    assert honest.floor_ms is not None and not honest.impossible
    one_fake_call = [0.09] * 99 + [0.001]
    cheat = summarize_row("k", _raw_row(one_fake_call, [0.1] * 100, io_bytes=3 * 4 << 24), {}, "NVIDIA H100 80GB HBM3")
    assert cheat.impossible and not cheat.trustworthy  # one impossible call is enough


def test_work_deferred_into_the_next_call_shows_as_an_order_effect():
    from kavi.gpu.bench import summarize_row

    first = [index % 2 == 1 for index in range(100)]
    steady = summarize_row("k", _raw_row([0.5] * 100, [1.0] * 100, torch_first=first), {}, "cpu")
    assert not steady.deferred_work
    spilled = [1.0 if before else 2.0 for before in first]  # torch pays for the candidate's work
    cheat = summarize_row("k", _raw_row([0.5] * 100, spilled, torch_first=first), {}, "cpu")
    assert cheat.deferred_work and not cheat.trustworthy


def test_times_that_do_not_fit_the_parents_wall_clock_are_refused():
    from kavi.gpu.bench import summarize_row

    raw = _raw_row([0.5] * 100, [1.0] * 100, wall=(100.0, 100.5))
    assert summarize_row("k", raw, {}, "cpu", parent_clock=(99.0, 101.0)).wall_clock_ok
    inflated = _raw_row([0.5] * 100, [100.0] * 100, wall=(100.0, 100.5))  # 10 s of torch in 0.5 s
    assert not summarize_row("k", inflated, {}, "cpu", parent_clock=(99.0, 101.0)).wall_clock_ok
    outside = _raw_row([0.5] * 100, [1.0] * 100, wall=(200.0, 200.5))
    assert not summarize_row("k", outside, {}, "cpu", parent_clock=(99.0, 101.0)).wall_clock_ok


@pytest.mark.slow
@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only record")
def test_a_kernel_checked_only_through_the_interpreter_is_recorded_and_shown_as_such(tmp_path):
    """Promotion records where correctness was checked (m011); `kavi list` and `kavi show` say it."""
    import os
    import subprocess
    import sys

    from kavi.demo import run_demo
    from kavi.stages.common import Forge
    from kavi.stages.queries import list_skills
    from kavi.workspace import Workspace

    report = run_demo(tmp_path / "ws", lambda *args: None, kernels=True)
    kernel = next(skill for skill in report.skills if skill["name"] == "vector_add")
    assert kernel["status"] == "TRUSTED"
    forge = Forge.open(Workspace(tmp_path / "ws"))
    try:
        rows = {row["name"]: row for row in list_skills(forge)}
    finally:
        forge.close()
    assert rows["vector_add"]["correctness_device"] == "interpreter"
    assert all(row["correctness_device"] is None for name, row in rows.items() if name != "vector_add")
    env = {**os.environ, "COLUMNS": "250"}

    def kavi(*args: str) -> str:
        argv = [sys.executable, "-m", "kavi", *args, "--workspace", str(tmp_path / "ws")]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return " ".join(done.stdout.split())

    assert "CPU interpreter only" in kavi("list-skills")
    assert "only through Triton's CPU interpreter" in kavi("show", "vector_add")
