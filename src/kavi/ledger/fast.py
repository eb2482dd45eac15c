"""ORM-free access to the ledger, for the hot `run-skill` path (SQLite or Postgres).

SQLModel and SQLAlchemy take over half a second to import on these machines, more than the whole budget of
`kavi run-skill`; these few functions read the TRUSTED version and append the execution and its event with
the same schema, the same hash chain and the same write serialisation as :mod:`kavi.ledger.store`, through
:mod:`kavi.ledger.connection` and the named statements of :mod:`kavi.ledger.queries`.
"""

from __future__ import annotations

from typing import Any

from kavi.errors import NotFoundError, TransitionError
from kavi.ledger import queries
from kavi.ledger.chain import GENESIS, canonical_payload, event_hash
from kavi.ledger.connection import LedgerConnection, connect
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


def layers_text(layers: tuple[str, ...] | list[str]) -> str:
    """How the ledger stores a list of isolation layers (``layers`` columns): comma-separated, in the
    executor's table order; the same text in every table and on both write paths."""
    return ",".join(layers)


def trusted_version(conn: LedgerConnection, name: str, version: int | None) -> tuple[dict[str, Any], bool]:
    """The TRUSTED promotion to run, and whether it is the latest TRUSTED one (the one in skills/)."""
    rows = conn.mappings(queries.TRUSTED_PROMOTIONS_OF, (name,))
    if not rows:
        known = conn.scalar(queries.NEWEST_PROPOSAL_STATUS_OF, (name,))
        if known is None:
            raise NotFoundError(f"no skill named {name!r}", hint="`kavi list-skills` shows what can run")
        raise TransitionError(
            f"{name} has no TRUSTED version (its proposal is {known}); untrusted code never runs",
            hint="verify and promote it first",
        )
    if version is None:
        return rows[0], True
    for row in rows:
        if row["version"] == version:
            return row, row["version"] == rows[0]["version"]
    revoked = conn.scalar(queries.PROMOTION_STATUS_OF_VERSION, (name, version))
    if revoked is not None:
        raise TransitionError(f"{name} v{version} is {revoked} and cannot run")
    raise NotFoundError(f"{name} has no version {version}", hint="`kavi list-skills --all`")


def root_of(conn: LedgerConnection, parent_id: str) -> str:
    """The root of the tree that ``parent_id`` (an execution node or a skill run) belongs to."""
    root = conn.scalar(queries.ROOT_OF_NODE, (parent_id,))
    if root is None:
        root = conn.scalar(queries.ROOT_OF_RUN, (parent_id,))
    if root is None:
        raise NotFoundError(f"no execution {parent_id!r} to run under", hint="`kavi executions` lists them")
    return str(root)


def append_event(
    conn: LedgerConnection,
    kind: str,
    payload: dict[str, Any],
    *,
    proposal_id: str | None = None,
    build_id: str | None = None,
) -> None:
    """Append one chained event; the caller is inside :meth:`LedgerConnection.writing`."""
    last = conn.execute(queries.LAST_EVENT).fetchone()
    prev_hash, next_id = (last[1], last[0] + 1) if last else (GENESIS, 1)
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
    conn.execute(queries.INSERT_EVENT, (next_id, ts, kind, proposal_id, build_id, body, prev_hash, digest))


def write(conn: LedgerConnection, statements: list[tuple[str, tuple[Any, ...]]], events: list[dict[str, Any]]) -> None:
    """Run ``statements`` and append ``events`` in one serialised write transaction."""
    with conn.writing():
        for sql, params in statements:
            conn.execute(sql, params)
        for event in events:
            append_event(conn, event["kind"], event["payload"], proposal_id=event.get("proposal_id"))
