"""The three kernel gates: ``kernel-screen``, ``kernel-correctness`` and ``kernel-speed``.

They take a :class:`KernelGateContext` (the shape of :class:`kavi.gates.base.GateContext`, with a
:class:`KernelSpec` in place of a skill spec) and return :class:`GateResult` s; a failed check is a
result.
A candidate that fails the screen is never executed by the correctness gate. Without a GPU the speed
gate
is ``SKIPPED`` with ``facts["measured"] = False`` and declares ``may_be_unmeasured``: promotion then needs
``allow_unmeasured``.
torch is only imported inside the checks (through :mod:`kavi.gpu`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from kavi.builders.base import FailureKind
from kavi.gates.base import GateResult, GateSettings, GateStatus, timed
from kavi.gpu.screen import Finding, screen_kernel, screen_kernel_test
from kavi.gpu.spec import KernelSpec


@dataclass(frozen=True)
class KernelGateContext:
    """Everything a kernel gate may look at; ``sandbox`` holds the exact candidate bytes."""

    spec: KernelSpec
    sandbox: Path
    cache_dir: Path
    timeout_s: float = 600.0
    require_isolation: bool = False
    seeds: int = 5

    @property
    def kernel_file(self) -> Path:
        return self.sandbox / self.spec.kernel_path

    @property
    def test_file(self) -> Path:
        return self.sandbox / self.spec.test_path


def screen_candidate(context: KernelGateContext) -> list[Finding]:
    """Screen the kernel and its test; a missing file is a finding too."""
    findings: list[Finding] = []
    for path, screen in (
        (context.kernel_file, screen_kernel),
        (context.test_file, screen_kernel_test),
    ):
        relative = str(path.relative_to(context.sandbox))
        if not path.is_file():
            findings.append(Finding("kernel-present", f"{relative} is missing", relative, 1))
            continue
        findings += screen(path.read_bytes(), relative)  # decoded as Python decodes it
    return findings


def _refuse_unscreened(gate: str, context: KernelGateContext) -> GateResult | None:
    """A candidate that fails the screen is never executed: the dynamic gates fail it unrun."""
    findings = screen_candidate(context)
    if not findings:
        return None
    return GateResult(
        gate,
        GateStatus.FAIL,
        f"not run: the candidate fails the kernel screen [{findings[0].check}]",
        report="\n".join(finding.render() for finding in findings),
        facts={"failed_check": f"screen:{findings[0].check}"},
    )


# The correctness gate's summary carries this when no GPU checked the kernel: promotion records it.
INTERPRETER_ONLY = "checked only through Triton's CPU interpreter"


def correctness_device(summary: str, status: str) -> str | None:
    """What a passed kernel-correctness gate's summary says about where it ran."""
    if status != GateStatus.PASS:
        return None
    return "interpreter" if INTERPRETER_ONLY in summary else "cuda"


class KernelScreenGate:
    """Static AST screen: a real kernel, no torch compute, no fallbacks, escapes or state."""

    name: ClassVar[str] = "kernel-screen"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_KERNEL
    may_be_unmeasured: ClassVar[bool] = False

    def applies_to(self, spec: object) -> bool:
        return True

    def run(self, context: KernelGateContext) -> GateResult:
        return timed(self.name, lambda: self._check(context))

    def _check(self, context: KernelGateContext) -> GateResult:
        findings = screen_candidate(context)
        if not findings:
            return GateResult(self.name, GateStatus.PASS, "no findings", facts={"checks": []})
        checks = sorted({finding.check for finding in findings})
        return GateResult(
            self.name,
            GateStatus.FAIL,
            f"{len(findings)} finding(s): {', '.join(checks)}",
            report="\n".join(finding.render() for finding in findings),
            facts={"checks": checks, "failed_check": findings[0].check},
        )


class KernelCorrectnessGate:
    """The dynamic protocol of :mod:`kavi.gpu.correctness`, run in a spawned child."""

    name: ClassVar[str] = "kernel-correctness"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_KERNEL
    may_be_unmeasured: ClassVar[bool] = False

    def applies_to(self, spec: object) -> bool:
        return True

    def run(self, context: KernelGateContext) -> GateResult:
        return timed(self.name, lambda: self._check(context))

    def _check(self, context: KernelGateContext) -> GateResult:
        refused = _refuse_unscreened(self.name, context)
        if refused is not None:
            return refused
        from kavi.gpu import torch_missing_reason

        missing = torch_missing_reason()
        if missing is not None:
            return GateResult(self.name, GateStatus.SKIPPED, f"SKIPPED: {missing}", facts={"reason": missing})
        from kavi.gpu.correctness import check_kernel_correctness

        report = check_kernel_correctness(
            context.spec,
            context.kernel_file,
            timeout_s=context.timeout_s,
            seeds=context.seeds,
            require_isolation=context.require_isolation,
        )
        status = {
            "pass": GateStatus.PASS,
            "fail": GateStatus.FAIL,
            "skipped": GateStatus.SKIPPED,
        }.get(report.status, GateStatus.ERROR)
        facts = {**report.facts, "checks": report.checks, "failed_check": report.failed_check}
        summary = report.summary
        if status is GateStatus.PASS and report.facts.get("interpreter"):
            summary += f"; {INTERPRETER_ONLY} (its first GPU run re-checks it)"
        return GateResult(
            self.name,
            status,
            summary,
            report=report.render(),
            isolation=report.facts.get("isolation"),
            facts=facts,
        )


