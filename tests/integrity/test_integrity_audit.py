"""`kavi audit` is clean on an honest workspace and names every tampered event, row, artifact and file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kavi.integrity.audit import audit_workspace
from kavi.workspace import Workspace
from tests.support import BOTH_BACKENDS, ledger_rows, run_cli, tamper_ledger

# every check of the audit, on SQLite and on Postgres
pytestmark = BOTH_BACKENDS


def _sql(workspace: Workspace, *statements: str) -> None:
    """Tamper as an attacker with write access to the database would: triggers dropped first."""
    tamper_ledger(workspace, *statements)


def _findings(workspace: Workspace, *, quick: bool = False) -> list[tuple[str, str, str]]:
    report = audit_workspace(workspace, quick=quick)
    return [(f.check, f.where, f.message) for f in report.findings]


def test_an_honest_workspace_audits_clean_with_exit_0(trusted: Workspace) -> None:
    result = run_cli("audit", "--json")
    assert result.code == 0, result.stdout
    data = result.json()
    assert data["ok"] is True and data["findings"] == []
    assert data["counts"]["promotions"] == 2 and data["counts"]["events"] > 10
    assert run_cli("audit", "--quick").code == 0
    human = run_cli("audit")
    assert human.code == 0 and "clean" in human.stdout


TAMPERS: dict[str, tuple[Callable[[Workspace], None], str, str]] = {
    "event payload": (
        lambda ws: _sql(ws, "UPDATE events SET payload = replace(payload, ':', ': ') WHERE id = 3"),
        "chain",
        "event #3",
    ),
    "event kind": (lambda ws: _sql(ws, "UPDATE events SET kind = 'x' || kind WHERE id = 5"), "chain", "event #5"),
    "event removed": (lambda ws: _sql(ws, "DELETE FROM events WHERE id = 4"), "chain", "event #5"),
    "event hash rewritten": (
        lambda ws: _sql(ws, "UPDATE events SET hash = 'f' || substr(hash, 2) WHERE id = 6"),
        "chain",
        "event #",
    ),
    "proposal status": (lambda ws: _sql(ws, "UPDATE proposals SET status = 'VERIFIED'"), "proposal", "proposals row"),
    "promotion approver": (
        lambda ws: _sql(ws, "UPDATE promotions SET approver = 'mallory' WHERE version = 1"),
        "promotion",
        "promotions row",
    ),
    "promotion revived": (
        lambda ws: _sql(ws, "UPDATE promotions SET status = 'REVOKED' WHERE version = 1"),
        "promotion",
        "promotions row",
    ),
    "build status": (
        lambda ws: _sql(ws, "UPDATE builds SET status = 'FAILED' WHERE attempt = 1"),
        "build",
        "builds row",
    ),
    "verification status": (
        lambda ws: _sql(ws, "UPDATE verifications SET status = 'FAILED'"),
        "verification",
        "verifications row",
    ),
    "execution forged": (
        lambda ws: _sql(
            ws,
            "INSERT INTO executions (id, promotion_id, name, version, skill_sha256, input_json, duration_s, isolation,"
            " created_at) SELECT 'x_forged', id, name, version, skill_sha256, '{}', 0, 'none', promoted_at"
            " FROM promotions WHERE version = 1",
        ),
        "execution",
        "executions row x_forged",
    ),
    "artifact bytes": (lambda ws: _flip_artifact(ws, "SPEC"), "artifact", "artifacts row"),
    "artifact removed": (lambda ws: _remove_artifact(ws, "GATE_REPORT"), "artifact", "artifacts row"),
    "installed skill": (
        lambda ws: (ws.skills_dir / "word_count.py").write_text("print('owned')\n"),
        "installed",
        "skills/word_count.py",
    ),
    "installed test removed": (
        lambda ws: (ws.skills_dir / "test_word_count.py").unlink(),
        "installed",
        "skills/test_word_count.py",
    ),
    "stray file": (lambda ws: (ws.skills_dir / "evil.py").write_text("x = 1\n"), "installed", "skills/evil.py"),
    "lock approver": (
        lambda ws: (ws.root / "kavi.lock").write_text(
            (ws.root / "kavi.lock").read_text().replace('approver = "alice"', 'approver = "mallory"', 1)
        ),
        "lock",
        "kavi.lock word_count v1",
    ),
    "ledger tail truncated": (
        lambda ws: _sql(ws, "DELETE FROM events WHERE id = (SELECT MAX(id) FROM events)"),
        "lock",
        "kavi.lock ledger_head",
    ),
}


def _artifact(workspace: Workspace, kind: str) -> Path:
    digest = ledger_rows(workspace, "SELECT sha256 FROM artifacts WHERE kind = ? LIMIT 1", (kind,))[0][0]
    return workspace.artifacts_dir / digest[:2] / digest


def _flip_artifact(workspace: Workspace, kind: str) -> None:
    path = _artifact(workspace, kind)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _remove_artifact(workspace: Workspace, kind: str) -> None:
    _artifact(workspace, kind).unlink()


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_every_tamper_is_named_and_exits_1(trusted: Workspace, tamper: str) -> None:
    act, check, where = TAMPERS[tamper]
    act(trusted)
    findings = _findings(trusted)
    assert any(f[0] == check and f[1].startswith(where) for f in findings), findings
    result = run_cli("audit", "--json")
    assert result.code == 1
    assert result.json()["ok"] is False


def test_quick_mode_sees_the_head_the_counts_and_the_installed_files(trusted: Workspace) -> None:
    assert _findings(trusted, quick=True) == []
    (trusted.skills_dir / "word_count.py").write_text("x = 1\n")
    assert any(f[0] == "installed" for f in _findings(trusted, quick=True))
    _sql(trusted, "UPDATE events SET payload = '{}' WHERE id = (SELECT MAX(id) FROM events)")
    assert any(f[0] == "chain" and "event #" in f[1] for f in _findings(trusted, quick=True))


def test_quick_mode_sees_a_removed_event_by_the_count(trusted: Workspace) -> None:
    _sql(trusted, "DELETE FROM events WHERE id = 2")
    assert any(f == ("chain", "events", f[2]) for f in _findings(trusted, quick=True))


def test_the_chain_walk_matches_the_ledger_hash_function(trusted: Workspace) -> None:
    """The audit's inlined hashing must agree with kavi.ledger.chain (else every event would be flagged)."""
    from kavi.ledger.chain import event_hash

    rows = ledger_rows(
        trusted, "SELECT id, ts, kind, proposal_id, build_id, payload, prev_hash, hash FROM events ORDER BY id"
    )
    for row in rows:
        assert (
            event_hash(
                prev_hash=row[6],
                event_id=row[0],
                ts=row[1],
                kind=row[2],
                proposal_id=row[3],
                build_id=row[4],
                payload=row[5],
            )
            == row[7]
        )
    assert audit_workspace(trusted).head == rows[-1][7]


def test_the_human_output_names_the_finding(trusted: Workspace) -> None:
    (trusted.skills_dir / "test_word_count.py").write_text("")
    result = run_cli("audit")
    assert result.code == 1
    assert "skills/test_word_count.py" in result.stdout
    digest = hashlib.sha256(b"").hexdigest()[:12]
    assert digest in result.stdout
    assert json.loads(run_cli("audit", "--json").stdout)["findings"][0]["check"] == "installed"
