"""Opening the ledger, migrating it, and the one way to write to it: a transaction that appends events.

SQLite is opened in WAL mode with foreign keys on and a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE`` so two kavi processes serialise their writes instead of failing half-way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlmodel import Session, col, select

from kavi.crash import crashpoint
from kavi.errors import LedgerError
from kavi.ledger.chain import GENESIS, canonical_payload, event_hash
from kavi.ledger.ids import utc_now
from kavi.ledger.migrations import MIGRATIONS
from kavi.ledger.models import Artifact, Event

BUSY_TIMEOUT_MS = 30_000


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Ledger:
        """Open and migrate the ledger at ``url``; a missing SQLite file is created only when ``create``
        (read-only commands pass False, so looking at a fresh clone never hides its kavi.lock)."""
        if not create and url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            raise LedgerError(
                f"no ledger at {url.removeprefix('sqlite:///')} yet", hint="run `kavi init` to create it"
            )
        engine = _make_engine(url)
        ledger = cls(engine)
        try:
            ledger.migrate()
        except DBAPIError as exc:
            raise LedgerError(f"cannot open the ledger at {_safe_url(url)}: {exc.orig}") from None
        return ledger

    def close(self) -> None:
        self.engine.dispose()

    # --- schema ---------------------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply every migration not yet recorded; return the names applied now."""
        dialect = self.engine.dialect.name
        applied_now: list[str] = []
        with self.engine.connect() as conn:
            conn.execute(
                text("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            )
            done = {row[0] for row in conn.execute(text("SELECT name FROM migrations"))}
            for name, migration in MIGRATIONS:
                if name in done:
                    continue
                migration(conn, dialect)
                conn.execute(
                    text("INSERT INTO migrations (name, applied_at) VALUES (:n, :t)"),
                    {"n": name, "t": utc_now()},
                )
                applied_now.append(name)
            conn.commit()
        return applied_now

    def schema_version(self) -> list[str]:
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(text("SELECT name FROM migrations ORDER BY name"))]

    # --- transactions ---------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One stage transition: everything inside commits together or not at all."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except SQLAlchemyError as exc:
                session.rollback()
                raise LedgerError(f"the ledger refused the write: {exc.__class__.__name__}: {exc}") from exc
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session


def append_event(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    proposal_id: str | None = None,
    build_id: str | None = None,
) -> Event:
    """Append one hash-chained event. Must run inside :meth:`Ledger.transaction` (which holds the write
    lock from its first statement, so the chain head cannot move underneath)."""
    last = session.exec(select(Event).order_by(col(Event.id).desc()).limit(1)).first()
    prev_hash = last.hash if last else GENESIS
    next_id = (last.id or 0) + 1 if last else 1
    ts = utc_now()
    body = canonical_payload(payload)
    digest = event_hash(
        prev_hash=prev_hash,
        event_id=next_id,
        ts=ts,
        kind=kind,
        proposal_id=proposal_id,
        build_id=build_id,
        payload=body,
    )
    record = Event(
        id=next_id,
        ts=ts,
        kind=kind,
        proposal_id=proposal_id,
        build_id=build_id,
        payload=body,
        prev_hash=prev_hash,
        hash=digest,
    )
    session.add(record)
    session.flush()
    crashpoint("ledger.event")
    return record


def record_artifact(session: Session, sha256: str, kind: str, size: int) -> None:
    """Record that the store holds ``sha256`` (idempotent: the first kind recorded wins)."""
    if session.get(Artifact, sha256) is None:
        session.add(Artifact(sha256=sha256, kind=kind, size=size, created_at=utc_now()))
        session.flush()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "isolation_level": None})

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise LedgerError(f"cannot use ledger URL {_safe_url(url)}: {exc}") from None


def _safe_url(url: str) -> str:
    """A URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
