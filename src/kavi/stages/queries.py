"""Read-only views of the ledger: list-skills, status and show."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select as select_columns
from sqlalchemy import text
from sqlmodel import col, func, select

from kavi.errors import NotFoundError
from kavi.ledger.models import (
    Build,
    Event,
    Execution,
    GateRecord,
    Promotion,
    Proposal,
    ProposalStatus,
    Verification,
    VersionStatus,
)
from kavi.spec import load_hidden_examples
from kavi.stages.common import Forge, get_proposal


def list_skills(forge: Forge, *, include_revoked: bool = False) -> list[dict[str, Any]]:
    """Every TRUSTED version (and REVOKED ones on request), newest version of each name first."""
    query = select_columns(
        col(Promotion.name),
        col(Promotion.version),
        col(Promotion.status),
        col(Promotion.side_effect),
        col(Promotion.approver),
        col(Promotion.promoted_at),
        col(Promotion.skill_sha256),
        col(Promotion.proposal_id),
        col(Promotion.unmeasured),
        col(Verification.isolation),
    ).join(Verification, col(Verification.id) == col(Promotion.verification_id))
    if not include_revoked:
        query = query.where(col(Promotion.status) == VersionStatus.TRUSTED)
    query = query.order_by(col(Promotion.name), col(Promotion.version).desc())
    with forge.ledger.reading() as session:
        rows = session.execute(query).all()
    return [
        {
            "name": r[0],
            "version": r[1],
            "status": r[2],
            "side_effect": r[3],
            "approver": r[4],
            "promoted_at": r[5],
            "skill_sha256": r[6],
            "proposal_id": r[7],
            "unmeasured": bool(r[8]),
            "verification_isolation": r[9],
        }
        for r in rows
    ]


def list_proposals(forge: Forge, *, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Proposals, newest first. Plain SQL over the ``created_at`` index: with 10k proposals, SQLAlchemy's
    statement compilation and row processing cost more than the query itself."""
    sql = "SELECT id, name, kind, status, side_effect, updated_at FROM proposals"
    params: dict[str, Any] = {}
    if status:
        sql += " WHERE status = :status"
        params["status"] = status.upper()
    sql += " ORDER BY created_at DESC"
    if limit:
        sql += " LIMIT :limit"
        params["limit"] = int(limit)
    with forge.ledger.engine.connect() as conn:
        rows = conn.execute(text(sql), params).fetchall()
    return [
        {"id": r[0], "name": r[1], "kind": r[2], "status": r[3], "side_effect": r[4], "updated_at": r[5]} for r in rows
    ]


def status_summary(forge: Forge, *, limit: int | None = 50) -> dict[str, Any]:
    with forge.ledger.reading() as session:
        counts = dict(session.exec(select(Proposal.status, func.count()).group_by(Proposal.status)).all())
        events = session.exec(select(func.count()).select_from(Event)).one()
    return {
        "workspace": str(forge.workspace.root),
        "ledger": forge.workspace.ledger_url.split("://", 1)[0],
        "schema": forge.ledger.schema_version(),
        "counts": {status.value: counts.get(status.value, 0) for status in ProposalStatus},
        "events": events,
        "proposals": list_proposals(forge, limit=limit),
    }


def _hidden_examples_view(forge: Forge, proposal: Proposal, *, promoted: bool) -> dict[str, Any]:
    """Only a count until the proposal has been promoted: before, what `show` prints can reach a builder
    (pasted into a prompt, kept in a log the next attempt reads)."""
    if proposal.hidden_examples_sha256 is None:
        return {"count": 0}
    examples = load_hidden_examples(forge.store.get(proposal.hidden_examples_sha256))
    view: dict[str, Any] = {"count": len(examples)}
    if promoted:
        view["examples"] = [example.model_dump(mode="json", exclude_none=True) for example in examples]
    return view


def show(forge: Forge, reference: str) -> dict[str, Any]:
    """Everything the ledger knows about one proposal (by id, id prefix or skill name)."""
    with forge.ledger.reading() as session:
        try:
            proposal = get_proposal(session, reference)
        except NotFoundError:
            raise NotFoundError(f"no proposal or skill {reference!r}", hint="`kavi status` lists them") from None
        spec = forge.spec_of(proposal)
        builds = session.exec(select(Build).where(Build.proposal_id == proposal.id).order_by(col(Build.attempt))).all()
        verifications = session.exec(
            select(Verification).where(Verification.proposal_id == proposal.id).order_by(col(Verification.created_at))
        ).all()
        gates = {
            v.id: session.exec(select(GateRecord).where(GateRecord.verification_id == v.id)).all()
            for v in verifications
        }
        versions = session.exec(
            select(Promotion).where(Promotion.proposal_id == proposal.id).order_by(col(Promotion.version))
        ).all()
        executions = session.exec(
            select(Execution.isolation, func.count())
            .where(col(Execution.promotion_id).in_([v.id for v in versions]))
            .group_by(Execution.isolation)
        ).all()
        return {
            "proposal": proposal.model_dump(),
            "spec": json.loads(spec.canonical_json()),
            "hidden_examples": _hidden_examples_view(forge, proposal, promoted=bool(versions)),
            "builds": [b.model_dump() for b in builds],
            "verifications": [
                {**v.model_dump(), "gates": [g.model_dump(exclude={"id", "verification_id"}) for g in gates[v.id]]}
                for v in verifications
            ],
            "versions": [p.model_dump() for p in versions],
            "executions": {"total": sum(n for _, n in executions), "by_isolation": dict(executions)},
        }
