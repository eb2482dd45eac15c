"""research: why did a build (or its verification) fail, and what should the next attempt know?

The deterministic classifier (:mod:`kavi.research`) reads the build's reason or the failing gates' reports;
the note is frozen as a RESEARCH_NOTE artifact. Advice from an LLM is optional, bounded, and checked
mechanically: it may never widen what the spec allows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

from sqlmodel import col, select

from kavi.builders.base import BuildPacket, BuildStatus
from kavi.errors import TransitionError
from kavi.kinds import kind_of
from kavi.ledger.models import Build, Event, GateRecord, Proposal, Verification
from kavi.ledger.store import append_event
from kavi.remedies import remedies_for
from kavi.research import ResearchNote, classify_failure, request_advice
from kavi.spec import SkillSpec, canonical_json
from kavi.stages.common import Forge, get_build

REPORT_TAIL = 4000


@dataclass(frozen=True)
class Researched:
    build_id: str
    proposal_id: str
    attempt: int
    kind: str
    summary: str
    facts: dict[str, Any]
    note_sha256: str
    advice: str | None = None
    advice_status: str | None = None
    added_rules: list[str] = field(default_factory=list)

    def previous_failure(self) -> dict[str, Any]:
        """What the next packet carries: the note, with the exact failing gate output."""
        return {"kind": self.kind, "summary": self.summary, "facts": self.facts, "build_id": self.build_id}


def research_build(forge: Forge, build_reference: str, *, advice_options: dict[str, Any] | None = None) -> Researched:
    with forge.ledger.reading() as session:
        build = get_build(session, build_reference)
        gate_results = _gate_results(forge, session, build)
        packet = BuildPacket(**json.loads(forge.store.get(build.packet_sha256))) if build.packet_sha256 else None
        proposal = session.get(Proposal, build.proposal_id)
        spec = forge.spec_of(proposal) if proposal is not None else None
    note = classify_failure(
        build_status=build.status,
        build_reason=build.reason,
        failure_kind=build.failure_kind,
        gate_results=gate_results,
    )
    facts = dict(note.to_json().get("facts", {}))
    failing = {g["gate"]: g["report"][-REPORT_TAIL:] for g in gate_results if g["status"] in ("fail", "error")}
    lintable = spec is not None and kind_of(spec.kind).lint_fixes
    fixes = remedies_for(gate_results, cast(SkillSpec, spec) if lintable else None)
    if fixes:
        facts["fixes"] = [fix.to_json() for fix in fixes]
    if failing:
        facts["gate_output"] = failing
    advice_text: str | None = None
    advice_status: str | None = None
    added: list[str] = []
    if advice_options is not None and packet is not None:
        advice_text, advice_status, added = _advise(note, packet, advice_options)
    with forge.ledger.transaction() as session:
        body = {"kind": str(note.kind), "summary": note.summary, "facts": facts, "build_id": build.id}
        note_sha = forge.put_artifact(session, canonical_json(body), "RESEARCH_NOTE")
        append_event(
            session,
            "research.noted",
            {"kind": str(note.kind), "note_sha256": note_sha, "advice_status": advice_status},
            proposal_id=build.proposal_id,
            build_id=build.id,
        )
    return Researched(
        build.id,
        build.proposal_id,
        build.attempt,
        str(note.kind),
        note.summary,
        facts,
        note_sha,
        advice_text,
        advice_status,
        added,
    )


def _gate_results(forge: Forge, session: Any, build: Build) -> list[dict[str, Any]]:
    if build.status == BuildStatus.SUCCEEDED:
        verification = session.exec(
            select(Verification).where(Verification.build_id == build.id).order_by(col(Verification.created_at).desc())
        ).first()
        if verification is None:
            raise TransitionError(
                f"build {build.id} succeeded and has not been verified", hint="run `kavi verify-skill`"
            )
        if verification.status == "PASSED":
            raise TransitionError(f"build {build.id} passed verification: there is no failure to research")
        records = session.exec(select(GateRecord).where(GateRecord.verification_id == verification.id)).all()
        return [
            {
                "gate": r.gate,
                "status": r.status,
                "summary": r.summary,
                "report": forge.store.get(r.report_sha256).decode("utf-8", "replace") if r.report_sha256 else "",
            }
            for r in records
        ]
    if build.status in ("RUNNING", BuildStatus.AWAITING_INPUT):
        raise TransitionError(f"build {build.id} is {build.status}: it has not failed")
    return []


def _advise(note: ResearchNote, packet: BuildPacket, options: dict[str, Any]) -> tuple[str | None, str, list[str]]:
    from kavi.builders.openai_compat import OpenAIBuilder, OpenAIOptions
    from kavi.builders.options import load_options

    parsed = load_options(OpenAIOptions, options, prefix=OpenAIBuilder.env_prefix)
    next_packet = BuildPacket(**{**packet.to_json(), "attempt": packet.attempt + 1})
    advice, why = request_advice(note, next_packet, parsed)
    if advice is None:
        return None, why, []
    return advice.text, why, list(advice.added_rules)


def build_trace(forge: Forge, build_reference: str) -> dict[str, Any]:
    """Every event of one build, in order: the builder's exchanges and the build's own transitions."""
    with forge.ledger.reading() as session:
        build = get_build(session, build_reference)
        events = session.exec(select(Event).where(Event.build_id == build.id).order_by(col(Event.id))).all()
        return {
            "build": build.model_dump(),
            "events": [{"id": e.id, "ts": e.ts, "kind": e.kind, "data": json.loads(e.payload)} for e in events],
        }
