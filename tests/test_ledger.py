"""The ledger: migrations, the schema they make, the hash chain, append-only events, atomic transitions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlmodel import SQLModel, select

from kavi.errors import LedgerError
from kavi.ledger.chain import GENESIS, event_hash
from kavi.ledger.migrations import MIGRATIONS
from kavi.ledger.models import Event, Proposal
from kavi.ledger.store import Ledger, append_event


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")


def test_a_blank_ledger_is_migrated_once_and_reopening_applies_nothing(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    assert ledger.schema_version() == [name for name, _ in MIGRATIONS]
    assert ledger.migrate() == []
    ledger.close()
    assert Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}").migrate() == []


def test_migrations_create_exactly_the_schema_the_models_describe(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
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


def test_events_are_hash_chained(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
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


def test_events_cannot_be_updated_or_deleted(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    with ledger.transaction() as session:
        append_event(session, "test.event", {})
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        for statement in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)


def test_a_failed_transition_leaves_nothing_behind(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    with pytest.raises(RuntimeError), ledger.transaction() as session:
        append_event(session, "test.event", {})
        raise RuntimeError("crash in the middle of a stage")
    with ledger.reading() as session:
        assert session.exec(select(Event)).all() == []


def test_an_unreadable_ledger_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="cannot open the ledger"):
        _ledger(tmp_path)
