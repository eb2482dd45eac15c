"""Read-only ledger views the API serves and the CLI has no command for (one version, one verification,
events by sequence). Queries through SQLModel, like :mod:`kavi.stages.queries`."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import col, select

from kavi.errors import KaviError, NotFoundError
from kavi.ledger.models import Event, GateRecord, Promotion, Verification
from kavi.server.tools import tool_of
from kavi.stages.common import Forge

MAX_PAGE = 500


def skill_version(forge: Forge, name: str, version: int | None) -> dict[str, Any]:
    """One version (the latest TRUSTED when ``version`` is None): spec, hashes, side effect, tool, attestation."""
    with forge.ledger.reading() as session:
        query = select(Promotion).where(Promotion.name == name)
        if version is None:
            query = query.where(Promotion.status == "TRUSTED")
        else:
            query = query.where(Promotion.version == version)
        promotion = session.exec(query.order_by(col(Promotion.version).desc()).limit(1)).first()
    if promotion is None:
        what = f"{name} v{version}" if version is not None else f"TRUSTED version of {name!r}"
        raise NotFoundError(f"there is no {what}", hint="`kavi list-skills --all` lists them")
    tool = tool_of(forge, promotion)
    detail: dict[str, Any] = {
        **promotion.model_dump(),
        "spec": json.loads(forge.store.get(promotion.spec_sha256)),
        "tool": None if tool is None else {"definition": tool.definition, "sha256": tool.sha256},
        "attestation": _statement(forge, promotion),
    }
    return detail


def _statement(forge: Forge, promotion: Promotion) -> dict[str, Any] | None:
    """The unsigned in-toto statement `kavi attest` would sign, for a TRUSTED version; None otherwise."""
    if promotion.status != "TRUSTED":
        return None
    from kavi.integrity.attest import make_statement

    try:
        return make_statement(forge.workspace, promotion.name, promotion.version)
    except KaviError:
        return None


def verification(forge: Forge, verification_id: str) -> dict[str, Any]:
    """One verification with every gate's status, summary and isolation."""
    with forge.ledger.reading() as session:
        found = session.get(Verification, verification_id)
        if found is None:
            raise NotFoundError(f"no verification {verification_id!r}", hint="`kavi show <proposal>` lists them")
        gates = session.exec(
            select(GateRecord).where(GateRecord.verification_id == verification_id).order_by(col(GateRecord.id))
        ).all()
    return {**found.model_dump(), "gates": [g.model_dump(exclude={"id", "verification_id"}) for g in gates]}


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "seq": event.id,
        "ts": event.ts,
        "kind": event.kind,
        "proposal_id": event.proposal_id,
        "build_id": event.build_id,
        "payload": json.loads(event.payload),
        "hash": event.hash,
    }


def events_after(forge: Forge, after: int, limit: int = 100) -> list[dict[str, Any]]:
    """Ledger events with a sequence above ``after``, oldest first."""
    limit = max(1, min(limit, MAX_PAGE))
    with forge.ledger.reading() as session:
        rows = session.exec(select(Event).where(col(Event.id) > after).order_by(col(Event.id)).limit(limit)).all()
    return [event_dict(row) for row in rows]


def job_events(forge: Forge, job_id: str) -> list[dict[str, Any]]:
    """The server.job events of one job (a restarted server reads a job's fate from them)."""
    with forge.ledger.reading() as session:
        rows = session.exec(
            select(Event).where(col(Event.kind).startswith("server.job.")).order_by(col(Event.id))
        ).all()
    return [event_dict(row) for row in rows if json.loads(row.payload).get("job_id") == job_id]


def last_sequence(forge: Forge) -> int:
    with forge.ledger.reading() as session:
        last = session.exec(select(Event).order_by(col(Event.id).desc()).limit(1)).first()
    return int(last.id or 0) if last else 0
