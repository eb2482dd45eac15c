"""adopt: `kavi init` in a clone that holds kavi.lock but no ledger records the lock's TRUSTED versions.

A fresh clone has the committed lock and the installed files, not the ledger they came from. Starting an
empty ledger there would make the lock stop counting (nothing TRUSTED, every installed file unvouched), so
`kavi init` adopts it instead: every installed file must match the lock byte for byte, every frozen spec
its sha256 and every candidate manifest its ``candidate_sha256``; then each installed version is recorded
under its original proposal and promotion ids, version, approver and promotion time, with its bytes in
the artifact store. The new ledger says plainly that these versions were adopted, not verified here: the
build is ``adopted``, the verification ``ADOPTED``, and every event carries ``adopted: true``.

The lock itself is left as committed (``git status`` stays clean): the adoption event records the lock's
chain head, and the lock check accepts it until the next promotion rewrites the lock from this ledger.
Versions the lock lists as TRUSTED but not installed cannot be adopted (their bytes are not in the clone);
they are named in the adoption event and the result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, func, select

from kavi.errors import IntegrityError, WorkspaceError
from kavi.integrity.lockdata import LOCK_FILE, load_lock
from kavi.integrity.lockfile import EFFECT_PARAMS, check_lock_files
from kavi.kinds import kind_of
from kavi.ledger.ids import new_id, utc_now
from kavi.ledger.models import Build, Event, Promotion, Proposal, ProposalStatus, Verification, VersionStatus
from kavi.ledger.store import append_event
from kavi.spec import canonical_json
from kavi.stages.common import AnySpec, Forge, set_status
from kavi.workspace import Workspace

ADOPTED_BUILDER = "adopted"
ADOPTED_STATUS = "ADOPTED"
ADOPTED_ISOLATION = "adopted"


@dataclass(frozen=True)
class Adopted:
    """What `kavi init` took over from kavi.lock."""

    versions: list[dict[str, Any]] = field(default_factory=list)
    not_adopted: list[dict[str, Any]] = field(default_factory=list)


def adopt_lock(workspace: Workspace) -> Adopted:
    """Create the ledger from kavi.lock. Refuses (changing nothing) when any file disagrees with the lock."""
    lock = load_lock(workspace.root)
    problems = check_lock_files(workspace.root, lock)
    if problems:
        where, message = problems[0]
        raise IntegrityError(
            f"cannot adopt {LOCK_FILE}: {len(problems)} problem(s), first: {where}: {message}",
            hint="restore the files from git (`git status`, `git checkout -- skills kernels kavi.lock`), then "
            "`kavi init` again; `kavi verify-lock` lists every problem",
        )
    entries = [_checked_entry(workspace, entry) for entry in lock.get("skill", []) if entry["installed"]]
    skipped = [
        {"name": e["name"], "version": e["version"], "why": "TRUSTED but not installed: its bytes are not here"}
        for e in lock.get("skill", [])
        if not e["installed"]
    ]
    forge = Forge.open(workspace, adopting=True)
    try:
        with forge.ledger.transaction() as session:
            if session.exec(select(func.count()).select_from(Event)).one():
                raise WorkspaceError(
                    "the ledger already holds events; only a new ledger adopts kavi.lock",
                    hint="`kavi verify-lock` compares the lock with this ledger",
                )
            adopted = [_adopt_entry(forge, session, entry) for entry in entries]
            append_event(
                session,
                "lock.adopted",
                {
                    "lock_ledger_head": lock.get("ledger_head"),
                    "lock_ledger_events": lock.get("ledger_events"),
                    "versions": adopted,
                    "not_adopted": skipped,
                },
            )
    finally:
        forge.close()
    return Adopted(adopted, skipped)


@dataclass(frozen=True)
class _Entry:
    lock: dict[str, Any]
    spec: AnySpec
    spec_bytes: bytes
    files: dict[str, bytes]


def _checked_entry(workspace: Workspace, entry: dict[str, Any]) -> _Entry:
    """The entry's spec parsed as its kind and its candidate manifest recomputed from the installed bytes."""
    label = f"{LOCK_FILE} {entry['name']} v{entry['version']}"
    spec_bytes = entry["spec"].encode("utf-8")
    spec = _load_spec(entry["kind"], spec_bytes, label)
    declared = json.loads(spec_bytes)
    consistent = (
        spec.name == entry["name"]
        and spec.kind == entry["kind"]
        and str(spec.side_effect) == entry["side_effect"]
        and sorted(entry["files"]) == sorted(spec.allowed_paths)
        and all(list(declared.get(key, [])) == list(entry["side_effect_params"].get(key, [])) for key in EFFECT_PARAMS)
    )
    if not consistent:  # the lock's own fields must say what its frozen spec says: the spec is what runs
        raise IntegrityError(
            f"{label}: its name, kind, side effect, parameters or files differ from its frozen spec",
            hint="restore kavi.lock from git",
        )
    files = {relative: (workspace.root / relative).read_bytes() for relative in spec.allowed_paths}
    digests = {relative: hashlib.sha256(data).hexdigest() for relative, data in files.items()}
    if digests != entry["files"]:  # check_lock_files compared them already; the files may have moved since
        raise IntegrityError(f"{label}: the installed files changed while adopting", hint="run `kavi init` again")
    manifest = canonical_json({"kind": spec.kind, "name": spec.name, "files": dict(sorted(digests.items()))})
    if hashlib.sha256(manifest).hexdigest() != entry["candidate_sha256"]:
        raise IntegrityError(
            f"{label}: the installed files are not the candidate {str(entry['candidate_sha256'])[:12]} it names",
            hint="restore them from git",
        )
    return _Entry(entry, spec, spec_bytes, files)


