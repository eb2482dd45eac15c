"""The timing loop of the speed gate (child side; runs on a CUDA GPU only).

Protocol, per size and dtype:

* the timer's references (``torch.cuda.Event``, ``torch.cuda.synchronize``, ``time.perf_counter``)
are
  captured before the candidate module is imported, so a candidate cannot swap them;
* every call is timed on its own with CUDA events: the L2 cache is flushed (a 256 MiB buffer is
written),
  the start event recorded, the call made, the whole device synchronised, then the end event
  recorded;
  the host clock around the same call cross-checks the event time;
* a few fresh input sets rotate, so no call sees the inputs of the call before;
* warm-up calls first, then at least 100 samples, candidate and baselines (torch eager reference
and, when
  it compiles, ``torch.compile`` of it) interleaved, rotating which goes first;
* the outputs of the candidate's timed calls are kept and re-checked against the reference
afterwards
  (the reference runs only after the candidate's last timed call; the baselines run on their own
  inputs).

The parent (:mod:`kavi.gpu.bench`) turns the raw samples into medians, bootstrap intervals and the
roofline verdict.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

L2_FLUSH_BYTES = 256 << 20
INPUT_SETS = 3
RECHECKED_CALLS = 8  # timed calls whose outputs are re-checked, drawn in secret, besides each set's last
FRESH_INPUT_BUDGET_S = 10.0  # regenerate the inputs for every timed call when that costs less than this


class CallTimer(Protocol):
    """Times one call: returns (device ms, host ms, output)."""

    def time_call(self, function: Callable[..., Any], inputs: Sequence[Any]) -> tuple[float, float, Any]: ...


@dataclass
class Contender:
    """One timed function and the input sets it rotates through."""

    name: str
    function: Callable[..., Any]
    input_sets: list[tuple[Any, ...]]
    event_ms: list[float] = field(default_factory=list)
    host_ms: list[float] = field(default_factory=list)
    last_outputs: dict[int, Any] = field(default_factory=dict)
    # sample index -> output, for the timed calls chosen for the re-check
    kept_outputs: dict[int, Any] = field(default_factory=dict)
    # per sample: whether this contender ran first in it
    first: list[bool] = field(default_factory=list)
    # None: rotate input_sets; else a function that makes the inputs of sample i (fresh per call)
    make_inputs: Callable[[int], tuple[Any, ...]] | None = None


def collect_samples(
    contenders: Sequence[Contender],
    timer: CallTimer,
    *,
    samples: int,
    warmup: int,
    keep_outputs: str,
    keep: frozenset[int] = frozenset(),
) -> None:
    """Warm up, then take ``samples`` interleaved samples of every contender (rotating who goes
    first, so each runs both before and after the others).

    The outputs of ``keep_outputs``'s last timed call on each input set, and of its timed calls in
    ``keep`` (drawn in secret by the caller), are kept for the re-check.
    """
    for contender in contenders:
        for index in range(warmup):
            timer.time_call(contender.function, contender.input_sets[index % len(contender.input_sets)])
    for index in range(samples):
        shift = index % len(contenders)
        for position, contender in enumerate([*contenders[shift:], *contenders[:shift]]):
            slot = index % len(contender.input_sets)
            inputs = contender.input_sets[slot] if contender.make_inputs is None else contender.make_inputs(index)
            event, host, output = timer.time_call(contender.function, inputs)
            contender.event_ms.append(event)
            contender.host_ms.append(host)
            contender.first.append(position == 0)
            if contender.name == keep_outputs:
                if contender.make_inputs is None:
                    contender.last_outputs[slot] = output
                if index in keep or index >= samples - len(contender.input_sets):
                    contender.kept_outputs[index] = output
            del inputs


class CudaTimer:
    """Per-call CUDA-event timing with an L2 flush and a full device synchronise before the end
    event."""

    def __init__(self, event: Any, synchronize: Callable[[], None], clock: Callable[[], float], flush: Any):
        self.event = event
        self.synchronize = synchronize
        self.clock = clock
        self.flush = flush

    def time_call(self, function: Callable[..., Any], inputs: Sequence[Any]) -> tuple[float, float, Any]:
        self.flush.zero_()
        self.synchronize()
        start = self.event(enable_timing=True)
        end = self.event(enable_timing=True)
        host_start = self.clock()
        start.record()
        output = function(*inputs)
        self.synchronize()
        end.record()
        end.synchronize()
        host_ms = (self.clock() - host_start) * 1e3
        return float(start.elapsed_time(end)), host_ms, output


class HostTimer:
    """Host-clock timing for a dry run of the protocol without a GPU (tests only)."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock

    def time_call(self, function: Callable[..., Any], inputs: Sequence[Any]) -> tuple[float, float, Any]:
        start = self.clock()
        output = function(*inputs)
        elapsed = (self.clock() - start) * 1e3
        return elapsed, elapsed, output


