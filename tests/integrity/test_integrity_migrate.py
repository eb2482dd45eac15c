"""`kavi ledger migrate --to postgresql://...`: a SQLite ledger copied whole into an empty Postgres database,
its hash chain intact and `kavi audit` clean on the copy; a target that holds anything is refused."""

from __future__ import annotations

import pytest
from sqlmodel import select

from kavi.errors import LedgerError
from kavi.integrity.audit import audit_workspace
from kavi.integrity.lockfile import verify_lock
from kavi.ledger.connection import connect
from kavi.ledger.copy import copy_ledger
from kavi.ledger.models import GateRecord
from kavi.ledger.store import Ledger
from kavi.workspace import Workspace
from tests.support import run_cli

TABLES = ("artifacts", "proposals", "builds", "verifications", "verification_gates", "promotions", "executions")


def _dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in a backend-neutral order and shape (booleans as ints)."""
    with connect(url) as conn:
        dump = {"events": [tuple(r) for r in conn.execute("SELECT * FROM events ORDER BY id").fetchall()]}
        for table in TABLES:
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            dump[table] = sorted((tuple(int(v) if isinstance(v, bool) else v for v in r) for r in rows), key=repr)
    return dump


def test_the_cli_copies_the_ledger_with_its_chain_and_the_copy_audits_clean(
    trusted: Workspace, postgres_url: str
) -> None:
    assert run_cli("run-skill", "word_count", "--json", '{"text": "a b"}').code == 0  # an execution row too
    result = run_cli("ledger", "migrate", "--to", postgres_url, "--json")
    assert result.code == 0, result.stdout + result.stderr
    data = result.json()
    assert data["ok"] is True and data["audit"]["findings"] == []
    assert data["rows"]["events"] == data["events"] > 10 and data["rows"]["promotions"] == 2
    assert data["head"] == audit_workspace(trusted).head
    assert _dump(postgres_url) == _dump(trusted.ledger_url)
    copy = trusted.with_ledger(postgres_url)
    assert verify_lock(copy).ok  # kavi.lock's chain heads are events of the copy
    with connect(postgres_url) as conn:  # a machine with no shared folder fetches each artifact by hash
        blobs = {row[0]: bytes(row[1]) for row in conn.execute("SELECT sha256, data FROM artifact_blobs").fetchall()}
        named = {row[0] for row in conn.execute("SELECT sha256 FROM artifacts").fetchall()}
    assert set(blobs) == named
    assert all((trusted.artifacts_dir / sha[:2] / sha).read_bytes() == data for sha, data in blobs.items())
    human = run_cli("ledger", "migrate", "--to", postgres_url)
    assert human.code == 1 and "not empty" in human.stderr and "createdb" in human.stderr


def test_the_copy_keeps_working_and_its_sequences_continue(trusted: Workspace, postgres_url: str) -> None:
    copy_ledger(trusted.ledger_url, postgres_url)
    ledger = Ledger.open(postgres_url)
    try:
        with ledger.transaction() as session:
            verification = session.exec(select(GateRecord).limit(1)).first()
            assert verification is not None and verification.id is not None
            record = GateRecord(
                verification_id=verification.verification_id, gate="extra", status="pass", summary="", duration_s=0.5
            )
            session.add(record)
            session.flush()
            assert record.id is not None and record.id > verification.id
    finally:
        ledger.close()
    (trusted.root / "kavi.toml").write_text(
        (trusted.root / "kavi.toml").read_text().replace('url = ".kavi/ledger.db"', f'url = "{postgres_url}"')
    )
    moved = Workspace(trusted.root)
    assert run_cli("revoke", "word_count", "--version", "2", "--workspace", str(moved.root)).code == 0
    ran = run_cli("run-skill", "word_count", "--json", '{"text": "a b c"}', "--workspace", str(moved.root))
    assert ran.code == 0 and ran.json()["version"] == 1 and ran.json()["recorded"] is True
    assert audit_workspace(moved).ok


def test_a_target_that_holds_anything_is_refused_and_left_as_it_was(trusted: Workspace, postgres_url: str) -> None:
    ledger = Ledger.open(postgres_url)
    ledger.close()
    with connect(postgres_url) as conn:
        conn.execute("INSERT INTO artifacts (sha256, kind, size, created_at) VALUES ('x', 'SPEC', 1, 't')")
    with pytest.raises(LedgerError, match="not empty"):
        copy_ledger(trusted.ledger_url, postgres_url)
    assert _dump(postgres_url)["events"] == []


def test_only_a_sqlite_ledger_is_copied(trusted: Workspace, postgres_url: str) -> None:
    with pytest.raises(LedgerError, match="must be a SQLite file"):
        copy_ledger(postgres_url, trusted.ledger_url)
    with pytest.raises(LedgerError, match="own ledger"):
        copy_ledger(trusted.ledger_url, trusted.ledger_url)
