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
    sizes = [*dict.fromkeys(spec.check_sizes), hidden_size(module, spec.check_sizes, salt)]
    cases = _build_cases(module, sizes, dtypes, check_seeds(salt, max(seeds, MIN_SEEDS)), device)
    with tempfile.TemporaryDirectory(prefix="kavi-kernel-check-") as scratch:
        answer, failure, isolation = _run_child(cases, kernel_file, Path(scratch), device, timeout_s, require_isolation)
    facts = {
        "device": device,
        "interpreter": device == "cpu",
        "dtypes": list(dtypes),
        "sizes": [list(s) if isinstance(s, tuple) else s for s in sizes],
        "hidden_size": list(sizes[-1]) if isinstance(sizes[-1], tuple) else sizes[-1],
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


def _build_cases(module: Any, sizes: list[Size], dtypes: tuple[str, ...], seeds: list[int], device: str) -> list[_Case]:
    cases: list[_Case] = []
    for dtype in dtypes:
        for size in sizes:
            group = f"{dtype}/{size}"
            for index, seed in enumerate(seeds):
                dist = DISTRIBUTIONS[index % len(DISTRIBUTIONS)]
                inputs = make_case_inputs(module, size, seed, device, dtype, dist)
                native = module.reference(*[t.clone() for t in inputs])
                precise = module.reference(*to_float64(inputs))
                cases.append(
                    _Case(
                        id=len(cases),
                        group=group,
                        size=size,
                        dtype=dtype,
                        seed=seed,
                        dist=dist,
                        inputs=tuple(t.detach().to("cpu") for t in inputs),
                        reference64=precise.detach().to("cpu").to(dtype=_float64()),
                        expected_shape=tuple(native.shape),
                        expected_dtype=native.dtype,
                        device=device,
                    )
                )
    return cases


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

    from kavi.gpu.process import spawn_child

    groups: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append({"id": case.id, "inputs": list(case.inputs)})
    cases_path = workdir / "cases.pt"
    torch.save({"groups": [{"key": key, "cases": value} for key, value in groups.items()]}, cases_path)
    outcome = spawn_child(
        "check",
        {
            "kernel_path": str(kernel_file.resolve()),
            "cases_path": str(cases_path),
            "device": device,
        },
        workdir,
        readable=(kernel_file.resolve().parent,),
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
    return f"case {case.id} (size {case.size}, {case.dtype}, seed {case.seed}, {case.dist})"


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
            failures["fresh-output"].append(f"{where}: the second call returned the first call's memory")
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
    first, second = runs[0]["out"], runs[1]["out"]
    if not bitwise_equal(first, second):
        differing = int(
            (first.reshape(-1).view(_uint_type(first)) != second.reshape(-1).view(_uint_type(second))).sum().item()
        )
        failures["poison"].append(
            f"{where}: {differing} element(s) differ between two calls with differently "
            "poisoned fresh memory: part of the output is never written, "
            "or the kernel reads uninitialised memory"
        )
        return
    comparison = compare_output(first, case.reference64, case.dtype)
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
