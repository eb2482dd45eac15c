"""Artifact bytes kept in the ledger's database (``artifact_blobs``, by sha256): the store a ledger names when
its machines share no folder. Written in the same transaction as the ``artifacts`` row that vouches for them;
read back by hash and checked by the caller (:class:`kavi.artifacts.ArtifactStore`)."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlmodel import Session


def put_blob(session: Session, sha256: str, data: bytes) -> None:
    """Keep ``data`` under its hash (idempotent: the same hash is the same bytes)."""
    session.execute(
        text("INSERT INTO artifact_blobs (sha256, data) VALUES (:sha, :data) ON CONFLICT (sha256) DO NOTHING"),
        {"sha": sha256, "data": data},
    )


def fetch_blob(engine: Engine, sha256: str) -> bytes | None:
    """The bytes kept under ``sha256``, or None when the database holds none."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT data FROM artifact_blobs WHERE sha256 = :sha"), {"sha": sha256}).first()
    return None if row is None else bytes(row[0])