def bench_in_child(request: dict[str, Any]) -> int:
    """The ``bench`` command of :mod:`kavi.gpu.child`: time every (size, dtype), write JSON."""
    import torch

    # Timer references first: nothing the candidate does at import can replace them.
    event, synchronize, clock = torch.cuda.Event, torch.cuda.synchronize, time.perf_counter
    from kavi.gpu.candidate import import_candidate
    from kavi.gpu.reference import load_reference, normalize_size

    device = request.get("device", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        Path(request["out_path"]).write_text(json.dumps({"error": "no CUDA GPU"}), encoding="utf-8")
        return 0
    module = load_reference(request["reference_source"], request["name"])
    timer: CallTimer
    if device == "cuda":
        machine = measure_machine(event, synchronize, request["dtypes"])
        flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device="cuda")
        timer = CudaTimer(event, synchronize, clock, flush)
        device_name = torch.cuda.get_device_name()
    else:  # a dry run of the protocol (tests): host-clock times, no roofline, not a measurement
        machine = {"bandwidth_bytes_per_s": None, "peak_flops_per_s": {}}
        timer = HostTimer(clock)
        device_name = "cpu (dry run: host clock, not a measurement)"
    candidate = import_candidate(Path(request["kernel_path"]))  # after the timer and the machine
    rows = []
    for raw_size in request["sizes"]:
        size = normalize_size(tuple(raw_size) if isinstance(raw_size, list) else raw_size, "size")
        for dtype in request["dtypes"]:
            rows.append(_bench_one(module, candidate.run, timer, size, dtype, request, device))
            if device == "cuda":
                torch.cuda.empty_cache()
    answer = {"device": device_name, "machine": machine, "rows": rows}
    Path(request["out_path"]).write_text(json.dumps(answer), encoding="utf-8")
    return 0


