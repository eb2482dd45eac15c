"""The examples gate: the spec's frozen test vectors, run through the same validated call path as
`run-skill`, in a process of their own so nothing in the builder's tests can patch the skill first."""

from __future__ import annotations

import json
from typing import ClassVar

from kavi.gates.base import GateContext, GateResult, GateStatus
from kavi.gates.execution import describe_blocks, run_python
from kavi.spec import SkillSpec

SPEC_FILE = "kavi_spec.json"


class ExamplesGate:
    name: ClassVar[str] = "examples"

    def applies_to(self, spec: SkillSpec) -> bool:
        return True

    def run(self, context: GateContext) -> GateResult:
        if not context.spec.examples:
            return GateResult(self.name, GateStatus.PASS, "the spec has no examples")
        result = run_python(context, "kavi.runtime.probe", ["examples", SPEC_FILE, context.spec.skill_path])
        isolation = str(result.isolation)
        report = result.stdout + result.stderr
        blocks = describe_blocks(result)
        if blocks:
            return GateResult(
                self.name,
                GateStatus.FAIL,
                blocks[0],
                "\n".join(blocks) + "\n\n" + report,
                isolation=str(result.isolation),
                facts={"blocked": list(result.blocked)},
            )
        if result.timed_out:
            return GateResult(self.name, GateStatus.FAIL, "examples timed out", report, isolation=isolation)
        try:
            verdict = json.loads(result.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return GateResult(self.name, GateStatus.FAIL, "the examples run crashed", report, isolation=isolation)
        failed = [r for r in verdict.get("results", []) if not r.get("ok")]
        facts = {"failed_examples": failed, "problems": verdict.get("problems", [])}
        if verdict.get("ok") and result.returncode == 0:
            return GateResult(
                self.name,
                GateStatus.PASS,
                f"{len(verdict['results'])} example(s) match",
                report,
                isolation=isolation,
                facts=facts,
            )
        summary = (
            f"{len(failed)} of {len(verdict.get('results', []))} example(s) failed"
            if failed
            else "; ".join(verdict.get("problems", [])) or "examples failed"
        )
        return GateResult(self.name, GateStatus.FAIL, summary, report, isolation=isolation, facts=facts)
