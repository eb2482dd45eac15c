"""Benchmarks of a kernel against torch (GPU only), for the speed gate and for people.

:func:`run_benchmark` spawns the ``bench`` child (:mod:`kavi.gpu.timing`) and turns its raw per-call
samples into :class:`BenchRow` s: medians, a bootstrap 95% interval on the speedup over torch eager,
the
torch.compile time when it compiled, the roofline fraction, and whether the time was impossible or
the
timer disagreed with the host clock. Without a CUDA GPU nothing is measured: :func:`bench_kernel`
logs
"no GPU" and returns no rows, and the speed gate reports the result as unmeasured.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kavi.errors import KaviError, SpecError
from kavi.gpu import gpu_status
from kavi.gpu.reference import Size, dtype_name, normalize_size, salt_from
from kavi.gpu.spec import KernelSpec
from kavi.gpu.stats import (
    MIN_SAMPLES,
    bootstrap_speedup,
    clocks_agree,
    deferred_work,
    device_peaks,
    fits_wall_clock,
    highest,
    is_impossible,
    median,
    roofline_floor_ms,
    roofline_fraction,
)

LOG = logging.getLogger("kavi.gpu.bench")
DEFAULT_MATMUL_SIZES: tuple[Size, ...] = (4096, 8192, 16384)
WARMUP_CALLS = 10
BENCH_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class BenchRow:
    """One (size, dtype) measurement."""

    kernel: str
    size: Size
    dtype: str
    kernel_ms: float
    torch_ms: float
    speedup: float
    speedup_low: float
    speedup_high: float
    compiled_ms: float | None
    speedup_vs_compiled: float | None
    floor_ms: float | None
    roofline_fraction: float | None
    impossible: bool
    clocks_agree: bool
    outputs_correct: bool
    samples: int
    device: str
    notes: tuple[str, ...] = ()
    wall_clock_ok: bool = True
    deferred_work: bool = False
    fastest_ms: float | None = None
    fresh_inputs: bool = False

    @property
    def trustworthy(self) -> bool:
        """Real work, timers that agree with each other and the parent's clock, correct outputs, no
        work pushed into the next call."""
        return (
            not self.impossible
            and self.clocks_agree
            and self.outputs_correct
            and self.wall_clock_ok
            and not self.deferred_work
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["size"] = list(self.size) if isinstance(self.size, tuple) else self.size
        data["notes"] = list(self.notes)
        return data


@dataclass(frozen=True)
class BenchOutcome:
    """Rows, or the reason there are none (``measured`` is False without a GPU)."""

    rows: tuple[BenchRow, ...]
    measured: bool
    reason: str | None = None


def no_gpu_reason() -> str | None:
    """Why nothing can be timed here, or None on a CUDA machine."""
    status = gpu_status()
    if status.reason is not None:
        return f"no GPU: {status.reason}"
    if not status.cuda:
        return "no GPU: CUDA is not available on this machine, so kernel speed is unmeasured"
    return None


def run_benchmark(
    spec: KernelSpec,
    kernel_file: Path,
    *,
    sizes: tuple[Size, ...] | None = None,
    dtypes: tuple[str, ...] | None = None,
    samples: int = MIN_SAMPLES,
    warmup: int = WARMUP_CALLS,
    timeout_s: float = BENCH_TIMEOUT_S,
    compile_baseline: bool = True,
    require_isolation: bool = False,
    device: str = "cuda",
    salt: int | None = None,
    confidence: float = 0.95,
) -> BenchOutcome:
    """Time ``kernel_file`` against torch on the GPU; never raises for what the candidate does.

    ``device="cpu"`` is a dry run of the whole protocol through Triton's interpreter with host-clock
    times, for tests: its rows are not measurements and the speed gate never uses it. ``salt`` picks
    the input seeds (default: derived from the reference and the kernel, so the gate is reproducible;
    forge --optimize re-measures on fresh ones); ``confidence`` is the speedup interval's level.
    """
    reason = no_gpu_reason() if device == "cuda" else None
    if reason is not None:
        return BenchOutcome((), False, reason)
    if samples < MIN_SAMPLES:
        raise SpecError(f"the speed protocol needs at least {MIN_SAMPLES} samples, got {samples}")
    from kavi.gpu.process import private_copy, spawn_child

    source = kernel_file.read_text(encoding="utf-8")
    request = {
        "name": spec.name,
        "reference_source": spec.reference_source,
        "sizes": [list(s) if isinstance(s, tuple) else s for s in (sizes or spec.bench_sizes)],
        "dtypes": list(dtypes or spec.dtypes),
        "samples": samples,
        "warmup": warmup,
        "salt": salt if salt is not None else salt_from(spec.reference_sha256, source, "bench"),
        "compile": compile_baseline,
        "device": device,
    }
    with tempfile.TemporaryDirectory(prefix="kavi-bench-") as scratch:
        request["kernel_path"] = str(private_copy(kernel_file, Path(scratch)))
        outcome = spawn_child(
            "bench",
            request,
            Path(scratch),
            out_name="bench.json",
            timeout_s=timeout_s,
            interpret=device == "cpu",
            require_isolation=require_isolation,
        )
        if outcome.failure is not None:
            return BenchOutcome((), True, f"the benchmark process {outcome.failure}")
        answer = json.loads(outcome.out_path.read_text(encoding="utf-8"))
    if "error" in answer:
        return BenchOutcome((), False, f"no GPU: {answer['error']}")
    clock = (outcome.started, outcome.ended)
    rows = tuple(
        summarize_row(spec.name, raw, answer["machine"], answer["device"], parent_clock=clock, confidence=confidence)
        for raw in answer["rows"]
    )
    return BenchOutcome(rows, True)


def summarize_row(
    kernel: str,
    raw: dict[str, Any],
    machine: dict[str, Any],
    device: str,
    *,
    parent_clock: tuple[float, float] | None = None,
    confidence: float = 0.95,
) -> BenchRow:
    """Raw samples from the child -> one BenchRow. Every statistic is computed here, in the parent,
    from the raw per-call times: medians, the interval, the roofline floor (the higher of the
    spec-sheet and the measured peaks; the inputs' and output's bytes when the reference declares
    neither flops nor bytes), the clock checks against the parent's own wall clock, and the
    order check (is the baseline slower right after the candidate?). ``confidence`` is the interval's level
    (`forge --optimize` corrects it for the number of candidates it measured)."""
    samples = raw["samples"]
    candidate = samples["candidate"]["event_ms"]
    eager = samples["torch"]["event_ms"]
    estimate = bootstrap_speedup(eager, candidate, confidence=confidence)
    compiled = samples.get("torch.compile", {}).get("event_ms")
    compiled_ms = median(compiled) if compiled else None
    dtype = raw["dtype"]
    table_bandwidth, table_flops = device_peaks(device)
    bytes_moved = raw.get("bytes_moved")
    if not bytes_moved and not raw.get("flops"):
        bytes_moved = raw.get("io_bytes")
    floor = roofline_floor_ms(
        raw.get("flops"),
        bytes_moved,
        highest(machine.get("peak_flops_per_s", {}).get(dtype), table_flops.get(dtype)),
        highest(machine.get("bandwidth_bytes_per_s"), table_bandwidth),
    )
    agree = all(clocks_agree(s["event_ms"], s["host_ms"]) for s in samples.values())
    wall_ok = True
    if parent_clock is not None:
        wall_ok = "wall_start" in raw and fits_wall_clock(
            [s["host_ms"] for s in samples.values()],
            float(raw["wall_start"]),
            float(raw["wall_end"]),
            *parent_clock,
        )
    torch_first = samples["torch"].get("first")
    deferred = bool(torch_first) and deferred_work(eager, torch_first)
    fastest = min(candidate)
    notes = [note for note in (raw.get("compile_note"),) if note]
    notes += raw.get("recheck", {}).get("problems", [])[:5]
    size = raw["size"]
    return BenchRow(
        kernel=kernel,
        size=tuple(size) if isinstance(size, list) else size,
        dtype=dtype,
        kernel_ms=estimate.candidate_ms,
        torch_ms=estimate.baseline_ms,
        speedup=estimate.speedup,
        speedup_low=estimate.low,
        speedup_high=estimate.high,
        compiled_ms=compiled_ms,
        speedup_vs_compiled=(compiled_ms / estimate.candidate_ms) if compiled_ms else None,
        floor_ms=floor,
        roofline_fraction=roofline_fraction(estimate.candidate_ms, floor),
        impossible=is_impossible(fastest, floor),
        clocks_agree=agree,
        outputs_correct=bool(raw.get("recheck", {}).get("ok", False)),
        samples=len(candidate),
        device=device,
        notes=tuple(notes),
        wall_clock_ok=wall_ok,
        deferred_work=deferred,
        fastest_ms=fastest,
        fresh_inputs=bool(raw.get("fresh_inputs", False)),
    )


def bench_kernel(
    name_or_spec: str | KernelSpec,
    sizes: tuple[Size, ...] | list[Size] | None = None,
    *,
    dtypes: tuple[str, ...] | list[str] | None = None,
    workspace: Path | None = None,
    kernel_file: Path | None = None,
    samples: int = MIN_SAMPLES,
    compile_baseline: bool = True,
) -> list[BenchRow]:
    """Benchmark a shipped or promoted kernel. A name is looked up in ``<workspace>/kernels/``
    (the kernel) and ``<workspace>/kernels/references/<name>.py`` (its reference).

    Without a GPU it logs "no GPU ..." and returns no rows. Default sizes are the spec's BENCH_SIZES
    (for matmul those are 4096, 8192 and 16384).
    """
    reason = no_gpu_reason()
    if reason is not None:
        LOG.warning(reason)
        return []
    root = workspace or Path.cwd()
    spec = name_or_spec if isinstance(name_or_spec, KernelSpec) else _spec_from_workspace(name_or_spec, root)
    kernel = kernel_file or root / spec.kernel_path
    if not kernel.is_file():
        raise KaviError(f"kernel file {kernel} not found", hint="promote the kernel or pass kernel_file")
    # Its first run on this GPU re-checks correctness here before any number counts (a kernel whose
    # correctness was only checked through Triton's CPU interpreter has never run this code path).
    from kavi.gpu.correctness import check_kernel_correctness

    verdict = check_kernel_correctness(spec, kernel)
    if verdict.status != "pass":
        raise KaviError(
            f"kernel {spec.name} is not correct on this GPU: {verdict.summary}",
            hint="its CPU-interpreter verification does not hold here: rebuild and verify it on a GPU",
        )
    chosen_sizes = tuple(normalize_size(s, "sizes") for s in sizes) if sizes else None
    chosen_dtypes = tuple(dtype_name(d) for d in dtypes) if dtypes else None
    outcome = run_benchmark(
        spec, kernel, sizes=chosen_sizes, dtypes=chosen_dtypes, samples=samples, compile_baseline=compile_baseline
    )
    if not outcome.rows and outcome.reason:
        LOG.warning(outcome.reason)
    return list(outcome.rows)


def benchable_kernels(root: Path) -> tuple[list[str], list[str]]:
    """The kernels under ``root/kernels`` with a reference, and those whose reference has no installed kernel
    (a recording not yet verified on a GPU, like the CuPy kernel): (installed, not installed)."""
    references = sorted(path.stem for path in (root / "kernels" / "references").glob("*.py"))
    installed = [name for name in references if (root / "kernels" / f"{name}.py").is_file()]
    return installed, [name for name in references if name not in installed]


def _spec_from_workspace(name: str, root: Path) -> KernelSpec:
    from kavi.gpu.spec import freeze_reference

    reference = root / "kernels" / "references" / f"{name}.py"
    if not reference.is_file():
        raise KaviError(
            f"no reference for kernel {name!r} at {reference}",
            hint="pass a KernelSpec or add kernels/references/<name>.py",
        )
    return freeze_reference(name, f"benchmark of {name}", reference)


def write_bench_json(
    rows: list[BenchRow], path: Path, *, reason: str | None = None, notes: list[str] | None = None
) -> Path:
    """Write rows (or the reason there are none) as JSON, atomically."""
    payload: dict[str, Any] = {"rows": [row.to_json() for row in rows], "measured": bool(rows), "reason": reason}
    if notes:
        payload["notes"] = notes
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path
