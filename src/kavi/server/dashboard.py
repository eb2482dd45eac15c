"""What the dashboard's pages show, read from the ledger and the artifact store as plain dicts.

One function per page; :mod:`kavi.server.pages` only renders them. Each reads through the same stage views the
API and CLI use (:func:`kavi.stages.queries.show`, :func:`kavi.stages.research.build_trace`'s events, the
integrity checks) and adds what a person needs next to them: a build's transcript, a candidate's diff against
the previous attempt, the text of every gate report and research note. Every query is bounded or indexed, so a
page stays fast on a ledger with many thousands of proposals.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from typing import Any

from sqlmodel import col, select

from kavi.errors import KaviError, NotFoundError
from kavi.gpu.spec import KernelSpec
from kavi.kinds import kind_of
from kavi.ledger.models import Event, Execution, Promotion, Proposal, Verification
from kavi.server import kernel_reports
from kavi.stages.common import Forge
from kavi.stages.queries import list_proposals, show
from kavi.transcript import transcript

KERNEL_KIND: str = KernelSpec.model_fields["kind"].default
LAST_RUNS = 5
BLOCKED_SHOWN = 5
BLOCKED_SCANNED = 500
REFUSAL_KINDS = ("run.blocked", "run.refused")
PROPOSALS_SHOWN = 200
LIVE_SHOWN = 50
REPORT_CHARS = 20_000
FILE_CHARS = 60_000
ATTESTATIONS_SHOWN = 50
# A build's own events and its builder's trace; its verification and research have sections of their own.
TRANSCRIPT_KINDS = ("trace.", "build.")
# Ledger events a person follows live; trace.* events belong to a build's transcript instead.
LIVE_KINDS = ("run.", "build.", "verification.", "promotion.", "proposal.", "research.", "server.job.")


# --- skills ------------------------------------------------------------------------------------------------


def skills_page(forge: Forge) -> list[dict[str, Any]]:
    """Every skill, kernel and chain that reached TRUSTED once: its versions (newest first) with status,
    side-effect class and isolation layers, its last runs and its last blocked or refused runs."""
    with forge.ledger.reading() as session:
        rows = session.exec(
            select(Promotion, Verification.layers, Verification.isolation, Proposal.kind)
            .join(Verification, col(Verification.id) == col(Promotion.verification_id))
            .join(Proposal, col(Proposal.id) == col(Promotion.proposal_id))
            .order_by(col(Promotion.name), col(Promotion.version).desc())
        ).all()
        runs = {
            promotion.id: session.exec(
                select(Execution)
                .where(Execution.promotion_id == promotion.id)
                .order_by(col(Execution.created_at).desc())
                .limit(LAST_RUNS)
            ).all()
            for promotion, *_ in rows
        }
        promoted = {promotion.proposal_id for promotion, *_ in rows}
        refusals = session.exec(  # through the proposal_id index: only promoted proposals' events are scanned
            select(Event)
            .where(col(Event.proposal_id).in_(promoted), col(Event.kind).in_(REFUSAL_KINDS))
            .order_by(col(Event.id).desc())
            .limit(BLOCKED_SCANNED)
        ).all()
    blocked: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in refusals:
        payload = json.loads(event.payload)
        name = str(payload.get("name", ""))
        if len(blocked[name]) < BLOCKED_SHOWN:
            blocked[name].append({"seq": event.id, "ts": event.ts, "kind": event.kind, **payload})
    skills: dict[str, dict[str, Any]] = {}
    for promotion, layers, isolation, kind in rows:
        entry = skills.setdefault(
            promotion.name,
            {
                "name": promotion.name,
                "kind": kind_noun(kind),
                "versions": [],
                "runs": [],
                "blocked": blocked.get(promotion.name, []),
            },
        )
        entry["versions"].append({**promotion.model_dump(), "layers": _layers(layers), "isolation": isolation})
        entry["runs"].extend(_run(execution) for execution in runs[promotion.id])
    for entry in skills.values():
        entry["runs"] = sorted(entry["runs"], key=lambda run: run["created_at"], reverse=True)[:LAST_RUNS]
        entry["status"] = entry["versions"][0]["status"]
        entry["side_effect"] = entry["versions"][0]["side_effect"]
    return list(skills.values())


def kind_noun(kind: str) -> str:
    """What a person calls one of a kind (the kinds table's noun): a skill, a kernel."""
    try:
        return kind_of(kind).noun
    except KaviError:
        return kind


def _layers(text: str | None) -> list[str]:
    return [layer for layer in (text or "").split(",") if layer]


def _run(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.id,
        "version": execution.version,
        "created_at": execution.created_at,
        "duration_s": execution.duration_s,
        "ok": execution.error is None,
        "error": execution.error,
        "isolation": execution.isolation,
        "layers": _layers(execution.layers),
    }


# --- proposals and one proposal's timeline -----------------------------------------------------------------


def proposals_page(forge: Forge, status: str | None = None) -> dict[str, Any]:
    shown = list_proposals(forge, status=status, limit=PROPOSALS_SHOWN)
    return {"proposals": shown, "status": status, "limit": PROPOSALS_SHOWN}


def timeline(forge: Forge, reference: str) -> dict[str, Any]:
    """One proposal from spec to versions: every build (attempt) with its transcript, candidate files and
    diff, the verifications of that candidate with each gate's report, and the research notes on it."""
    shown = show(forge, reference)
    proposal_id = shown["proposal"]["id"]
    with forge.ledger.reading() as session:
        events = session.exec(select(Event).where(Event.proposal_id == proposal_id).order_by(col(Event.id))).all()
    by_build: dict[str, list[dict[str, Any]]] = defaultdict(list)
    moments: list[dict[str, Any]] = []
    notes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        data = json.loads(event.payload)
        plain = {"seq": event.id, "ts": event.ts, "kind": event.kind, "data": data}
        if event.build_id and event.kind.startswith(TRANSCRIPT_KINDS):
            by_build[event.build_id].append(plain)
        if event.kind == "research.noted" and event.build_id:
            notes[event.build_id].append({**plain, "note": _note(forge, data.get("note_sha256"))})
        if not event.kind.startswith("trace."):
            moments.append(plain)
    verifications: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for verification in shown["verifications"]:
        verifications[verification["build_id"]].append(_with_reports(forge, verification))
    builds = []
    previous_files: dict[str, str] | None = None
    for build in shown["builds"]:
        files = _candidate_files(forge, build.get("candidate_sha256"))
        builds.append(
            {
                **build,
                "transcript": _turns(transcript(by_build.get(build["id"], []))),
                "files": _files_with_diffs(files, previous_files),
                "verifications": verifications.get(build["id"], []),
                "notes": notes.get(build["id"], []),
            }
        )
        if files is not None:
            previous_files = files
    escalations = [moment for moment in moments if moment["kind"] == "proposal.escalated"]
    may_be_unmeasured = _kind_has_unmeasurable_gates(shown["proposal"]["kind"])
    return {
        **shown,
        "builds": builds,
        "moments": moments,
        "escalations": escalations,
        "may_be_unmeasured": may_be_unmeasured,
    }


def _kind_has_unmeasurable_gates(kind: str) -> bool:
    try:
        return kind_of(kind).has_unmeasurable_gates
    except KaviError:
        return False


def verification_page(forge: Forge, verification_id: str) -> dict[str, Any]:
    from kavi.server.views import verification

    found = verification(forge, verification_id)
    with forge.ledger.reading() as session:
        proposal = session.get(Proposal, found["proposal_id"])
    return {"verification": _with_reports(forge, found), "proposal": proposal.model_dump() if proposal else None}


def _with_reports(forge: Forge, verification: dict[str, Any]) -> dict[str, Any]:
    gates = [
        {**gate, "report": _text(forge, gate.get("report_sha256"), REPORT_CHARS)} for gate in verification["gates"]
    ]
    return {**verification, "gates": gates, "layers": _layers(verification.get("layers"))}


def _text(forge: Forge, digest: str | None, limit: int) -> str:
    if not digest:
        return ""
    try:
        text = forge.store.get(digest).decode("utf-8", "replace")
    except KaviError as exc:
        return f"(unreadable: {exc.message})"
    return text if len(text) <= limit else text[:limit] + f"\n… {len(text) - limit} more characters"


def _note(forge: Forge, digest: str | None) -> dict[str, Any]:
    text = _text(forge, digest, REPORT_CHARS * 4)
    try:
        note: dict[str, Any] = json.loads(text)
    except ValueError:
        return {"summary": text, "facts": {}}
    facts = dict(note.get("facts", {}))
    gate_output = facts.pop("gate_output", {})
    return {**note, "facts": facts, "gate_output": gate_output}


def _turns(lines: list[str]) -> list[dict[str, Any]]:
    """The transcript's lines cut at its turn markers; a line that records a denial is flagged."""
    turns: list[dict[str, Any]] = [{"title": "before the first turn", "lines": []}]
    for line in lines:
        if line.startswith("── turn"):
            turns.append({"title": line.removeprefix("── ").strip(), "lines": []})
        else:
            turns[-1]["lines"].append({"text": line, "denied": "✗ denied" in line})
    return [turn for turn in turns if turn["lines"]]


def _candidate_files(forge: Forge, digest: str | None) -> dict[str, str] | None:
    if not digest:
        return None
    try:
        manifest = json.loads(forge.store.get(digest))
    except (KaviError, ValueError):
        return None
    return {path: _text(forge, sha, FILE_CHARS) for path, sha in sorted(manifest.get("files", {}).items())}


def _files_with_diffs(files: dict[str, str] | None, previous: dict[str, str] | None) -> list[dict[str, Any]]:
    """Each file with its unified diff against the previous attempt's candidate (None on the first)."""
    if files is None:
        return []
    shown = []
    for path, text in files.items():
        diff = None
        if previous is not None:
            before = previous.get(path, "")
            diff = list(
                difflib.unified_diff(
                    before.splitlines(),
                    text.splitlines(),
                    f"previous/{path}" if path in previous else "/dev/null",
                    f"this/{path}",
                    lineterm="",
                )
            )
        shown.append({"path": path, "text": text, "diff": diff, "changed": diff is None or bool(diff)})
    return shown


# --- live --------------------------------------------------------------------------------------------------


def live_events(forge: Forge, after: int = 0, limit: int = LIVE_SHOWN) -> list[dict[str, Any]]:
    """The newest ledger events a person follows (runs, builds, verifications, promotions), newest first,
    each with its proposal's name and a one-line summary. With ``after``, only those past that sequence (what
    the live page fetches when the stream says something happened)."""
    with forge.ledger.reading() as session:
        query = select(Event).where(col(Event.id) > after)
        rows = [
            row
            for row in session.exec(query.order_by(col(Event.id).desc()).limit(limit * 4)).all()
            if row.kind.startswith(LIVE_KINDS)
        ][:limit]
        ids = {row.proposal_id for row in rows if row.proposal_id}
        names = dict(session.exec(select(Proposal.id, Proposal.name).where(col(Proposal.id).in_(ids))).all())
    shown = []
    for event in rows:
        data = json.loads(event.payload)
        name = data.get("name") or names.get(event.proposal_id or "", "")
        shown.append(
            {
                "seq": event.id,
                "ts": event.ts,
                "kind": event.kind,
                "proposal_id": event.proposal_id,
                "name": name,
                "summary": describe_event(event.kind, data),
                "data": data,
            }
        )
    return shown


def describe_event(kind: str, data: dict[str, Any]) -> str:
    """One line a person reads: what the event changed, in the payload's own words."""
    parts: list[str] = []
    if data.get("version"):
        parts.append(f"v{data['version']}")
    if kind in ("run.finished", "run.blocked"):
        parts.append("ok" if data.get("ok") else f"error: {data.get('error')}")
        parts.append(f"isolation {data.get('isolation')}")
    if data.get("reason") and kind != "run.finished":
        parts.append(str(data["reason"]))
    if data.get("from") and data.get("to"):
        parts.append(f"{data['from']} → {data['to']}")
    elif data.get("status"):
        parts.append(str(data["status"]))
    if data.get("attempt"):
        parts.append(f"attempt {data['attempt']}")
    if data.get("kind") and kind == "research.noted":
        parts.append(str(data["kind"]))
    return " · ".join(parts)


def last_sequence(forge: Forge) -> int:
    from kavi.server.views import last_sequence as last

    return last(forge)


# --- kernels -----------------------------------------------------------------------------------------------


def kernels_page(forge: Forge) -> list[dict[str, Any]]:
    """Each kernel (newest proposal of each name) with its status and its speed gate's summary."""
    with forge.ledger.reading() as session:
        proposals = session.exec(
            select(Proposal).where(Proposal.kind == KERNEL_KIND).order_by(col(Proposal.created_at).desc())
        ).all()
    newest: dict[str, Proposal] = {}
    for proposal in proposals:
        newest.setdefault(proposal.name, proposal)
    shown = []
    for proposal in sorted(newest.values(), key=lambda p: p.name):
        detail = kernel_page(forge, proposal.id)
        shown.append(
            {
                "name": proposal.name,
                "proposal_id": proposal.id,
                "status": proposal.status,
                "speed": detail["speed"],
                "correctness": detail["correctness"],
            }
        )
    return shown


def kernel_page(forge: Forge, reference: str) -> dict[str, Any]:
    """A kernel's spec, its correctness per check size and dtype, and its speed per bench size (or why no
    machine measured it), from its newest verification."""
    shown = show(forge, reference)
    if shown["proposal"]["kind"] != KERNEL_KIND:
        raise NotFoundError(f"{reference!r} is not a kernel", hint="the Kernels page lists them")
    spec = KernelSpec.model_validate(shown["spec"])
    verification = shown["verifications"][-1] if shown["verifications"] else None
    gates = {gate["gate"]: gate for gate in verification["gates"]} if verification else {}
    correctness_gate = gates.get("kernel-correctness")
    speed_gate = gates.get("kernel-speed")
    correctness = kernel_reports.correctness_table(
        spec,
        None if correctness_gate is None else correctness_gate["status"],
        "" if correctness_gate is None else _text(forge, correctness_gate.get("report_sha256"), REPORT_CHARS),
        "" if correctness_gate is None else correctness_gate["summary"],
    )
    speed = kernel_reports.speed_result(
        spec,
        None if speed_gate is None else speed_gate["status"],
        "" if speed_gate is None else speed_gate["summary"],
        "" if speed_gate is None else _text(forge, speed_gate.get("report_sha256"), REPORT_CHARS),
    )
    return {
        "proposal": shown["proposal"],
        "spec": spec,
        "verification": verification,
        "correctness": correctness,
        "speed": speed,
        "versions": shown["versions"],
    }


# --- integrity ---------------------------------------------------------------------------------------------


def integrity_page(forge: Forge, *, full: bool = False) -> dict[str, Any]:
    """The audit (quick by default: chain head, counts, installed files and the lock; ``full`` recomputes
    every hash), the lock's state, and each TRUSTED version's attested digests. The statement itself is
    :func:`attestation_page` (building one reads the version's whole build trace: too slow for a list)."""
    from kavi.integrity.audit import audit_workspace
    from kavi.integrity.lockdata import LOCK_FILE

    workspace = forge.workspace
    audit = audit_workspace(workspace, quick=not full)
    # the audit compares kavi.lock with the ledger and the installed files already (`kavi verify-lock` would
    # do it again, and reading the lock's adoption event scans every event: twice is a third of the page)
    problems = [{"where": f.where, "message": f.message} for f in audit.findings if f.check == "lock"]
    lock = {"present": workspace.lock_path.is_file(), "file": LOCK_FILE, "ok": not problems, "problems": problems}
    with forge.ledger.reading() as session:
        trusted = session.exec(
            select(Promotion)
            .where(Promotion.status == "TRUSTED")
            .order_by(col(Promotion.name), col(Promotion.version).desc())
            .limit(ATTESTATIONS_SHOWN)
        ).all()
    attestations = [
        {
            "name": promotion.name,
            "version": promotion.version,
            "skill_sha256": promotion.skill_sha256,
            "test_sha256": promotion.test_sha256,
            "approver": promotion.approver,
        }
        for promotion in trusted
    ]
    return {"audit": audit, "lock": lock, "attestations": attestations}


def attestation_page(forge: Forge, name: str, version: int) -> dict[str, Any]:
    """The unsigned in-toto statement `kavi attest NAME` would sign, or why it is refused."""
    from kavi.integrity.attest import make_statement

    try:
        statement: dict[str, Any] | None = make_statement(forge.workspace, name, version)
        problem = None
    except KaviError as exc:
        statement, problem = None, exc.message
    return {"name": name, "version": version, "statement": statement, "problem": problem}
