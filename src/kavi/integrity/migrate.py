"""`kavi ledger migrate --to URL`: copy the workspace's SQLite ledger into an empty database, then audit the
copy against the same workspace (artifact store, installed files, kavi.lock) before anyone points kavi.toml
at it. The copy itself is :func:`kavi.ledger.copy.copy_ledger`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kavi.integrity.audit import AuditReport, audit_workspace
from kavi.ledger.copy import LedgerCopy, copy_ledger
from kavi.workspace import Workspace


@dataclass
class LedgerMigration:
    copy: LedgerCopy
    audit: AuditReport

    @property
    def ok(self) -> bool:
        return self.audit.ok

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.copy.to_json(), "audit": self.audit.to_json()}


def migrate_ledger(workspace: Workspace, target_url: str) -> LedgerMigration:
    """Copy the ledger to ``target_url`` and audit the copy in full. Where the target keeps artifacts' bytes
    in its database (Postgres: machines that share no folder fetch them by hash), every artifact the ledger
    names is copied there too, from this workspace's store, each checked against its hash on the way."""
    copied = copy_ledger(workspace.ledger_url, target_url)
    _copy_artifact_bytes(workspace, target_url)
    return LedgerMigration(copied, audit_workspace(workspace.with_ledger(target_url)))


def _copy_artifact_bytes(workspace: Workspace, target_url: str) -> None:
    from sqlmodel import select

    from kavi.artifacts import ArtifactStore
    from kavi.errors import KaviError
    from kavi.ledger.blobs import put_blob
    from kavi.ledger.models import Artifact
    from kavi.ledger.store import Ledger

    target = Ledger.open(target_url)
    try:
        if not target.backend.keeps_artifact_bytes:
            return
        store = ArtifactStore(workspace.artifacts_dir)
        with target.transaction() as session:
            for digest in session.exec(select(Artifact.sha256)).all():
                try:
                    data = store.get(digest)  # hash-checked
                except KaviError:
                    continue  # a missing or damaged artifact: the audit of the copy names it
                put_blob(session, digest, data)
    finally:
        target.close()
