"""What every stage shares: the opened workspace, ledger and artifact store, and lookups by id or name."""

from __future__ import annotations

import getpass
import os
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from kavi.artifacts import ArtifactStore
from kavi.errors import IntegrityError, NotFoundError, TransitionError, UsageError, WorkspaceError
from kavi.kinds import FrozenSpec, load_any_spec
from kavi.ledger.ids import utc_now
from kavi.ledger.models import Build, Promotion, Proposal, ProposalStatus, VersionStatus
from kavi.ledger.store import Ledger, append_event, record_artifact
from kavi.workspace import Workspace, find_workspace

# A frozen spec of any kind (kavi.kinds): what the stages pass around.
AnySpec = FrozenSpec


@dataclass
class Forge:
    """An opened workspace: the handle every stage function takes first."""

    workspace: Workspace
    ledger: Ledger
    store: ArtifactStore

    @classmethod
    def open(cls, workspace: Workspace | Path | str | None = None, *, adopting: bool = False) -> Forge:
        """Open (creating the ledger if needed). A clone holding kavi.lock but no ledger is refused unless
        ``adopting``: a fresh empty ledger would silently stop the lock from counting."""
        ws = workspace if isinstance(workspace, Workspace) else find_workspace(workspace)
        if ws.runs_from_lock() and not adopting:
            raise WorkspaceError(
                f"this workspace has {ws.lock_path.name} but no ledger yet, so it only runs what the lock vouches"
                " for",
                hint="run `kavi init` first: it adopts the lock's TRUSTED versions into a new ledger",
            )
        ws.state_dir.mkdir(parents=True, exist_ok=True)
        return cls(ws, Ledger.open(ws.ledger_url), ArtifactStore(ws.artifacts_dir))

    @classmethod
    def open_existing(cls, workspace: Workspace) -> Forge:
        """Open a ledger that exists (read-only commands): never creates one."""
        return cls(workspace, Ledger.open(workspace.ledger_url, create=False), ArtifactStore(workspace.artifacts_dir))

    @classmethod
    @contextmanager
    def opened(cls, workspace: Workspace | Path | str | None = None) -> Iterator[Forge]:
        forge = cls.open(workspace)
        try:
            yield forge
        finally:
            forge.close()

    def close(self) -> None:
        self.ledger.close()

    def put_artifact(self, session: Session, data: bytes, kind: str) -> str:
        """Store bytes and record them in the ledger in the caller's transaction."""
        digest = self.store.put(data)
        record_artifact(session, digest, kind, len(data))
        return digest

    def spec_of(self, proposal: Proposal) -> AnySpec:
        """The frozen spec, read back hash-checked into its kind's model (the kind the spec itself names)."""
        spec = load_any_spec(self.store.get(proposal.spec_sha256))
        if spec.kind != proposal.kind:
            raise IntegrityError(
                f"{proposal.name}'s frozen spec is a {spec.kind} spec but the proposal says {proposal.kind}",
                hint="run `kavi audit`",
            )
        return spec


MIN_PREFIX = 4  # "p_" or "b_" and two characters of the id: shorter matches too much to mean anything


def get_proposal(session: Session, reference: str) -> Proposal:
    """A proposal by full id, unique id prefix, or skill name (the newest proposal of that name)."""
    reference = reference.strip()
    if not reference:
        raise UsageError("a proposal id is required")
    found = session.get(Proposal, reference)
    if found:
        return found
    if reference.startswith("p_") and len(reference) >= MIN_PREFIX:
        matches = list(session.exec(select(Proposal).where(col(Proposal.id).startswith(reference)).limit(2)))
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(f"{reference!r} is ambiguous: it matches several proposals; give more of the id")
    by_name = session.exec(
        select(Proposal).where(Proposal.name == reference).order_by(col(Proposal.created_at).desc()).limit(1)
    ).first()
    if by_name:
        return by_name
    if reference.startswith("p_") and len(reference) < MIN_PREFIX:
        raise UsageError(
            f"{reference!r} is too short to name a proposal: give at least {MIN_PREFIX} characters of its id"
        )
    raise NotFoundError(f"no proposal {reference!r}", hint="`kavi status` lists proposals")


def get_build(session: Session, reference: str) -> Build:
    """A build by full id or unique id prefix (at least :data:`MIN_PREFIX` characters)."""
    reference = reference.strip()
    if not reference:
        raise UsageError("a build id is required")
    found = session.get(Build, reference)
    if found:
        return found
    if len(reference) < MIN_PREFIX:
        raise UsageError(f"{reference!r} is too short to name a build: give at least {MIN_PREFIX} characters of its id")
    matches = list(session.exec(select(Build).where(col(Build.id).startswith(reference)).limit(2)))
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"{reference!r} is ambiguous: it matches several builds; give more of the id")
    raise NotFoundError(f"no build {reference!r}", hint="`kavi show <proposal>` lists its builds")


def latest_build(session: Session, proposal_id: str) -> Build | None:
    return session.exec(
        select(Build).where(Build.proposal_id == proposal_id).order_by(col(Build.attempt).desc()).limit(1)
    ).first()


def trusted_versions(session: Session, name: str) -> list[Promotion]:
    return list(
        session.exec(
            select(Promotion)
            .where(Promotion.name == name, Promotion.status == VersionStatus.TRUSTED)
            .order_by(col(Promotion.version).desc())
        )
    )


def require_status(proposal: Proposal, allowed: Iterable[ProposalStatus], action: str, fix: str) -> None:
    allowed = tuple(allowed)
    if proposal.status not in allowed:
        if proposal.status == ProposalStatus.REJECTED:  # final: no command of its pipeline applies any more
            fix = "a rejected proposal is final; propose the skill again with `kavi propose-skill`"
        raise TransitionError(f"cannot {action} {proposal.name} ({proposal.id}): it is {proposal.status}", hint=fix)


def set_status(session: Session, proposal: Proposal, status: ProposalStatus, **payload: Any) -> None:
    """Move a proposal to ``status`` and append the event that says so, in the caller's transaction."""
    previous = proposal.status
    proposal.status = status
    proposal.updated_at = utc_now()
    session.add(proposal)
    append_event(
        session,
        f"proposal.{status.lower()}",
        {"from": previous, "to": status, **payload},
        proposal_id=proposal.id,
    )


def default_approver() -> str:
    """git's user.name, else the OS user."""
    try:
        completed = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5, check=False
        )
        if completed.returncode == 0 and completed.stdout.strip():
            return completed.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")
