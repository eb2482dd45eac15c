"""promote, revoke and reject: the transitions that change what is TRUSTED.

The ledger commits first, then ``skills/`` is brought in line with it (:mod:`kavi.stages.install`). A crash in
between leaves the old TRUSTED bytes installed, which `run-skill` refuses because the hash is no longer the
latest TRUSTED one, and re-running the command completes the installation. ``skills/`` therefore never holds
a byte the ledger does not vouch for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, col, func, select

from kavi.builders.base import BuildStatus
from kavi.crash import crashpoint
from kavi.errors import TransitionError
from kavi.kinds import unmeasurable_gates
from kavi.ledger.ids import new_id, utc_now
from kavi.ledger.models import GateRecord, Promotion, Proposal, ProposalStatus, Verification, VersionStatus
from kavi.ledger.store import append_event
from kavi.stages.common import (
    Forge,
    default_approver,
    get_proposal,
    latest_build,
    require_status,
    set_status,
    trusted_versions,
)
from kavi.stages.install import settle
from kavi.stages.verify import PASSED


@dataclass(frozen=True)
class Promoted:
    promotion_id: str
    proposal_id: str
    name: str
    version: int
    candidate_sha256: str
    skill_sha256: str
    approver: str
    installed: list[str]
    completed_earlier_promotion: bool = False
    already_trusted: bool = False
    reinstated: tuple[str, ...] = ()


@dataclass(frozen=True)
class Revoked:
    name: str
    version: int
    promotion_id: str
    installed_version: int | None
    revoked_by: str = ""
    revoked_at: str = ""
    reason: str | None = None


@dataclass(frozen=True)
class Rejected:
    proposal_id: str
    name: str
    status: str


def promote_skill(
    forge: Forge,
    reference: str,
    *,
    approver: str | None = None,
    allow_unmeasured: bool = False,
    reinstate: bool = False,
    reason: str | None = None,
) -> Promoted:
    """Make the verified candidate TRUSTED. Bytes that were revoked need a verification newer than their
    revocation, or ``reinstate`` (recorded in the event), before they are TRUSTED again. ``reason``, the
    approver's words on why, is recorded in the event."""
    reason = reason.strip() if reason else None
    approver = (approver or default_approver()).strip()
    if not approver:
        raise TransitionError("the approver name is empty", hint="pass --approver NAME")
    completed = settle(forge)  # completes an earlier command killed between its commit and its install
    with forge.ledger.transaction() as session:
        proposal = get_proposal(session, reference)
        build = latest_build(session, proposal.id)
        existing = _already_promoted(session, proposal, build.candidate_sha256 if build else None)
        if existing is not None:
            interrupted = bool(set(completed) & set(forge.spec_of(proposal).allowed_paths))
            promoted = _promoted(existing, installed=[], completed=interrupted)
            promoted = Promoted(**{**promoted.__dict__, "already_trusted": not interrupted})
        else:
            require_status(proposal, (ProposalStatus.VERIFIED,), "promote", "verify it with `kavi verify-skill`")
            if build is None or build.status != BuildStatus.SUCCEEDED or build.candidate_sha256 is None:
                raise TransitionError(f"{proposal.name} has no successful build", hint="run `kavi build-skill`")
            verification = session.exec(
                select(Verification)
                .where(Verification.proposal_id == proposal.id, Verification.build_id == build.id)
                .order_by(col(Verification.created_at).desc())
                .limit(1)
            ).first()
            if (
                verification is None
                or verification.status != PASSED
                or verification.candidate_sha256 != build.candidate_sha256
            ):
                raise TransitionError(
                    f"the latest verification of {proposal.name}'s candidate did not pass every gate",
                    hint="fix and rebuild, then `kavi verify-skill`",
                )
            manifest = json.loads(forge.store.get(build.candidate_sha256))
            spec = forge.spec_of(proposal)
            roots = _resolved_roots(forge.workspace.root, spec)
            main_path, test_path = spec.allowed_paths
            reinstated = _revoked_bytes(session, proposal.name, manifest["files"][main_path], verification, reinstate)
            unmeasured = _unmeasured(session, verification.id, allow_unmeasured)
            checked_on = _correctness_device(session, verification.id)
            version = (
                session.exec(select(func.max(Promotion.version)).where(Promotion.name == proposal.name)).one() or 0
            ) + 1
            promotion = Promotion(
                id=new_id("t"),
                proposal_id=proposal.id,
                build_id=build.id,
                verification_id=verification.id,
                name=proposal.name,
                version=version,
                candidate_sha256=build.candidate_sha256,
                skill_sha256=manifest["files"][main_path],
                test_sha256=manifest["files"][test_path],
                spec_sha256=proposal.spec_sha256,
                side_effect=proposal.side_effect,
                approver=approver,
                unmeasured=unmeasured,
                correctness_device=checked_on,
                status=VersionStatus.TRUSTED,
                promoted_at=utc_now(),
            )
            session.add(promotion)
            session.flush()
            append_event(
                session,
                "promotion.trusted",
                {
                    "promotion_id": promotion.id,
                    "name": promotion.name,
                    "version": version,
                    "approver": approver,
                    "unmeasured": unmeasured,
                    **({"correctness_device": checked_on} if checked_on else {}),
                    "candidate_sha256": promotion.candidate_sha256,
                    "skill_sha256": promotion.skill_sha256,
                    "verification_id": verification.id,
                    **({"reinstates": list(reinstated)} if reinstated else {}),
                    **({"reason": reason} if reason else {}),
                    **roots,
                },
                proposal_id=proposal.id,
                build_id=build.id,
            )
            set_status(session, proposal, ProposalStatus.TRUSTED, promotion_id=promotion.id, version=version)
            promoted = _promoted(promotion, installed=[], completed=False)
            promoted = Promoted(**{**promoted.__dict__, "reinstated": reinstated})
            crashpoint("promote.commit")
    crashpoint("promote.committed")
    installed = settle(forge, [promoted.name])
    return Promoted(**{**promoted.__dict__, "installed": installed})


