"""The examples gate: the spec's frozen test vectors, run through the same validated call path as
`run-skill`, in a process apart from the builder's tests so nothing in them can patch the skill first
(the process is shared with the invariants gate's live checks)."""

from __future__ import annotations

from typing import ClassVar

from kavi.builders.base import FailureKind
from kavi.gates.base import GateContext, GateResult, GateStatus
from kavi.gates.execution import blocked_result, shared_probe
from kavi.spec import SkillSpec


class ExamplesGate:
    name: ClassVar[str] = "examples"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_EXAMPLES
    may_be_unmeasured: ClassVar[bool] = False

    def applies_to(self, spec: SkillSpec) -> bool:
        return True

    def run(self, context: GateContext) -> GateResult:
        if not context.spec.examples:
            return GateResult(self.name, GateStatus.PASS, "the spec has no examples")
        result, probe = shared_probe(context)
        isolation = str(result.isolation)
        report = result.stdout + result.stderr
        blocked = blocked_result(self.name, result)
        if blocked is not None:
            return blocked
        if result.timed_out:
            return GateResult(self.name, GateStatus.FAIL, "examples timed out", report, isolation=isolation)
        verdict = (probe or {}).get("examples")
        if not isinstance(verdict, dict):
            return GateResult(self.name, GateStatus.FAIL, "the examples run crashed", report, isolation=isolation)
        failed = [r for r in verdict.get("results", []) if not r.get("ok")]
        facts = {"failed_examples": failed, "problems": verdict.get("problems", [])}
        if verdict.get("ok"):
            summary = f"{len(verdict['results'])} example(s) match"
            return GateResult(self.name, GateStatus.PASS, summary, report, isolation=isolation, facts=facts)
        summary = (
            f"{len(failed)} of {len(verdict.get('results', []))} example(s) failed"
            if failed
            else "; ".join(verdict.get("problems", [])) or "examples failed"
        )
        return GateResult(self.name, GateStatus.FAIL, summary, report, isolation=isolation, facts=facts)
