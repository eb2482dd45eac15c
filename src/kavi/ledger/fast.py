"""Stdlib-only access to a SQLite ledger, for the hot `run-skill` path.

SQLModel and SQLAlchemy take over half a second to import on these machines, more than the whole budget of
`kavi run-skill`; these few statements read the TRUSTED version and append the execution and its event with
the same schema, the same hash chain and the same locking (``BEGIN IMMEDIATE``) as :mod:`kavi.ledger.store`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from kavi.errors import LedgerError, NotFoundError, TransitionError
from kavi.ledger.chain import GENESIS, canonical_payload, event_hash
from kavi.ledger.ids import new_id, utc_now

__all__ = [
    "append_event",
    "connect",
    "layers_text",
    "new_id",
    "root_of",
    "trusted_version",
    "utc_now",
    "write",
]

BUSY_TIMEOUT_S = 30.0


def layers_text(layers: tuple[str, ...] | list[str]) -> str:
    """How the ledger stores a list of isolation layers (``layers`` columns): comma-separated, in the
    executor's table order; the same text in every table and on both write paths."""
    return ",".join(layers)


def connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise LedgerError(f"no ledger at {path}: nothing has been promoted here", hint="run `kavi status`")
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    # As kavi.ledger.store sets it for every other write: in WAL mode a commit is atomic and survives a crash
    # of the process (kill -9); only a power loss may roll back the last commits. FULL would fsync every run's
    # record (15-25 ms on a busy disk, more than a warm run costs).
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def trusted_version(conn: sqlite3.Connection, name: str, version: int | None) -> tuple[sqlite3.Row, bool]:
    """The TRUSTED promotion to run, and whether it is the latest TRUSTED one (the one in skills/)."""
    rows = conn.execute(
        "SELECT * FROM promotions WHERE name = ? AND status = 'TRUSTED' ORDER BY version DESC", (name,)
    ).fetchall()
    if not rows:
        known = conn.execute("SELECT status FROM proposals WHERE name = ? ORDER BY created_at DESC", (name,)).fetchone()
        if known is None:
            raise NotFoundError(f"no skill named {name!r}", hint="`kavi list-skills` shows what can run")
        raise TransitionError(
            f"{name} has no TRUSTED version (its proposal is {known['status']}); untrusted code never runs",
            hint="verify and promote it first",
        )
    if version is None:
        return rows[0], True
    for row in rows:
        if row["version"] == version:
            return row, row["version"] == rows[0]["version"]
    revoked = conn.execute("SELECT status FROM promotions WHERE name = ? AND version = ?", (name, version)).fetchone()
    if revoked is not None:
        raise TransitionError(f"{name} v{version} is {revoked['status']} and cannot run")
    raise NotFoundError(f"{name} has no version {version}", hint="`kavi list-skills --all`")


def root_of(conn: sqlite3.Connection, parent_id: str) -> str:
    """The root of the tree that ``parent_id`` (an execution node or a skill run) belongs to."""
    row = conn.execute("SELECT root_id FROM execution_nodes WHERE id = ?", (parent_id,)).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT COALESCE(root_id, id) AS root_id FROM executions WHERE id = ?", (parent_id,)
        ).fetchone()
    if row is None:
        raise NotFoundError(f"no execution {parent_id!r} to run under", hint="`kavi executions` lists them")
    return str(row["root_id"])


def append_event(
    conn: sqlite3.Connection,
    kind: str,
    payload: dict[str, Any],
    *,
    proposal_id: str | None = None,
    build_id: str | None = None,
) -> None:
    """Append one chained event; the caller holds ``BEGIN IMMEDIATE``."""
    last = conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    prev_hash, next_id = (last["hash"], last["id"] + 1) if last else (GENESIS, 1)
    ts, body = utc_now(), canonical_payload(payload)
    digest = event_hash(
        prev_hash=prev_hash,
        event_id=next_id,
        ts=ts,
        kind=kind,
        proposal_id=proposal_id,
        build_id=build_id,
        payload=body,
    )
    conn.execute(
        "INSERT INTO events (id, ts, kind, proposal_id, build_id, payload, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (next_id, ts, kind, proposal_id, build_id, body, prev_hash, digest),
    )


def write(
    conn: sqlite3.Connection, statements: list[tuple[str, tuple[Any, ...]]], events: list[dict[str, Any]]
) -> None:
    """Run ``statements`` and append ``events`` in one immediate transaction."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        for sql, params in statements:
            conn.execute(sql, params)
        for event in events:
            append_event(conn, event["kind"], event["payload"], proposal_id=event.get("proposal_id"))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise LedgerError(f"the ledger refused the write: {exc}") from None
