"""forge: build → verify → research → build again, within a budget, until VERIFIED or ESCALATED.

It never promotes: a person (or a CI job) decides that. It stops early, ESCALATED, on anything a retry must
not paper over: a policy or invariant violation, an attempt to leave the allowlist or widen permissions,
the same failure twice in a row, or a failure nobody can classify.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

from kavi.builders.base import BuilderOptions, BuildOutcome, BuildPacket, BuildStatus, FailureKind, TraceEvent
from kavi.errors import UsageError
from kavi.gates.lint import RuffGate, ruff_fix_argv
from kavi.gates.tooling import run_tool
from kavi.kinds import kind_of
from kavi.ledger.models import Proposal, ProposalStatus
from kavi.spec import SkillSpec
from kavi.stages.build import Built, build_skill
from kavi.stages.common import Forge, get_proposal, set_status
from kavi.stages.executions import begin_execution, execution, finish_execution
from kavi.stages.research import Researched, research_build
from kavi.stages.verify import UNOBSERVED, GateProgress, Verified, candidate_files, verify_skill

ESCALATE_AT_ONCE = {
    FailureKind.VERIFY_POLICY: "a policy violation needs a person",
    FailureKind.VERIFY_INVARIANT: "an invariant violation needs a person",
    FailureKind.GATE_VIOLATION: "the builder tried to go outside the allowlist or its permissions",
    FailureKind.UNKNOWN: "the failure could not be classified",
}

Progress = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Budget:
    max_attempts: int = 3
    max_cost_usd: float | None = None
    max_minutes: float | None = None


@dataclass
class Forged:
    proposal_id: str
    name: str
    status: str
    reason: str
    attempts: list[dict[str, Any]] = field(default_factory=list)
    cost_usd: float = 0.0
    execution_id: str = ""  # the forge's node in the execution tree; its attempts are its children


def forge_skill(
    forge: Forge,
    reference: str,
    *,
    builder_name: str | None = None,
    builder_options: dict[str, Any] | None = None,
    budget: Budget = Budget(),
    advice_options: dict[str, Any] | None = None,
    progress: Progress = lambda _stage, _data: None,
    gate_progress: GateProgress = UNOBSERVED,
    parent: str | None = None,
) -> Forged:
    """``progress`` hears ("building", record) before each build and ("build" | "verify" | "research",
    record) after each step; ``gate_progress`` hears each gate of each verification. The forge is one node of
    the execution tree (under ``parent``, a plan's node for instance) and each attempt a node below it."""
    if budget.max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    name = builder_name or forge.workspace.config.build.builder
    if name == "manual":
        raise UsageError("forge needs an automatic builder; use `kavi build-skill` for manual builds")
    with forge.ledger.reading() as session:
        proposal = get_proposal(session, reference)
    request = {"proposal_id": proposal.id, "builder": name, "budget": asdict(budget)}
    with execution(forge, "forge", proposal.name, input_data=request, parent=parent) as node:
        attempts = AttemptNodes(forge, proposal, node.id, progress)
        try:
            result = _forge_loop(
                forge, proposal, name, builder_options, budget, advice_options, attempts, gate_progress
            )
        finally:
            attempts.close()
        result.execution_id = node.id
        node.status = result.status
        node.output = {"reason": result.reason, "attempts": len(result.attempts), "cost_usd": result.cost_usd}
    return result


class AttemptNodes:
    """Each attempt as a node under the forge's: begun when the forge says it is building, finished with the
    attempt's record (build, verification, research) when the next begins or the forge ends."""

    def __init__(self, forge: Forge, proposal: Proposal, parent: str, progress: Progress) -> None:
        self.forge, self.proposal, self.parent, self.progress = forge, proposal, parent, progress
        self.open: tuple[str, dict[str, Any]] | None = None

    def __call__(self, stage: str, record: dict[str, Any]) -> None:
        if stage == "building":
            self.close()
            node_id = begin_execution(
                self.forge,
                "attempt",
                self.proposal.name,
                input_data={"proposal_id": self.proposal.id, **record},
                parent=self.parent,
            )
            self.open = (node_id, {})
        elif self.open is not None:
            self.open = (self.open[0], record)
        self.progress(stage, record)

    def close(self) -> None:
        if self.open is None:
            return
        node_id, record = self.open
        self.open = None
        status = str(record.get("verification") or record.get("build") or "FAILED")
        finish_execution(self.forge, node_id, status, output=record)


def _forge_loop(
    forge: Forge,
    proposal: Proposal,
    name: str,
    builder_options: dict[str, Any] | None,
    budget: Budget,
    advice_options: dict[str, Any] | None,
    progress: Progress,
    gate_progress: GateProgress,
) -> Forged:
    result = Forged(proposal.id, proposal.name, "", "")
    started = time.monotonic()
    previous: Researched | None = None
    advice: str | None = None
    for number in range(1, budget.max_attempts + 1):
        spent = _budget_spent(budget, result, started)
        if spent:
            return _escalate(forge, result, spent)
        progress("building", {"attempt": len(result.attempts) + 1})
        built = build_skill(
            forge,
            proposal.id,
            builder_name=name,
            builder_options=builder_options,
            previous_failure=previous.previous_failure() if previous else None,
            advice=advice,
        )
        result.cost_usd += built.cost_usd or 0.0
        record: dict[str, Any] = {"attempt": built.attempt, "build_id": built.build_id, "build": built.status}
        result.attempts.append(record)
        progress("build", record)
        if built.status == "SUCCEEDED":
            verified = verify_skill(forge, proposal.id, progress=gate_progress)
            record.update(verification_id=verified.verification_id, verification=verified.status)
            progress("verify", record)
            if verified.passed:
                result.status, result.reason = ProposalStatus.VERIFIED, f"verified on attempt {number}"
                return result
            fixed = _apply_lint_fixes(forge, proposal.id, built, verified, result, progress, gate_progress)
            if fixed is not None:
                built, verified = fixed
                if verified.passed:
                    result.status = ProposalStatus.VERIFIED
                    result.reason = f"verified on attempt {built.attempt}, after ruff's safe fixes (no model call)"
                    return result
        note = research_build(forge, built.build_id, advice_options=advice_options)
        record.update(kind=note.kind, summary=note.summary)
        progress("research", record)
        reason = _escalation(note, previous)
        if reason:
            return _escalate(forge, result, reason)
        previous, advice = note, note.advice
    return _escalate(forge, result, f"the budget of {budget.max_attempts} attempt(s) is spent")


class LintFixBuilder:
    """Forge's own builder: the failed candidate's files with the lint gate's safe automatic fixes applied
    (``ruff check --fix`` with the gate's settings), in the build sandbox. Costs no model call, and its
    attempt is recorded, judged by the allowlist and verified like any other."""

    name: ClassVar[str] = "ruff-fix"
    options_model: ClassVar[type[BuilderOptions]] = BuilderOptions

    def __init__(self, spec: SkillSpec, files: dict[str, bytes], timeout_s: float) -> None:
        self.spec, self.files, self.timeout_s = spec, files, timeout_s

    def available(self) -> tuple[bool, str]:
        return True, "applies the lint gate's safe fixes"

    def build(self, packet: BuildPacket, sandbox: Path) -> BuildOutcome:
        for path, content in self.files.items():
            target = sandbox / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        argv = ruff_fix_argv(self.spec)
        run = run_tool([sys.executable, "-m", *argv], cwd=sandbox, timeout_s=self.timeout_s)
        trace = (
            TraceEvent("tool_call", {"name": "ruff", "input": {"command": shlex.join(argv)}}),
            TraceEvent("tool_result", {"is_error": run.returncode not in (0, 1), "content": run.output[-4000:]}),
        )
        if run.timed_out or run.returncode not in (0, 1):  # 1: findings remain that ruff cannot fix safely
            return BuildOutcome(
                BuildStatus.FAILED, f"ruff --fix failed ({run.returncode})", trace, failure_kind="BUILD_ERROR"
            )
        return BuildOutcome(BuildStatus.SUCCEEDED, trace=trace)


def _lint_fixable(verified: Verified) -> bool:
    """Only lint failed, and ruff marked some of its findings as safely fixable (``[*]``)."""
    failed = [gate for gate in verified.gates if gate["status"] != "pass"]
    return (
        len(failed) == 1
        and failed[0]["gate"] == RuffGate.name
        and any(" [*] " in line for line in str(failed[0].get("report") or "").splitlines())
    )


def _apply_lint_fixes(
    forge: Forge,
    proposal_id: str,
    built: Built,
    verified: Verified,
    result: Forged,
    progress: Progress,
    gate_progress: GateProgress,
) -> tuple[Built, Verified] | None:
    """A recorded attempt of ruff's safe fixes on the candidate, before another model call is spent on
    what a tool fixes for free. None when the failure is not (only) fixable lint."""
    if not _lint_fixable(verified) or built.candidate_sha256 is None:
        return None
    with forge.ledger.reading() as session:
        spec = forge.spec_of(get_proposal(session, proposal_id))
    if not kind_of(spec.kind).lint_fixes:
        return None
    fixer = LintFixBuilder(
        cast(SkillSpec, spec), candidate_files(forge, built.candidate_sha256), forge.workspace.config.verify.timeout_s
    )
    progress("building", {"attempt": built.attempt + 1})
    fixed = build_skill(forge, proposal_id, builder=fixer)
    record: dict[str, Any] = {
        "attempt": fixed.attempt,
        "build_id": fixed.build_id,
        "build": fixed.status,
        "builder": fixer.name,
    }
    result.attempts.append(record)
    progress("build", record)
    if fixed.status != "SUCCEEDED":
        return None
    checked = verify_skill(forge, proposal_id, progress=gate_progress)
    record.update(verification_id=checked.verification_id, verification=checked.status)
    progress("verify", record)
    return fixed, checked


def _escalation(note: Researched, previous: Researched | None) -> str | None:
    kind = FailureKind(note.kind)
    if kind in ESCALATE_AT_ONCE:
        return f"{kind}: {ESCALATE_AT_ONCE[kind]} ({note.summary})"
    if note.advice_status and note.advice_status.startswith("advice refused"):
        return f"the advice tried to widen permissions: {note.advice_status}"
    if previous is not None and previous.kind == note.kind and _signature(previous) == _signature(note):
        return f"the same failure twice in a row ({note.kind}: {note.summary})"
    return None


def _signature(note: Researched) -> str:
    facts = {key: value for key, value in note.facts.items() if key != "gate_output"}
    return f"{note.kind}|{note.summary}|{sorted(facts.items(), key=lambda item: item[0])!r}"


def _budget_spent(budget: Budget, result: Forged, started: float) -> str | None:
    if budget.max_minutes is not None and (time.monotonic() - started) / 60 >= budget.max_minutes:
        return f"the time budget of {budget.max_minutes:g} minute(s) is spent"
    if budget.max_cost_usd is not None and result.cost_usd >= budget.max_cost_usd:
        return f"the cost budget of ${budget.max_cost_usd:g} is spent"
    return None


def _escalate(forge: Forge, result: Forged, reason: str) -> Forged:
    with forge.ledger.transaction() as session:
        proposal = session.get(Proposal, result.proposal_id)
        assert proposal is not None
        if proposal.status not in (ProposalStatus.REJECTED, ProposalStatus.TRUSTED):
            set_status(session, proposal, ProposalStatus.ESCALATED, reason=reason, attempts=len(result.attempts))
    result.status, result.reason = ProposalStatus.ESCALATED, reason
    return result