def _bench_one(
    module: Any,
    run: Callable[..., Any],
    timer: CallTimer,
    size: Any,
    dtype: str,
    request: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    import torch

    from kavi.gpu.reference import call_optional, make_case_inputs

    salt = int(request["salt"])
    samples = int(request["samples"])
    started = time.time()
    generation = time.perf_counter()
    candidate_sets = [make_case_inputs(module, size, salt + i, device, dtype, "normal") for i in range(INPUT_SETS)]
    per_set_s = (time.perf_counter() - generation) / INPUT_SETS
    baseline_sets = [
        make_case_inputs(module, size, salt + 1000 + i, device, dtype, "normal") for i in range(INPUT_SETS)
    ]
    # Fresh inputs for every timed call where making them is cheap; else the sets rotate.
    fresh = per_set_s * samples <= FRESH_INPUT_BUDGET_S

    def seed_of(index: int) -> int:
        return salt + 10_000 + index if fresh else salt + index % INPUT_SETS

    def inputs_of(index: int) -> tuple[Any, ...]:
        return make_case_inputs(module, size, seed_of(index), device, dtype, "normal")

    contenders = [
        Contender("candidate", run, candidate_sets, make_inputs=inputs_of if fresh else None),
        Contender("torch", module.reference, baseline_sets),
    ]
    # Which timed calls are re-checked is drawn here, after the candidate was imported, from the
    # operating system's randomness: nothing the candidate can read or predict.
    keep = frozenset(random.SystemRandom().sample(range(samples), min(RECHECKED_CALLS, samples)))
    compile_note = None
    if request.get("compile", True) and device == "cuda":
        try:
            compiled = torch.compile(module.reference)
            compiled(*baseline_sets[0])  # type: ignore[no-untyped-call]
            contenders.append(Contender("torch.compile", compiled, baseline_sets))
        except Exception as exc:  # the harness's own baseline; a failed compile only loses that baseline
            compile_note = f"torch.compile failed: {type(exc).__name__}: {exc}"[:300]
    collect_samples(
        contenders,
        timer,
        samples=samples,
        warmup=int(request["warmup"]),
        keep_outputs="candidate",
        keep=keep,
    )
    recheck = _recheck(module, contenders[0], dtype, inputs_of)
    # The least any kernel moves: read every input once, write the output once (the roofline's
    # floor when the reference declares neither flops nor bytes_moved).
    io_bytes = sum(t.numel() * t.element_size() for t in candidate_sets[0])
    first_output = next(iter(contenders[0].kept_outputs.values()), None)
    if isinstance(first_output, torch.Tensor):
        io_bytes += first_output.numel() * first_output.element_size()
    return {
        "size": list(size) if isinstance(size, tuple) else size,
        "dtype": dtype,
        "samples": {c.name: {"event_ms": c.event_ms, "host_ms": c.host_ms, "first": c.first} for c in contenders},
        "compile_note": compile_note,
        "recheck": recheck,
        "fresh_inputs": fresh,
        "flops": call_optional(module, "flops", size, dtype),
        "bytes_moved": call_optional(module, "bytes_moved", size, dtype),
        "io_bytes": io_bytes,
        "wall_start": started,
        "wall_end": time.time(),
    }


def _recheck(
    module: Any, candidate: Contender, dtype: str, inputs_of: Callable[[int], tuple[Any, ...]]
) -> dict[str, Any]:
    """Compare the outputs of the candidate's timed calls (a secret sample, and each input set's
    last) with the reference, computed only now on the same inputs (regenerated from their seed)."""
    import torch

    from kavi.gpu.compare import compare_output
    from kavi.gpu.reference import to_float64

    problems = []
    failed: list[int] = []
    for index, output in sorted(candidate.kept_outputs.items()):
        inputs = inputs_of(index)
        if type(output) is not torch.Tensor:
            problems.append(f"call {index}: returned {type(output).__name__}")
            failed.append(index)
            continue
        try:
            expected = module.reference(*to_float64(inputs))
        except torch.cuda.OutOfMemoryError:  # float64 too large here: fall back to fp32 arithmetic
            expected = module.reference(*(t.float() if t.is_floating_point() else t for t in inputs)).to(torch.float64)
        if tuple(output.shape) != tuple(expected.shape):
            problems.append(f"call {index}: shape {tuple(output.shape)} != {tuple(expected.shape)}")
            failed.append(index)
            continue
        verdict = compare_output(output, expected, dtype)
        if verdict.failed_check is not None:
            problems.append(f"call {index}: [{verdict.failed_check}] {verdict.detail}")
            failed.append(index)
        del expected
    return {"ok": not problems, "problems": problems, "checked": sorted(candidate.kept_outputs), "failed": failed}


def _copy_bandwidth(best_ms: Callable[[Callable[[], Any]], float]) -> float:
    """Bytes per second of a 1 GiB device-to-device copy (read + write)."""
    import torch

    source = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    return 2 * source.numel() / (best_ms(lambda: target.copy_(source)) / 1e3)


def _matmul_call(a: Any, b: Any) -> Callable[[], Any]:
    def call() -> Any:
        return a @ b

    return call


def measure_machine(event: Any, synchronize: Callable[[], None], dtypes: Sequence[str]) -> dict[str, Any]:
    """Measured DRAM bandwidth (a large device copy) and matmul peak per dtype (best of a few
    runs)."""
    import torch

    from kavi.gpu.reference import torch_dtype

    def best_ms(function: Callable[[], Any], repeats: int = 5) -> float:
        function()
        synchronize()
        times = []
        for _ in range(repeats):
            start, end = event(enable_timing=True), event(enable_timing=True)
            start.record()
            function()
            end.record()
            end.synchronize()
            times.append(float(start.elapsed_time(end)))
        return min(times)

    bandwidth = _copy_bandwidth(best_ms)
    peaks = {}
    for dtype in dtypes:
        n = 8192
        a = torch.randn(n, n, device="cuda", dtype=torch_dtype(dtype))
        b = torch.randn(n, n, device="cuda", dtype=torch_dtype(dtype))
        peaks[dtype] = 2 * n**3 / (best_ms(_matmul_call(a, b), 3) / 1e3)
        del a, b
    torch.cuda.empty_cache()
    return {"bandwidth_bytes_per_s": bandwidth, "peak_flops_per_s": peaks}
