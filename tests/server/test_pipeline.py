"""The forge's stages through the API on a token-protected server: proposals, build and verification jobs,
promotion and revocation recording the token's identity, and a job interrupted by kill -9."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from kavi.demo import DEMO_SKILLS, recording_of
from tests.server.conftest import Served, start_server, stop_server
from tests.support import run_cli

TOKEN = "s3cret-test-token"
WRITE_NOTE = next(skill for skill in DEMO_SKILLS if skill.name == "write_note")


@pytest.fixture(scope="module")
def guarded(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("guarded") / "ws"
    shutil.copytree(served_template, root, symlinks=True)
    server = start_server(root, "--identity", "ci-bot", token=TOKEN)
    yield server
    stop_server(server)


def _authorized(served: Served) -> httpx.Client:
    return served.client(Authorization=f"Bearer {TOKEN}")


def _wait(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = client.get(f"/api/v1/jobs/{job['id']}").json()
        if state["status"] != "running":
            return dict(state)
        time.sleep(0.2)
    raise AssertionError(f"job {job['id']} did not finish")


def _sweep_what_a_killed_server_left() -> None:
    """A process killed with SIGKILL cannot remove its temporary folders; this test's tests run one at a time
    in their process, so an operation folder in TMPDIR now is the killed server's (the session checks none
    outlives its operation otherwise)."""
    for leftover in Path(tempfile.gettempdir()).glob("kavi-verify-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def test_without_the_token_every_request_but_health_is_401(guarded: Served) -> None:
    with guarded.client() as client:
        assert client.get("/api/v1/health").status_code == 200
        posted = client.post("/api/v1/skills/word_count/run", json={"text": "a"})
        assert posted.status_code == 401 and posted.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/api/v1/skills").status_code == 401
    with guarded.client(Authorization="Bearer wrong") as client:
        assert client.post("/api/v1/skills/word_count/run", json={"text": "a"}).status_code == 401


def test_propose_build_verify_promote_and_revoke_through_jobs(guarded: Served) -> None:
    with _authorized(guarded) as client:
        proposed = client.post(
            "/api/v1/proposals",
            json={
                "name": WRITE_NOTE.name,
                "description": WRITE_NOTE.description,
                "side_effect": WRITE_NOTE.side_effect,
                "io_schema": WRITE_NOTE.io_schema,
                "examples": WRITE_NOTE.examples,
                "write_roots": list(WRITE_NOTE.write_roots),
            },
        )
        assert proposed.status_code == 202, proposed.text
        proposal = proposed.json()["proposal_id"]
        invalid = client.post("/api/v1/proposals", json={**proposed.json(), "side_effect": "EVERYTHING"})
        assert invalid.status_code == 422 and invalid.headers["content-type"] == "application/problem+json"

        started = client.post(
            f"/api/v1/proposals/{proposal}/builds", json={"replay_from": str(recording_of("write_note"))}
        )
        assert started.status_code == 202 and started.json()["status"] == "running"
        build = _wait(client, started.json())
        assert build["status"] == "succeeded", build
        build_id = build["result"]["build_id"]
        assert client.get(f"/api/v1/builds/{build_id}").json()["status"] == "SUCCEEDED"
        assert client.get(f"/api/v1/builds/{build_id}/trace").json()["build"]["id"] == build_id

        verification = _wait(client, client.post(f"/api/v1/proposals/{proposal}/verifications").json())
        assert verification["status"] == "succeeded", verification
        detail = client.get(f"/api/v1/verifications/{verification['result']['verification_id']}").json()
        assert detail["status"] == "PASSED", [(g["gate"], g["status"], g["summary"]) for g in detail["gates"]]
        assert {gate["gate"] for gate in detail["gates"]} >= {"ruff", "mypy", "policy", "pytest", "examples"}

        promoted = client.post(f"/api/v1/proposals/{proposal}/promotion").json()
        assert promoted["approver"] == "ci-bot" and promoted["version"] == 1
        ran = client.post("/api/v1/skills/write_note/run", json={"title": "Served", "body": "over HTTP"})
        assert ran.status_code == 200 and ran.json()["output"] == {"path": "notes/served.md"}

        revoked = client.post("/api/v1/skills/write_note/revocations", json={"reason": "superseded"}).json()
        assert revoked["by"] == "ci-bot" and revoked["reason"] == "superseded"
        refused = client.post("/api/v1/skills/write_note/run", json={"title": "again", "body": "x"})
        assert refused.status_code == 409, refused.text
    with sqlite3.connect(guarded.workspace.root / ".kavi" / "ledger.db") as conn:
        row = conn.execute(
            "SELECT approver, revoked_by, revoked_reason FROM promotions WHERE name = 'write_note'"
        ).fetchone()
    assert row == ("ci-bot", "ci-bot", "superseded")


def test_a_verification_killed_with_the_server_is_reported_interrupted(
    guarded: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _authorized(guarded) as client:
        job = client.post("/api/v1/proposals/word_count/verifications").json()
    guarded.process.send_signal(signal.SIGKILL)
    guarded.process.wait()
    _sweep_what_a_killed_server_left()
    restarted = start_server(guarded.workspace.root, token=TOKEN)
    try:
        with _authorized(restarted) as client:
            state = client.get(f"/api/v1/jobs/{job['id']}").json()
            assert state["status"] == "interrupted" and state["kind"] == "verify"
            assert client.get("/api/v1/jobs/j_nosuchjob").status_code == 404
    finally:
        stop_server(restarted)
    monkeypatch.setenv("KAVI_WORKSPACE", str(guarded.workspace.root))
    audited = run_cli("audit", "--json")
    assert audited.code == 0, audited.stdout


def test_a_run_killed_with_the_server_is_never_half_recorded(
    served_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of the server after the skill ran and before its execution was written: nothing of the run is
    in the ledger (no execution row, no run event), the ledger audits clean, and a restarted server runs it."""
    root = tmp_path / "ws"
    shutil.copytree(served_template, root, symlinks=True)
    server = start_server(root, token=TOKEN, environ={"KAVI_CRASH_AT": "run.executed:1"})
    with sqlite3.connect(root / ".kavi" / "ledger.db") as conn:
        before = conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    with _authorized(server) as client, pytest.raises(httpx.TransportError):
        client.post("/api/v1/skills/word_count/run", json={"text": "cut short"})
    assert server.process.wait(timeout=30) == -signal.SIGKILL
    with sqlite3.connect(root / ".kavi" / "ledger.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0] == before
        kinds = [kind for (kind,) in conn.execute("SELECT kind FROM events ORDER BY id DESC LIMIT 3")]
    assert "run.finished" not in kinds and "run.blocked" not in kinds
    monkeypatch.setenv("KAVI_WORKSPACE", str(root))
    audited = run_cli("audit", "--json")
    assert audited.code == 0, audited.stdout
    restarted = start_server(root, token=TOKEN)
    try:
        with _authorized(restarted) as client:
            ran = client.post("/api/v1/skills/word_count/run", json={"text": "after the restart"})
        assert ran.status_code == 200 and ran.json()["output"] == {"count": 3}
    finally:
        stop_server(restarted)
