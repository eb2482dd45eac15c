"""What differs between the ledger's database engines, in one table: a new engine is a new row here.

SQLite is one person's ledger on one machine: ``BEGIN IMMEDIATE`` serialises writers and the workspace's artifact
folder is the store. PostgreSQL is a team's ledger shared by machines that share nothing else: a
transaction-scoped advisory lock serialises writers (the chain head cannot move under an append), the
database keeps every artifact's bytes, and the job queue lives in the same database.
"""

from __future__ import annotations

from dataclasses import dataclass

# Any fixed number works; all kavi writers take the same one. "kavi" in ASCII.
WRITE_LOCK_KEY = 0x6B617669


@dataclass(frozen=True)
class Backend:
    dialect: str  # SQLAlchemy's dialect name
    # A statement that each write transaction runs first, so writers queue instead of racing for the chain head
    # (None: the engine serialises writers by itself).
    write_lock_sql: str | None
    # The database holds each artifact's bytes: a machine with no shared folder fetches them by hash.
    keeps_artifact_bytes: bool
    # Jobs (`--queue`, `kavi worker`) can be queued in it, committing in the ledger's own transactions.
    hosts_queue: bool


BACKENDS: dict[str, Backend] = {
    backend.dialect: backend
    for backend in (
        Backend("sqlite", write_lock_sql=None, keeps_artifact_bytes=False, hosts_queue=False),
        Backend(
            "postgresql",
            write_lock_sql=f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})",
            keeps_artifact_bytes=True,
            hosts_queue=True,
        ),
    )
}


def backend_named(dialect: str) -> Backend:
    """The row for a dialect; an engine with no row is refused rather than guessed at (how it serialises
    writers decides whether the hash chain holds)."""
    from kavi.errors import LedgerError

    try:
        return BACKENDS[dialect]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise LedgerError(f"kavi cannot keep a ledger in {dialect}", hint=f"use one of: {known}") from None
