"""The HTTP API end to end on a real `kavi serve`: every call the same governed run as the CLI."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.server.conftest import Served
from tests.support import run_cli


def _executions(served: Served) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(served.workspace.root / ".kavi" / "ledger.db") as conn:
        return list(conn.execute("SELECT id, name, error FROM executions ORDER BY created_at"))


def test_health_list_and_one_skill(served: Served) -> None:
    with served.client() as client:
        assert client.get("/api/v1/health").json()["ok"] is True
        names = {skill["name"] for skill in client.get("/api/v1/skills").json()["skills"]}
        assert names == {"word_count", "save_text"}
        skill = client.get("/api/v1/skills/word_count").json()
    assert skill["status"] == "TRUSTED" and skill["side_effect"] == "READ_ONLY"
    assert skill["spec"]["input_schema"]["properties"] == {"text": {"type": "string"}}
    assert len(skill["skill_sha256"]) == 64 and len(skill["tool"]["sha256"]) == 64
    assert skill["tool"]["definition"]["inputSchema"] == skill["spec"]["input_schema"]


def test_a_run_is_recorded_and_the_ledger_audits_clean(served: Served, monkeypatch) -> None:
    with served.client() as client:
        ran = client.post("/api/v1/skills/word_count/run", json={"text": "one two three"})
    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert body["output"] == {"count": 3} and body["recorded"] is True
    assert (body["execution_id"], "word_count", None) in _executions(served)
    monkeypatch.setenv("KAVI_WORKSPACE", str(served.workspace.root))
    audited = run_cli("audit", "--json")
    assert audited.code == 0, audited.stdout


def test_a_blocked_effect_is_a_problem_object_and_is_recorded(served: Served, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with served.client() as client:
        refused = client.post("/api/v1/skills/save_text/run", json={"folder": str(outside), "text": "escape"})
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["error_type"] == "SideEffectViolation" and problem["status"] == 403
    assert "save_text v1 failed" in problem["detail"]
    assert list(outside.iterdir()) == [], "the blocked write must leave no file outside the write roots"
    assert any(name == "save_text" and error for _, name, error in _executions(served))


def test_unknown_skill_and_bad_input_are_problem_objects_with_the_cli_hint(served: Served) -> None:
    with served.client() as client:
        missing = client.post("/api/v1/skills/no_such_skill/run", json={})
        bad = client.post("/api/v1/skills/word_count/run", json={"words": 3})
    assert missing.status_code == 404
    assert missing.json()["hint"] == "`kavi list-skills` shows what can run"
    assert bad.status_code == 422 and bad.json()["error_type"] == "SkillInputError"


def test_kavi_show_names_the_tool_hash_the_server_serves(served: Served, monkeypatch) -> None:
    from kavi.server.tools import tool_definition, tool_sha256

    with served.client() as client:
        skill = client.get("/api/v1/skills/word_count").json()
    monkeypatch.setenv("KAVI_WORKSPACE", str(served.workspace.root))
    shown = run_cli("show", "word_count", "--json").json()
    assert shown["tools"] == {skill["id"]: skill["tool"]["sha256"]}
    assert skill["tool"]["sha256"] == tool_sha256(tool_definition(skill["spec"]))
