"""The ledger: migrations, the schema they make, the hash chain, append-only events, atomic transitions."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlmodel import SQLModel, select

from kavi.errors import LedgerError
from kavi.ledger import fast
from kavi.ledger.chain import GENESIS, event_hash
from kavi.ledger.connection import connect, sqlalchemy_url
from kavi.ledger.migrations import MIGRATIONS
from kavi.ledger.models import Event, Proposal
from kavi.ledger.store import Ledger, append_event
from tests.support import BOTH_BACKENDS


@pytest.fixture
def url(tmp_path: Path, server_ledger_url: str | None) -> str:
    """The ledger's URL: a SQLite file, or a fresh Postgres database when the test runs on both backends."""
    return server_ledger_url or f"sqlite:///{tmp_path / 'ledger.db'}"


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")


@BOTH_BACKENDS
def test_a_blank_ledger_is_migrated_once_and_reopening_applies_nothing(url: str) -> None:
    ledger = Ledger.open(url)
    assert ledger.schema_version() == sorted(name for name, _ in MIGRATIONS)
    assert ledger.migrate() == []
    ledger.close()
    assert Ledger.open(url).migrate() == []


@BOTH_BACKENDS
def test_migrations_create_exactly_the_schema_the_models_describe(url: str) -> None:
    ledger = Ledger.open(url)
    inspector = inspect(ledger.engine)
    for table in SQLModel.metadata.sorted_tables:
        actual = {column["name"] for column in inspector.get_columns(table.name)}
        assert actual == set(table.columns.keys()), table.name


def test_sqlite_is_opened_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(LedgerError), ledger.transaction() as session:
        session.add(
            Proposal(
                id="p_1",
                name="x",
                kind="python",
                description="d",
                side_effect="READ_ONLY",
                spec_sha256="missing",
                status="PROPOSED",
                created_at="t",
                updated_at="t",
            )
        )


@BOTH_BACKENDS
def test_events_are_hash_chained(url: str) -> None:
    ledger = Ledger.open(url)
    for index in range(3):
        with ledger.transaction() as session:
            append_event(session, "test.event", {"index": index})
    with ledger.reading() as session:
        events = session.exec(select(Event).order_by(Event.id)).all()  # type: ignore[arg-type]
    previous = GENESIS
    for event in events:
        assert event.prev_hash == previous
        assert event.hash == event_hash(
            prev_hash=previous,
            event_id=event.id or 0,
            ts=event.ts,
            kind=event.kind,
            proposal_id=event.proposal_id,
            build_id=event.build_id,
            payload=event.payload,
        )
        previous = event.hash


@BOTH_BACKENDS
def test_events_cannot_be_updated_or_deleted(url: str) -> None:
    ledger = Ledger.open(url)
    with ledger.transaction() as session:
        append_event(session, "test.event", {})
    statements = ["UPDATE events SET kind = 'x'", "DELETE FROM events"]
    if url.startswith("postgresql"):
        statements.append("TRUNCATE events")
    with connect(url) as conn:
        for statement in statements:
            with pytest.raises(LedgerError, match="append-only"):
                conn.execute(statement)
        assert conn.scalar("SELECT COUNT(*) FROM events") == 1


@BOTH_BACKENDS
def test_an_event_that_reuses_an_id_or_a_hash_is_refused(url: str) -> None:
    """The unique constraints stay as the backstop behind the write lock."""
    ledger = Ledger.open(url)
    with ledger.transaction() as session:
        append_event(session, "test.event", {})
    with connect(url) as conn:
        first = conn.execute("SELECT id, ts, kind, proposal_id, build_id, payload, prev_hash, hash FROM events")
        row = first.fetchone()
        insert = "INSERT INTO events (id, ts, kind, proposal_id, build_id, payload, prev_hash, hash)"
        with pytest.raises(LedgerError):
            conn.execute(f"{insert} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (row[0], *row[1:7], "f" * 64))
        with pytest.raises(LedgerError):
            conn.execute(f"{insert} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (row[0] + 1, *row[1:]))


@BOTH_BACKENDS
def test_concurrent_writers_on_both_write_paths_keep_one_unbroken_chain(url: str) -> None:
    """Threads with connections of their own append at once, half through the ORM, half through the run
    path's connection: the write lock (BEGIN IMMEDIATE, pg_advisory_xact_lock) serialises them, so every
    append links to the one before and nobody meets a unique violation."""
    Ledger.open(url).close()
    errors: list[BaseException] = []

    def orm_writer(index: int) -> None:
        ledger = Ledger.open(url)
        try:
            for step in range(15):
                with ledger.transaction() as session:
                    append_event(session, "test.orm", {"writer": index, "step": step})
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            ledger.close()

    def fast_writer(index: int) -> None:
        try:
            with connect(url) as conn:
                for step in range(15):
                    fast.write(conn, [], [{"kind": "test.fast", "payload": {"writer": index, "step": step}}])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=orm_writer if i % 2 else fast_writer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT id, ts, kind, proposal_id, build_id, payload, prev_hash, hash FROM events ORDER BY id"
        )
        events = rows.fetchall()
    assert [row[0] for row in events] == list(range(1, 91))
    previous = GENESIS
    for row in events:
        assert row[6] == previous
        assert row[7] == event_hash(
            prev_hash=previous,
            event_id=row[0],
            ts=row[1],
            kind=row[2],
            proposal_id=row[3],
            build_id=row[4],
            payload=row[5],
        )
        previous = row[7]


def test_a_postgres_url_is_spelled_for_sqlalchemy_and_psycopg_alike() -> None:
    assert sqlalchemy_url("postgresql://kavi@/db?host=/run/pg") == "postgresql+psycopg://kavi@/db?host=/run/pg"
    assert sqlalchemy_url("postgres://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert sqlalchemy_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(LedgerError, match="unsupported ledger URL"):
        sqlalchemy_url("mysql://u@h/db")


@BOTH_BACKENDS
def test_a_failed_transition_leaves_nothing_behind(url: str) -> None:
    ledger = Ledger.open(url)
    with pytest.raises(RuntimeError), ledger.transaction() as session:
        append_event(session, "test.event", {})
        raise RuntimeError("crash in the middle of a stage")
    with ledger.reading() as session:
        assert session.exec(select(Event)).all() == []


def test_an_unreadable_ledger_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="cannot open the ledger"):
        _ledger(tmp_path)
