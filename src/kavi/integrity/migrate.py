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
    """Copy the ledger to ``target_url`` and audit the copy in full."""
    copied = copy_ledger(workspace.ledger_url, target_url)
    return LedgerMigration(copied, audit_workspace(workspace.with_ledger(target_url)))
