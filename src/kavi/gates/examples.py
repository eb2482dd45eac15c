"""The examples gate: kavi's own evidence that the skill does what the spec says.

Every frozen example (the visible ones the builder saw and the hidden ones it never did) runs in a worker
process of its own, forked by a reporter started exactly as `run-skill` starts one
(:mod:`kavi.runtime.child`), with nothing but the input: the expected output never enters the candidate's
process. Each worker reports raw results (an output or a raised error); THIS process, the parent, compares
them with the frozen expectations. One worker per example means one call per process, as in a real run, so
a skill cannot tell a gate by counting calls, and no example leaves state in memory for the next; one
reporter for all of them pays for one interpreter instead of one per example. Hidden examples get a
reporter of their own, so nothing the skill prints while it computes them reaches a visible example's
report.

What a failure says about a hidden example is only that it failed: no input, no expected or actual
output, no output of the skill's own. Gate reports travel back to the builder with the next attempt.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from kavi.builders.base import FailureKind
from kavi.gates.base import GateContext, GateResult, GateStatus
from kavi.gates.execution import describe_blocks, run_skill_child
from kavi.runtime.child import EXIT_PHASE
from kavi.sandbox.executor import ExecResult
from kavi.spec import Example, SkillSpec

_REPORT_TAIL = 2000


@dataclass(frozen=True)
class Outcome:
    """One example's verdict, judged in the parent."""

    index: int
    hidden: bool
    ok: bool
    detail: str
    isolation: str
    evidence: str  # the child's own output and the hook's reports: shown for visible examples only
    detail_facts: dict[str, Any]  # input, expected and actual output: visible examples only


def judge(example: Example, result: ExecResult, report: dict[str, Any] | None) -> tuple[bool, str]:
    """Compare one child's raw result with the frozen expectation."""
    blocks = describe_blocks(result)
    if blocks:
        return False, blocks[0]
    if result.timed_out:
        return False, "timed out"
    if report is None:
        return False, f"no result from the skill process (exit status {result.returncode})"
    if report.get("ok") is True:
        output = report.get("output")
        if example.error is not None:
            return False, f"expected an error matching {example.error!r}, got an output"
        if output != example.output:
            return False, "wrong output"
        return True, "match"
    error_type, error = str(report.get("error_type", "")), str(report.get("error", ""))
    if report.get("phase") == EXIT_PHASE:
        return False, f"the skill did not return: {error}"
    if example.error is not None and (example.error == error_type or example.error in error):
        return True, f"raised {error_type} as expected"
    return False, f"raised {error_type}: {error}"


class ExamplesGate:
    name: ClassVar[str] = "examples"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_EXAMPLES
    may_be_unmeasured: ClassVar[bool] = False

    def applies_to(self, spec: SkillSpec) -> bool:
        return True

    def run(self, context: GateContext) -> GateResult:
        cases = [(example, False) for example in context.spec.examples]
        cases += [(example, True) for example in context.hidden_examples]
        if not cases:
            return GateResult(self.name, GateStatus.PASS, "the spec has no examples", facts={"evidence": "kavi"})
        groups = [group for group in (False, True) if any(hidden == group for _, hidden in cases)]
        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            futures = [pool.submit(self._group, context, cases, group) for group in groups]
            outcomes = sorted((o for future in futures for o in future.result()), key=lambda o: o.index)
        return self._verdict(outcomes, len(context.spec.examples), len(context.hidden_examples))

    def _group(self, context: GateContext, cases: list[tuple[Example, bool]], hidden: bool) -> list[Outcome]:
        """The visible or the hidden examples, in one reporter that forks a fresh worker per example."""
        chosen = [(index, example) for index, (example, is_hidden) in enumerate(cases) if is_hidden == hidden]
        result, report = run_skill_child(context, payloads=[dict(example.input) for _, example in chosen])
        reports = report.get("reports") if report is not None else None
        if not isinstance(reports, list) or len(reports) != len(chosen):
            reports = [None] * len(chosen)  # no well-formed report for each example: none counts
        return [
            self._one(result, index, example, hidden, item if isinstance(item, dict) else None)
            for (index, example), item in zip(chosen, reports, strict=True)
        ]

    def _one(
        self, result: ExecResult, index: int, example: Example, hidden: bool, report: dict[str, Any] | None
    ) -> Outcome:
        ok, detail = judge(example, result, report)
        if hidden:  # nothing about a hidden example may travel back to a builder
            return Outcome(index, hidden, ok, "ok" if ok else "failed", str(result.isolation), "", {})
        evidence = "" if ok else result.stderr[-_REPORT_TAIL:]
        facts: dict[str, Any] = {"input": example.input, "expected": example.output or {"error": example.error}}
        if report is not None:
            facts["got"] = report.get("output") if report.get("ok") else {"error": report.get("error_type")}
        return Outcome(index, hidden, ok, detail, str(result.isolation), evidence, facts)

    def _verdict(self, outcomes: list[Outcome], visible: int, hidden: int) -> GateResult:
        total = visible + hidden
        isolation = min((o.isolation for o in outcomes), key=_strength)
        failed = [o for o in outcomes if not o.ok]
        lines = []
        for outcome in outcomes:
            label = f"hidden example {outcome.index - visible}" if outcome.hidden else f"example {outcome.index}"
            lines.append(f"{label}: {'ok' if outcome.ok else 'FAILED'} ({outcome.detail})")
            if not outcome.ok and outcome.detail_facts:
                lines.append("  " + json.dumps(outcome.detail_facts, sort_keys=True, default=str))
            if outcome.evidence:
                lines.append("  " + outcome.evidence.strip().replace("\n", "\n  "))
        facts = {
            "evidence": "kavi",
            "examples": total,
            "hidden": hidden,
            "results": len(outcomes),
            "failed_examples": [
                {"index": o.index, "detail": o.detail, **o.detail_facts} for o in failed if not o.hidden
            ],
            "failed_hidden": sum(1 for o in failed if o.hidden),
        }
        hidden_note = f" ({hidden} hidden)" if hidden else ""
        if len(outcomes) != total:  # one child per example: a count that differs is kavi's own bug
            return GateResult(
                self.name,
                GateStatus.ERROR,
                f"{len(outcomes)} result(s) for {total} example(s)",
                "\n".join(lines),
                isolation=isolation,
                facts=facts,
            )
        if failed:
            summary = f"{len(failed)} of {total} example(s){hidden_note} failed"
            return GateResult(self.name, GateStatus.FAIL, summary, "\n".join(lines), isolation=isolation, facts=facts)
        summary = f"{total} of {total} example(s){hidden_note} match"
        return GateResult(self.name, GateStatus.PASS, summary, "\n".join(lines), isolation=isolation, facts=facts)


_ORDER = ("process", "fallback", "full")


def _strength(level: str) -> int:
    return _ORDER.index(level) if level in _ORDER else -1