def _revoked_bytes(
    session: Session, name: str, skill_sha256: str, verification: Verification, reinstate: bool
) -> tuple[str, ...]:
    """The revoked versions of these exact bytes. Trusting them again takes a verification made after the
    revocation, or an explicit reinstatement; returns the promotion ids a reinstatement re-trusts."""
    revoked = session.exec(
        select(Promotion).where(
            Promotion.name == name,
            Promotion.status == VersionStatus.REVOKED,
            Promotion.skill_sha256 == skill_sha256,
        )
    ).all()
    stale = [r for r in revoked if (r.revoked_at or "") >= verification.created_at]
    if not stale:
        return ()
    if not reinstate:
        first = stale[0]
        why = f": {first.revoked_reason}" if first.revoked_reason else ""
        raise TransitionError(
            f"these bytes are {name} v{first.version}, revoked by {first.revoked_by} at {first.revoked_at}{why}; "
            f"the verification {verification.id} predates the revocation",
            hint=f"verify again with `kavi verify-skill {verification.proposal_id}`, or pass --reinstate to "
            "re-trust the revoked bytes on purpose (the ledger records it)",
        )
    return tuple(r.id for r in stale)


def _resolved_roots(root: Path, spec: object) -> dict[str, list[str]]:
    """The spec's roots as absolute, symlink-free folders, recorded with the promotion; a root that goes
    through a symbolic link now is refused here, as every run refuses it."""
    from kavi.runtime.audit import checked_root

    resolved = {}
    for field, what in (("write_roots", "write root"), ("read_roots", "read root")):
        entries = getattr(spec, field, ())
        if entries:
            resolved[field] = [str(checked_root(root, entry, what)) for entry in entries]
    return resolved


def _correctness_device(session: Session, verification_id: str) -> str | None:
    """Where the kernel-correctness gate of this verification ran (None when it has none)."""
    from kavi.gates.kernel import KernelCorrectnessGate, correctness_device

    record = session.exec(
        select(GateRecord).where(
            GateRecord.verification_id == verification_id, GateRecord.gate == KernelCorrectnessGate.name
        )
    ).first()
    return None if record is None else correctness_device(record.summary, record.status)


def _unmeasured(session: Session, verification_id: str, allow_unmeasured: bool) -> bool:
    """A candidate with a skipped gate that may be unmeasured (a kernel's speed without a GPU): promotable
    only when accepted."""
    speed = session.exec(
        select(GateRecord).where(
            GateRecord.verification_id == verification_id,
            col(GateRecord.gate).in_(sorted(unmeasurable_gates())),
            GateRecord.status == "skipped",
        )
    ).first()
    if speed is None or speed.status != "skipped":
        return False
    if not allow_unmeasured:
        raise TransitionError(
            f"the kernel's speed is unmeasured ({speed.summary})",
            hint="promote with --allow-unmeasured to accept a kernel whose speedup was never measured",
        )
    return True


