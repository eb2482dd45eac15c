"""The correctness protocol for a kernel candidate (parent side).

The parent builds the cases (unpredictable seeds, the spec's sizes plus one derived size the packet
never
showed, four input distributions), computes the float64 reference itself, and hands only the inputs
to a
spawned child (:mod:`kavi.gpu.child`) that imports the candidate. The child's outputs and per-call
facts
come back and are judged here by named checks, in this order:

``runs``, ``output-type``, ``aliasing``, ``inputs-unchanged``, ``fresh-output``, ``poison``,
``constant-output``, ``nonfinite``, ``tolerance``.

Without a GPU, Triton candidates run through Triton's CPU interpreter (fp32 and fp16 only); CuPy and
CUDA
candidates, bf16 and autotuned kernels are reported as skipped with the reason, never as passed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kavi.gpu import gpu_status
from kavi.gpu.reference import (
    DISTRIBUTIONS,
    INTERPRETER_DTYPES,
    Size,
    apply_row_scales,
    check_seeds,
    hidden_size,
    load_reference,
    make_case_inputs,
    salt_from,
    to_float64,
)
from kavi.gpu.screen import kernel_kinds
from kavi.gpu.spec import KernelSpec

CHECK_ORDER = (
    "runs",
    "output-type",
    "aliasing",
    "inputs-unchanged",
    "fresh-output",
    "poison",
    "constant-output",
    "nonfinite",
    "tolerance",
)
MIN_SEEDS = 5
MIN_SIZES = 3


@dataclass
class CorrectnessReport:
    """The verdict: ``pass``, ``fail`` (with the first failed named check), ``skipped`` or
    ``error``."""

    status: str
    summary: str
    failed_check: str | None = None
    checks: dict[str, str] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        lines = [self.summary, ""]
        lines += [f"{name}: {verdict}" for name, verdict in self.checks.items()]
        if self.details:
            lines += ["", *self.details[:40]]
        return "\n".join(lines)


@dataclass
class _Case:
    id: int
    group: str
    size: Size
    dtype: str
    seed: int
    dist: str
    inputs: tuple[Any, ...]
    reference64: Any = None
    expected_shape: tuple[int, ...] = ()
    expected_dtype: Any = None
    device: str = "cpu"
    structure: str = "plain"
    layout: str = "contiguous"


# Which seed (by index) gets which structure: the rest are plain. Rows of very different scales on the
# fifth seed; non-contiguous inputs on the second and fourth (where the reference accepts them).
_ROW_SCALED_SEEDS = frozenset({4})
_STRIDED_SEEDS = frozenset({1, 3})


def plan_device(spec: KernelSpec, source: str) -> tuple[str, tuple[str, ...], list[str], str | None]:
    """Where and in which dtypes the check can run: (device, dtypes, notes, reason to skip
    everything)."""
    status = gpu_status()
    if status.reason is not None:
        return "cpu", (), [], status.reason
    kinds = kernel_kinds(source)
    if status.cuda:
        return "cuda", spec.dtypes, [], None
    if kinds & {"cupy", "cuda"}:
        return (
            "cpu",
            (),
            [],
            "a CuPy or CUDA C++ kernel needs a CUDA GPU; none here (checked on a GPU only)",
        )
    if "triton-autotune" in kinds:
        return (
            "cpu",
            (),
            [],
            "@triton.autotune cannot run under Triton's CPU interpreter; needs a GPU",
        )
    if status.interpreter_reason is not None:
        return "cpu", (), [], status.interpreter_reason
    dtypes = tuple(d for d in spec.dtypes if d in INTERPRETER_DTYPES)
    notes = [
        f"{d}: SKIPPED (Triton's CPU interpreter is silently wrong for {d}; checked on a GPU only)"
        for d in spec.dtypes
        if d not in INTERPRETER_DTYPES
    ]
    if not dtypes:
        return "cpu", (), notes, "no dtype of this spec can be checked by Triton's CPU interpreter"
    return "cpu", dtypes, notes, None


def check_kernel_correctness(
    spec: KernelSpec,
    kernel_file: Path,
    *,
    timeout_s: float = 600.0,
    seeds: int = MIN_SEEDS,
    salt: int | None = None,
    require_isolation: bool = False,
) -> CorrectnessReport:
    """Run the whole protocol on ``kernel_file``; never raises for what the candidate does."""
    source = kernel_file.read_text(encoding="utf-8")
    device, dtypes, notes, skip = plan_device(spec, source)
    if skip is not None:
        return CorrectnessReport("skipped", f"SKIPPED: {skip}", details=notes, facts={"reason": skip})
    if salt is None:
        salt = salt_from(spec.reference_sha256, source)
    module = load_reference(spec.reference_source, spec.name)
    hidden = hidden_size(module, spec.check_sizes, salt)
    sizes = [*dict.fromkeys(spec.check_sizes), hidden]
    seed_list = check_seeds(salt, max(seeds, MIN_SEEDS))
    cases = _build_cases(module, sizes, dtypes, seed_list, device)
    # On a GPU, correctness is checked at every size that is benchmarked too (one seed each: they
    # are large), so a kernel cannot be right at the small sizes and wrong where it is timed.
    bench_only = [size for size in dict.fromkeys(spec.bench_sizes) if size not in sizes] if device == "cuda" else []
    if bench_only:
        cases += _build_cases(module, bench_only, dtypes, seed_list[:1], device, first_id=len(cases))
    with tempfile.TemporaryDirectory(prefix="kavi-kernel-check-") as scratch:
        answer, failure, isolation = _run_child(cases, kernel_file, Path(scratch), device, timeout_s, require_isolation)
    sizes += bench_only
    facts = {
        "device": device,
        "interpreter": device == "cpu",
        "correctness_device": "interpreter" if device == "cpu" else device,
        "structures": sorted({case.structure for case in cases} | {case.layout for case in cases}),
        "dtypes": list(dtypes),
        "sizes": [list(s) if isinstance(s, tuple) else s for s in sizes],
        "hidden_size": list(hidden) if isinstance(hidden, tuple) else hidden,
        "bench_sizes_checked": [list(s) if isinstance(s, tuple) else s for s in bench_only],
        "seeds": max(seeds, MIN_SEEDS),
        "distributions": list(DISTRIBUTIONS),
        "cases": len(cases),
        "isolation": isolation,
        "skipped_dtypes": [d for d in spec.dtypes if d not in dtypes],
    }
    if failure is not None:
        report = CorrectnessReport(
            "fail",
            f"FAIL [runs]: the candidate's process {failure}",
            "runs",
            {"runs": f"fail: {failure}"},
            notes,
            facts,
        )
        return report
    return judge(cases, answer, notes, facts)


def _build_cases(
    module: Any, sizes: list[Size], dtypes: tuple[str, ...], seeds: list[int], device: str, first_id: int = 0
) -> list[_Case]:
    import torch

    cases: list[_Case] = []
    for dtype in dtypes:
        for size in sizes:
            group = f"{dtype}/{size}"
            for index, seed in enumerate(seeds):
                dist = DISTRIBUTIONS[index % len(DISTRIBUTIONS)]
                inputs = make_case_inputs(module, size, seed, device, dtype, dist)
                structure = "plain"
                if index in _ROW_SCALED_SEEDS:
                    inputs, structure = apply_row_scales(inputs, dtype), "row_scales"
                native = module.reference(*[t.clone() for t in inputs])
                precise = module.reference(*to_float64(inputs))
                layout = "contiguous"
                if index in _STRIDED_SEEDS and _accepts_strided(module, inputs, precise):
                    layout = "strided"
                cases.append(
                    _Case(
                        id=first_id + len(cases),
                        group=group,
                        size=size,
                        dtype=dtype,
                        seed=seed,
                        dist=dist,
                        inputs=tuple(t.detach().to("cpu") for t in inputs),
                        reference64=precise.detach().to("cpu").to(dtype=torch.float64),
                        expected_shape=tuple(native.shape),
                        expected_dtype=native.dtype,
                        device=device,
                        structure=structure,
                        layout=layout,
                    )
                )
    return cases


def _accepts_strided(module: Any, inputs: tuple[Any, ...], precise: Any) -> bool:
    """Whether the reference gives the same float64 answer on non-contiguous views of the inputs
    (every other element of a wider buffer): then a candidate must accept them too."""
    import torch

    views = []
    for tensor in to_float64(inputs):
        if tensor.dim() == 0 or tensor.numel() <= 1:
            views.append(tensor)
            continue
        wide = torch.zeros((*tensor.shape[:-1], 2 * tensor.shape[-1]), dtype=tensor.dtype, device=tensor.device)
        view = wide[..., ::2]
        view.copy_(tensor)
        views.append(view)
    try:
        answer = module.reference(*views)
    except Exception:  # the reference refuses strided inputs: so may the candidate
        return False
    return (
        isinstance(answer, torch.Tensor)
        and answer.shape == precise.shape
        and bool(torch.equal(answer.nan_to_num(), precise.nan_to_num()))
    )


def _float64() -> Any:
    import torch

    return torch.float64


def _run_child(
    cases: list[_Case],
    kernel_file: Path,
    workdir: Path,
    device: str,
    timeout_s: float,
    require_isolation: bool,
) -> tuple[dict[str, Any], str | None, str]:
    import torch

    from kavi.gpu.process import private_copy, spawn_child

    groups: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append({"id": case.id, "inputs": list(case.inputs), "layout": case.layout})
    cases_path = workdir / "cases.pt"
    torch.save({"groups": [{"key": key, "cases": value} for key, value in groups.items()]}, cases_path)
    candidate = private_copy(kernel_file, workdir)
    outcome = spawn_child(
        "check",
        {
            "kernel_path": str(candidate),
            "cases_path": str(cases_path),
            "device": device,
        },
        workdir,
        out_name="results.pt",
        timeout_s=timeout_s,
        interpret=device == "cpu",
        require_isolation=require_isolation,
    )
    isolation = str(outcome.result.isolation)
    if outcome.failure is not None:
        return {}, outcome.failure, isolation
    answer: dict[str, Any] = torch.load(outcome.out_path, weights_only=True)
    return answer, None, isolation


# --- judging
# -----------------------------------------------------------------------------------------


def judge(cases: list[_Case], answer: dict[str, Any], notes: list[str], facts: dict[str, Any]) -> CorrectnessReport:
    """Turn the child's facts and outputs into named checks; the first failure in CHECK_ORDER is
    reported."""
    failures: dict[str, list[str]] = {name: [] for name in CHECK_ORDER}
    if answer.get("import_error"):
        failures["runs"].append(f"importing the kernel failed:\n{answer['import_error']}")
    else:
        by_id = {record["id"]: record["runs"] for record in answer.get("cases", [])}
        for case in cases:
            runs = by_id.get(case.id)
            if runs is None:
                failures["runs"].append(f"case {case.id} produced no result")
                continue
            _judge_case(case, runs, failures)
        _judge_constant(cases, by_id, failures)
    checks = {
        name: ("fail: " + problems[0].splitlines()[0]) if problems else "pass" for name, problems in failures.items()
    }
    details = [*notes]
    for name, problems in failures.items():
        details += [f"[{name}] {problem}" for problem in problems[:5]]
    failed = next((name for name in CHECK_ORDER if failures[name]), None)
    described = f"{len(cases)} cases ({facts.get('device')}, dtypes {', '.join(facts.get('dtypes', []))})"
    if failed is None:
        skipped = facts.get("skipped_dtypes", [])
        suffix = f"; SKIPPED {', '.join(skipped)} (needs a GPU)" if skipped else ""
        return CorrectnessReport("pass", f"PASS: {described}{suffix}", None, checks, details, facts)
    first = failures[failed][0].splitlines()[0]
    return CorrectnessReport("fail", f"FAIL [{failed}]: {first}", failed, checks, details, facts)


def _describe(case: _Case) -> str:
    extra = "".join(f", {word}" for word in (case.structure, case.layout) if word not in ("plain", "contiguous"))
    return f"case {case.id} (size {case.size}, {case.dtype}, seed {case.seed}, {case.dist}{extra})"


def _judge_case(case: _Case, runs: list[dict[str, Any]], failures: dict[str, list[str]]) -> None:
    from kavi.gpu.compare import bitwise_equal, compare_output

    where = _describe(case)
    for index, run in enumerate(runs):
        if run["error"]:
            failures["runs"].append(f"{where} call {index + 1} raised:\n{run['error']}")
            return
        if not run["plain"]:
            failures["output-type"].append(f"{where}: returned {run['type']}, not a plain torch.Tensor")
            return
        if run["alias"]:
            failures["aliasing"].append(f"{where}: the output shares memory with an input")
        if run["inputs_changed"]:
            failures["inputs-unchanged"].append(f"{where}: the inputs were modified by the call")
        if run["reused_output"]:
            failures["fresh-output"].append(
                f"{where} call {index + 1}: the output shares memory with an earlier call's output that "
                "is still alive (a cache or a rotating buffer)"
            )
        output = run["out"]
        if tuple(output.shape) != case.expected_shape or output.dtype != case.expected_dtype:
            failures["output-type"].append(
                f"{where}: got shape {tuple(output.shape)} {output.dtype}, "
                f"want {case.expected_shape} {case.expected_dtype}"
            )
            return
        if run["device"] != case.device:
            failures["output-type"].append(f"{where}: the output is on {run['device']}, not the inputs' device")
            return
    first = runs[0]["out"]
    for second in (run["out"] for run in runs[1:]):
        if not bitwise_equal(first, second):
            differing = int(
                (first.reshape(-1).view(_uint_type(first)) != second.reshape(-1).view(_uint_type(second))).sum().item()
            )
            failures["poison"].append(
                f"{where}: {differing} element(s) differ between calls with differently poisoned fresh "
                "memory (byte patterns, random finite values): part of the output is never written, "
                "the kernel reads uninitialised memory, or it acts on what it finds there"
            )
            return
    comparison = compare_output(first, case.reference64, case.dtype, rowwise=case.structure == "row_scales")
    if comparison.failed_check is not None:
        failures[comparison.failed_check].append(f"{where}: {comparison.detail}")


def _uint_type(tensor: Any) -> Any:
    import torch

    return {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()]


def _judge_constant(cases: list[_Case], by_id: dict[int, list[dict[str, Any]]], failures: dict[str, list[str]]) -> None:
    """Within one size and dtype the reference varies across seeds; the candidate must vary too."""
    import torch

    from kavi.gpu.compare import bitwise_equal

    groups: dict[str, list[_Case]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    for key, members in groups.items():
        maybe = [by_id.get(case.id, [{}])[0].get("out") for case in members]
        outputs = [out for out in maybe if out is not None]
        if len(members) < 2 or len(outputs) != len(members):
            continue
        if any(out.shape != outputs[0].shape for out in outputs):
            continue
        if all(bitwise_equal(out, outputs[0]) for out in outputs[1:]) and not all(
            torch.equal(case.reference64, members[0].reference64) for case in members[1:]
        ):
            failures["constant-output"].append(
                f"size/dtype {key}: the output is identical for {len(members)} different "
                "inputs while the reference changes: the kernel ignores its inputs"
            )
