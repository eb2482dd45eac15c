"""What differs between the ledger's database engines, in one table: a new engine is a new row here.

SQLite is one person's ledger on one machine: the workspace's artifact folder is the store. PostgreSQL is a
team's ledger shared by machines that share nothing else: the database keeps every artifact's bytes, and the
job queue lives in the same database. How each serialises writers (``BEGIN IMMEDIATE``, a transaction-scoped
advisory lock) is the connection layer's business: :mod:`kavi.ledger.connection`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    dialect: str  # SQLAlchemy's dialect name
    # The database holds each artifact's bytes: a machine with no shared folder fetches them by hash.
    keeps_artifact_bytes: bool
    # Jobs (`--queue`, `kavi worker`) can be queued in it, committing in the ledger's own transactions.
    hosts_queue: bool


BACKENDS: dict[str, Backend] = {
    backend.dialect: backend
    for backend in (
        Backend("sqlite", keeps_artifact_bytes=False, hosts_queue=False),
        Backend("postgresql", keeps_artifact_bytes=True, hosts_queue=True),
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