class KernelSpeedGate:
    """CUDA-event timing against torch with a bootstrap interval; SKIPPED (unmeasured) without a
    GPU."""

    name: ClassVar[str] = "kernel-speed"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_KERNEL
    may_be_unmeasured: ClassVar[bool] = True

    def applies_to(self, spec: object) -> bool:
        return True

    def run(self, context: KernelGateContext) -> GateResult:
        return timed(self.name, lambda: self._check(context))

    def _check(self, context: KernelGateContext) -> GateResult:
        from kavi.gpu.bench import no_gpu_reason, run_benchmark

        reason = no_gpu_reason()
        if reason is not None:
            return GateResult(
                self.name,
                GateStatus.SKIPPED,
                f"unmeasured: {reason}",
                facts={"measured": False, "reason": reason},
            )
        refused = _refuse_unscreened(self.name, context)
        if refused is not None:
            return refused
        outcome = run_benchmark(
            context.spec,
            context.kernel_file,
            timeout_s=context.timeout_s,
            require_isolation=context.require_isolation,
        )
        if not outcome.rows:
            status = GateStatus.ERROR if outcome.measured else GateStatus.SKIPPED
            return GateResult(
                self.name,
                status,
                f"unmeasured: {outcome.reason}",
                facts={"measured": False, "reason": outcome.reason},
            )
        minimum = context.spec.min_speedup
        lines = []
        failures = []
        for row in outcome.rows:
            line = (
                f"{row.size} {row.dtype}: kernel {row.kernel_ms:.4f} ms, "
                f"torch {row.torch_ms:.4f} ms, "
                f"speedup {row.speedup:.3f} [{row.speedup_low:.3f}, {row.speedup_high:.3f}]"
            )
            if row.roofline_fraction is not None:
                line += f", roofline {row.roofline_fraction:.0%}"
            lines.append(line)
            if row.impossible:
                failures.append(
                    f"{row.size} {row.dtype}: [roofline-floor] a call took {row.fastest_ms:.4g} ms, under the "
                    f"roofline floor {row.floor_ms:.4g} ms (impossible: the work was not done)"
                )
            elif not row.clocks_agree:
                failures.append(f"{row.size} {row.dtype}: [timing-channel] CUDA events disagree with the host clock")
            elif not row.wall_clock_ok:
                failures.append(
                    f"{row.size} {row.dtype}: [timing-channel] the reported times do not fit the parent's wall clock"
                )
            elif row.deferred_work:
                failures.append(
                    f"{row.size} {row.dtype}: [deferred-work] torch runs markedly slower right after the "
                    "candidate than before it: the candidate's work spills into the next call"
                )
            elif not row.outputs_correct:
                failures.append(
                    f"{row.size} {row.dtype}: [deferred-work] timed outputs are wrong: {'; '.join(row.notes)}"
                )
            elif row.speedup_low < minimum:
                failures.append(f"{row.size} {row.dtype}: CI lower bound {row.speedup_low:.3f} < {minimum}")
        facts = {
            "measured": True,
            "rows": [row.to_json() for row in outcome.rows],
            "min_speedup": minimum,
        }
        if failures:
            return GateResult(
                self.name,
                GateStatus.FAIL,
                failures[0],
                report="\n".join(lines + failures),
                facts=facts,
            )
        worst = min(row.speedup_low for row in outcome.rows)
        return GateResult(
            self.name,
            GateStatus.PASS,
            f"speedup CI lower bound >= {worst:.3f} (min {minimum})",
            report="\n".join(lines),
            facts=facts,
        )


# In this order: the screen decides whether candidate code may execute at all.
KERNEL_GATES = (KernelScreenGate(), KernelCorrectnessGate(), KernelSpeedGate())


def kernel_context(spec: KernelSpec, sandbox: Path, settings: GateSettings) -> KernelGateContext:
    """A kernel's gates get at least ten minutes: the CPU interpreter is slow on the larger check sizes."""
    return KernelGateContext(
        spec=spec,
        sandbox=sandbox,
        cache_dir=settings.cache_dir,
        timeout_s=max(settings.timeout_s, 600.0),
        require_isolation=settings.require_isolation,
    )


def promotion_allowed(results: Sequence[GateResult], *, allow_unmeasured: bool) -> tuple[bool, str]:
    """The kernel promotion rule: every gate passed, except an unmeasured gate (one that declares
    ``may_be_unmeasured``) with the override."""
    unmeasurable = {gate.name for gate in KERNEL_GATES if gate.may_be_unmeasured}
    for result in results:
        if result.passed:
            continue
        unmeasured = result.gate in unmeasurable and result.status is GateStatus.SKIPPED
        if unmeasured and allow_unmeasured:
            continue
        if unmeasured:
            return (
                False,
                "kernel speed is unmeasured (no GPU): promote with --allow-unmeasured to accept that",
            )
        return False, f"gate {result.gate} did not pass: {result.summary}"
    return True, "all kernel gates passed"