def _load_spec(kind: str, data: bytes, label: str) -> AnySpec:
    from kavi.errors import KaviError

    try:
        spec: AnySpec = kind_of(kind).load(data)
        return spec
    except (KaviError, ValueError) as exc:
        raise IntegrityError(f"{label}: the frozen spec does not load: {exc}", hint="restore it from git") from None


def _adopt_entry(forge: Forge, session: Session, entry: _Entry) -> dict[str, Any]:
    """One installed version: its artifacts and rows under the lock's ids, each written by its own event."""
    lock, spec = entry.lock, entry.spec
    spec_sha = forge.put_artifact(session, entry.spec_bytes, "SPEC")
    digests = {relative: forge.put_artifact(session, data, "SOURCE") for relative, data in entry.files.items()}
    manifest = {"kind": spec.kind, "name": spec.name, "files": dict(sorted(digests.items()))}
    candidate = forge.put_artifact(session, canonical_json(manifest), "CANDIDATE")
    now = utc_now()
    proposal = Proposal(
        id=lock["proposal_id"],
        name=spec.name,
        kind=lock["kind"],
        description=spec.description,
        side_effect=str(spec.side_effect),
        spec_sha256=spec_sha,
        status=ProposalStatus.PROPOSED,
        created_at=now,
        updated_at=now,
    )
    session.add(proposal)
    session.flush()
    origin = {"adopted": True, "from": LOCK_FILE}
    append_event(
        session,
        "proposal.proposed",
        {
            "name": spec.name,
            "spec_sha256": spec_sha,
            "side_effect": proposal.side_effect,
            "kind": lock["kind"],
            **origin,
        },
        proposal_id=proposal.id,
    )
    build = Build(
        id=new_id("b"),
        proposal_id=proposal.id,
        attempt=1,
        builder=ADOPTED_BUILDER,
        status="SUCCEEDED",
        candidate_sha256=candidate,
        created_at=now,
        finished_at=now,
        duration_s=0.0,
    )
    session.add(build)
    session.flush()
    append_event(
        session,
        "build.started",
        {"attempt": 1, "builder": ADOPTED_BUILDER, **origin},
        proposal_id=proposal.id,
        build_id=build.id,
    )
    append_event(
        session,
        "build.finished",
        {"attempt": 1, "status": "SUCCEEDED", "candidate_sha256": candidate, "files": manifest["files"], **origin},
        proposal_id=proposal.id,
        build_id=build.id,
    )
    verification = Verification(
        id=new_id("v"),
        proposal_id=proposal.id,
        build_id=build.id,
        candidate_sha256=candidate,
        status=ADOPTED_STATUS,
        isolation=ADOPTED_ISOLATION,
        duration_s=0.0,
        created_at=now,
    )
    session.add(verification)
    session.flush()
    append_event(
        session,
        "verification.finished",
        {
            "verification_id": verification.id,
            "status": ADOPTED_STATUS,
            "candidate_sha256": candidate,
            "isolation": ADOPTED_ISOLATION,
            "gates": {},
            **origin,
        },
        proposal_id=proposal.id,
        build_id=build.id,
    )
    main_path, test_path = spec.allowed_paths
    # The lock does not carry the unmeasured flag yet; nothing measured a kernel's speed here, so say so.
    unmeasured = bool(lock.get("unmeasured", kind_of(spec.kind).has_unmeasurable_gates))
    promotion = Promotion(
        id=lock["promotion_id"],
        proposal_id=proposal.id,
        build_id=build.id,
        verification_id=verification.id,
        name=spec.name,
        version=int(lock["version"]),
        candidate_sha256=candidate,
        skill_sha256=digests[main_path],
        test_sha256=digests[test_path],
        spec_sha256=spec_sha,
        side_effect=proposal.side_effect,
        approver=str(lock["approver"]),
        unmeasured=unmeasured,
        status=VersionStatus.TRUSTED,
        promoted_at=str(lock["promoted_at"]),
    )
    session.add(promotion)
    session.flush()
    append_event(
        session,
        "promotion.trusted",
        {
            "promotion_id": promotion.id,
            "name": promotion.name,
            "version": promotion.version,
            "approver": promotion.approver,
            "unmeasured": unmeasured,
            "candidate_sha256": candidate,
            "skill_sha256": promotion.skill_sha256,
            "verification_id": verification.id,
            "promoted_at": promotion.promoted_at,
            **origin,
        },
        proposal_id=proposal.id,
        build_id=build.id,
    )
    set_status(
        session,
        proposal,
        ProposalStatus.TRUSTED,
        promotion_id=promotion.id,
        version=promotion.version,
        adopted_chain_head=lock["chain_head"],
    )
    return {
        "name": promotion.name,
        "version": promotion.version,
        "kind": lock["kind"],
        "approver": promotion.approver,
        "promotion_id": promotion.id,
        "skill_sha256": promotion.skill_sha256,
    }


def describe(adopted: Adopted) -> str:
    """One line for `kavi init`."""
    names = ", ".join(f"{v['name']} v{v['version']}" for v in adopted.versions) or "nothing"
    return f"adopted {len(adopted.versions)} TRUSTED version(s) from {LOCK_FILE}: {names}" + (
        f"; {len(adopted.not_adopted)} not installed here" if adopted.not_adopted else ""
    )
