"""The pytest gate: the builder's own tests, run on the exact candidate bytes in the verify sandbox,
isolated, with third-party pytest plugins off so nothing outside the candidate shapes the result."""

from __future__ import annotations

import re
from typing import ClassVar

from kavi.builders.base import FailureKind
from kavi.gates.base import GateContext, GateResult, GateStatus
from kavi.gates.execution import blocked_result, run_python
from kavi.spec import SkillSpec

PYTEST_INI = "[pytest]\npythonpath = skills\naddopts = -p no:cacheprovider\n"
_SUMMARY = re.compile(r"(\d+) (passed|failed|error|errors|skipped)")


class PytestGate:
    name: ClassVar[str] = "pytest"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_TEST
    may_be_unmeasured: ClassVar[bool] = False

    def applies_to(self, spec: SkillSpec) -> bool:
        return True

    def run(self, context: GateContext) -> GateResult:
        (context.sandbox / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
        args = ["-q", "-rfE", "--tb=short", "--color=no", "-c", "pytest.ini", "--rootdir", ".", context.spec.test_path]
        result = run_python(context, "pytest", args)
        report = result.stdout + result.stderr
        blocked = blocked_result(self.name, result)
        if blocked is not None:
            return blocked
        counts = {kind: int(n) for n, kind in _SUMMARY.findall(report)}
        failing = re.findall(r"^(?:FAILED|ERROR) (\S+)", report, flags=re.MULTILINE)
        facts = {"counts": counts, "failing_tests": failing, "isolation": str(result.isolation)}
        if result.timed_out:
            return GateResult(
                self.name,
                GateStatus.FAIL,
                f"tests timed out after {context.timeout_s:g} s",
                report,
                isolation=str(result.isolation),
                facts=facts,
            )
        if result.returncode == 0 and counts.get("passed", 0) > 0:
            return GateResult(
                self.name,
                GateStatus.PASS,
                f"{counts['passed']} test(s) passed",
                report,
                isolation=str(result.isolation),
                facts=facts,
            )
        if result.returncode == 5 or (result.returncode == 0 and not counts.get("passed")):
            return GateResult(
                self.name,
                GateStatus.FAIL,
                "the builder's test file holds no passing test",
                report,
                isolation=str(result.isolation),
                facts=facts,
            )
        if result.returncode in (1, 2):
            summary = f"{counts.get('failed', 0)} failed, {counts.get('error', 0) + counts.get('errors', 0)} error(s)"
            return GateResult(self.name, GateStatus.FAIL, summary, report, isolation=str(result.isolation), facts=facts)
        return GateResult(
            self.name,
            GateStatus.FAIL,
            f"pytest exited {result.returncode}",
            report,
            isolation=str(result.isolation),
            facts=facts,
        )