def _already_promoted(session: Session, proposal: Proposal, candidate: str | None) -> Promotion | None:
    """The TRUSTED version holding this exact candidate, when a promotion of it was already committed."""
    if candidate is None or proposal.status != ProposalStatus.TRUSTED:
        return None
    return session.exec(
        select(Promotion).where(
            Promotion.proposal_id == proposal.id,
            Promotion.candidate_sha256 == candidate,
            Promotion.status == VersionStatus.TRUSTED,
        )
    ).first()


def _promoted(promotion: Promotion, *, installed: list[str], completed: bool) -> Promoted:
    return Promoted(
        promotion_id=promotion.id,
        proposal_id=promotion.proposal_id,
        name=promotion.name,
        version=promotion.version,
        candidate_sha256=promotion.candidate_sha256,
        skill_sha256=promotion.skill_sha256,
        approver=promotion.approver,
        installed=installed,
        completed_earlier_promotion=completed,
    )


def revoke_skill(
    forge: Forge, name: str, *, version: int | None = None, by: str | None = None, reason: str | None = None
) -> Revoked:
    """Make one TRUSTED version unrunnable (the latest when ``version`` is None), recording who, when and
    why."""
    settle(forge)
    with forge.ledger.transaction() as session:
        versions = trusted_versions(session, name)
        if version is None:
            if not versions:
                raise TransitionError(f"{name} has no TRUSTED version to revoke", hint="`kavi list-skills`")
            target = versions[0]
        else:
            matches = [v for v in versions if v.version == version]
            if not matches:
                raise TransitionError(f"{name} v{version} is not a TRUSTED version", hint="`kavi list-skills --all`")
            target = matches[0]
        target.status = VersionStatus.REVOKED
        target.revoked_at = utc_now()
        target.revoked_by = (by or default_approver()).strip() or "unknown"
        target.revoked_reason = (reason or "").strip() or None
        session.add(target)
        append_event(
            session,
            "promotion.revoked",
            {
                "promotion_id": target.id,
                "name": name,
                "version": target.version,
                "by": target.revoked_by,
                "at": target.revoked_at,
                "reason": target.revoked_reason,
            },
            proposal_id=target.proposal_id,
        )
        remaining = [v for v in versions if v.id != target.id]
        if not any(v.proposal_id == target.proposal_id for v in remaining):
            proposal = session.get(Proposal, target.proposal_id)
            if proposal is not None and proposal.status == ProposalStatus.TRUSTED:
                set_status(session, proposal, ProposalStatus.VERIFIED, revoked_version=target.version)
        result = Revoked(
            name,
            target.version,
            target.id,
            remaining[0].version if remaining else None,
            target.revoked_by,
            target.revoked_at,
            target.revoked_reason,
        )
        crashpoint("revoke.commit")
    crashpoint("revoke.committed")
    settle(forge, [name])
    return result


def reject_proposal(forge: Forge, reference: str, *, reason: str | None = None) -> Rejected:
    """End a proposal. One with TRUSTED versions must have them revoked first."""
    settle(forge)
    with forge.ledger.transaction() as session:
        proposal = get_proposal(session, reference)
        if proposal.status == ProposalStatus.REJECTED:
            raise TransitionError(f"{proposal.name} ({proposal.id}) is already rejected")
        live = [v for v in trusted_versions(session, proposal.name) if v.proposal_id == proposal.id]
        if live:
            raise TransitionError(
                f"{proposal.name} has TRUSTED version(s) {', '.join(f'v{v.version}' for v in live)}",
                hint=f"revoke them first with `kavi revoke {proposal.name} --version N`",
            )
        build = latest_build(session, proposal.id)
        sandbox = build.sandbox if build and build.status == BuildStatus.AWAITING_INPUT else None
        set_status(session, proposal, ProposalStatus.REJECTED, reason=reason or "")
        result = Rejected(proposal.id, proposal.name, proposal.status)
    settle(forge, [])
    if sandbox:
        from kavi.sandbox.copy import remove_sandbox

        remove_sandbox(Path(sandbox))
    return result
