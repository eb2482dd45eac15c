"""Read-only views of the ledger: list-skills, status and show.

Each view has a ``*_here`` form taking a workspace: it never creates a ledger, and in a clone that holds
kavi.lock but no ledger yet it answers from the lock (what `run-skill` runs there), so looking around a
fresh clone never hides the lock behind a new empty ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select as select_columns
from sqlalchemy import text
from sqlmodel import col, func, select

from kavi.errors import NotFoundError
from kavi.integrity.lockdata import LOCK_FILE, load_lock
from kavi.kinds import kind_of
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
from kavi.workspace import Workspace

NO_LEDGER_NOTE = "no ledger yet: `kavi init` creates one"
LOCK_NOTE = f"no ledger yet: these versions come from {LOCK_FILE}; `kavi init` adopts them into a new ledger"


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
        col(Proposal.kind),
        col(Promotion.id),
        col(Promotion.spec_sha256),
        col(Promotion.correctness_device),
    ).join(Verification, col(Verification.id) == col(Promotion.verification_id))
    query = query.join(Proposal, col(Proposal.id) == col(Promotion.proposal_id))
    if not include_revoked:
        query = query.where(col(Promotion.status) == VersionStatus.TRUSTED)
    query = query.order_by(col(Promotion.name), col(Promotion.version).desc())
    with forge.ledger.reading() as session:
        rows = session.execute(query).all()
        chains = _chains_state(forge, session, [(r[11], r[12]) for r in rows if kind_of(r[10]).composite])
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
            "kind": r[10],
            **chains.get(r[11], {}),
            "correctness_device": r[13],
        }
        for r in rows
    ]


def _chains_state(forge: Forge, session: Any, promotions: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """A chain's members and whether it is suspended (a member revoked since), for each chain version listed."""
    if not promotions:
        return {}
    from kavi.stages.chain import chains_state

    return chains_state(forge, session, promotions)


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
        chains = (
            _chains_state(forge, session, [(v.id, v.spec_sha256) for v in versions])
            if kind_of(proposal.kind).composite
            else {}
        )
        executions = session.exec(
            select(Execution.isolation, func.count())
            .where(col(Execution.promotion_id).in_([v.id for v in versions]))
            .group_by(Execution.isolation)
        ).all()
        return {
            "proposal": proposal.model_dump(),
            "spec": json.loads(spec.canonical_json()),
            "hidden_examples": _hidden_examples_view(forge, proposal, promoted=bool(versions)),
            # a SUCCEEDED build has no reason; older ledgers kept a resumed manual build's "waiting for a person"
            "builds": [{**b.model_dump(), **({"reason": None} if b.status == "SUCCEEDED" else {})} for b in builds],
            "verifications": [
                {**v.model_dump(), "gates": [g.model_dump(exclude={"id", "verification_id"}) for g in gates[v.id]]}
                for v in verifications
            ],
            "versions": [{**p.model_dump(), **chains.get(p.id, {})} for p in versions],
            "executions": {"total": sum(n for _, n in executions), "by_isolation": dict(executions)},
        }


# --- views that never create a ledger -------------------------------------------------------------------


@contextmanager
def _existing(workspace: Workspace) -> Iterator[Forge]:
    forge = Forge.open_existing(workspace)
    try:
        yield forge
    finally:
        forge.close()


def _locked(workspace: Workspace) -> list[dict[str, Any]]:
    return list(load_lock(workspace.root).get("skill", [])) if workspace.lock_path.is_file() else []


def _lock_row(entry: dict[str, Any]) -> dict[str, Any]:
    main = next(iter(entry["files"].values()), "")
    return {
        "name": entry["name"],
        "version": entry["version"],
        "status": VersionStatus.TRUSTED.value,
        "side_effect": entry["side_effect"],
        "approver": entry["approver"],
        "promoted_at": entry["promoted_at"],
        "skill_sha256": main,
        "proposal_id": entry["proposal_id"],
        "unmeasured": bool(entry.get("unmeasured", kind_of(entry["kind"]).has_unmeasurable_gates)),
        "verification_isolation": f"({LOCK_FILE})",
        "installed": entry["installed"],
    }


def list_skills_here(workspace: Workspace, *, include_revoked: bool = False) -> dict[str, Any]:
    """``{"skills": [...], "source": "ledger" | "lock" | "none", "note": ...}``."""
    if workspace.has_ledger():
        with _existing(workspace) as forge:
            return {"skills": list_skills(forge, include_revoked=include_revoked), "source": "ledger", "note": None}
    if workspace.lock_path.is_file():
        rows = [_lock_row(e) for e in sorted(_locked(workspace), key=lambda e: (e["name"], -e["version"]))]
        return {"skills": rows, "source": "lock", "note": LOCK_NOTE}
    return {"skills": [], "source": "none", "note": NO_LEDGER_NOTE}


def status_here(workspace: Workspace, *, limit: int | None = 50) -> dict[str, Any]:
    if workspace.has_ledger():
        with _existing(workspace) as forge:
            return {**status_summary(forge, limit=limit), "source": "ledger", "note": None}
    from_lock = workspace.lock_path.is_file()
    return {
        "workspace": str(workspace.root),
        "ledger": "none",
        "schema": [],
        "counts": {status.value: 0 for status in ProposalStatus},
        "events": 0,
        "proposals": [],
        "locked": [_lock_row(e) for e in _locked(workspace)],
        "source": "lock" if from_lock else "none",
        "note": LOCK_NOTE if from_lock else NO_LEDGER_NOTE,
    }


def show_here(workspace: Workspace, reference: str) -> dict[str, Any]:
    if workspace.has_ledger():
        with _existing(workspace) as forge:
            return {**show(forge, reference), "source": "ledger", "note": None}
    entries = [e for e in _locked(workspace) if reference in (e["name"], e["proposal_id"])]
    if not entries:
        raise NotFoundError(
            f"no proposal or skill {reference!r}", hint=LOCK_NOTE if workspace.lock_path.is_file() else NO_LEDGER_NOTE
        )
    newest = max(entries, key=lambda e: e["version"])
    spec = json.loads(newest["spec"])
    return {
        "proposal": {
            "id": newest["proposal_id"],
            "name": newest["name"],
            "kind": newest["kind"],
            "description": spec.get("description", ""),
            "status": ProposalStatus.TRUSTED.value,
            "side_effect": newest["side_effect"],
            "spec_sha256": newest["spec_sha256"],
        },
        "spec": spec,
        "builds": [],
        "verifications": [],
        "versions": [
            {
                **_lock_row(e),
                "id": e["promotion_id"],
                "candidate_sha256": e["candidate_sha256"],
                "revoked_at": None,
                "revoked_by": None,
                "revoked_reason": None,
            }
            for e in sorted(entries, key=lambda e: e["version"])
        ],
        "executions": {"total": 0, "by_isolation": {}},
        "source": "lock",
        "note": LOCK_NOTE,
    }
