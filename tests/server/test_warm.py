"""`kavi serve` on its warm runner: HTTP calls run warm and are recorded as cold ones are, a tampered skill
is refused and the refusal recorded, and `kavi run-skill` goes through the server's socket with the exact
output and exit code of the cold command, or runs cold when no server answers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kavi.server.local import SOCKET_NAME
from tests.server.conftest import KAVI, Served, start_server, stop_server


def _routes(served: Served) -> dict[str, int]:
    with served.client() as client:
        runner: dict[str, Any] = client.get("/api/v1/health").json()["runner"]
    assert runner["kind"] == "warm"
    routes: dict[str, int] = runner["routes"]
    return routes


def _ledger(served: Served, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(served.workspace.root / ".kavi" / "ledger.db") as conn:
        return list(conn.execute(sql).fetchall())


def _run_skill(served: Served, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "KAVI_WORKSPACE": str(served.workspace.root), **(env or {})}
    environment.pop("KAVI_ISOLATION", None)
    return subprocess.run([KAVI, "run-skill", *args], capture_output=True, text=True, env=environment, check=False)


def _comparable(stdout: str) -> dict[str, Any]:
    """One run-skill answer without what differs between two runs (its id and its duration)."""
    data: dict[str, Any] = json.loads(stdout)
    data.pop("duration_s", None)
    if data.get("execution_id"):
        data["execution_id"] = "x"
    if "error" in data:
        data["error"] = data["error"].split(" (execution ")[0]
    return data


def test_an_http_call_runs_warm_and_is_recorded_like_a_cold_one(served: Served) -> None:
    before = _routes(served).get("warm", 0)
    with served.client() as client:
        answer = client.post("/api/v1/skills/word_count/run", json={"text": "one two three"}).json()
    assert answer["output"] == {"count": 3}
    assert _routes(served)["warm"] == before + 1
    row = _ledger(served, f"SELECT isolation, layers, error FROM executions WHERE id = '{answer['execution_id']}'")
    assert row == [("full", ",".join(answer["layers"]), None)]
    assert {"userns", "caps", "pidns", "netns", "rlimits", "hook"} <= set(answer["layers"])


def test_run_skill_through_the_socket_answers_as_the_cold_command(served: Served) -> None:
    sock = served.workspace.root / ".kavi" / SOCKET_NAME
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    cases = (
        ("word_count", "--json", '{"text": "a b c"}'),  # success
        ("word_count", "--json", '{"text": 1}'),  # an input outside the schema: exit 2, recorded
        ("word_count", "--json", "[1]"),  # not an object: a usage error
        ("no_such_skill", "--json", "{}"),  # unknown: exit 1
    )
    for args in cases:
        before = _routes(served).get("warm", 0)
        through = _run_skill(served, *args)
        cold = _run_skill(served, *args, "--no-server")
        assert through.returncode == cold.returncode, (args, through, cold)
        assert _comparable(through.stdout) == _comparable(cold.stdout), args
        assert through.stderr.split(" (execution ")[0] == cold.stderr.split(" (execution ")[0], args
        warm_calls = _routes(served).get("warm", 0) - before
        assert warm_calls == (1 if args[0] == "word_count" and args[2].startswith("{") else 0), args


def test_a_tampered_skill_is_refused_and_the_refusal_recorded(served: Served) -> None:
    skill = served.workspace.root / "skills" / "save_text.py"
    original = skill.read_bytes()
    executions = _ledger(served, "SELECT count(*) FROM executions")[0][0]
    try:
        skill.write_bytes(original + b"\nimport os  # tampered after promotion\n")
        with served.client() as client:
            refused = client.post("/api/v1/skills/save_text/run", json={"folder": "notes", "text": "x"})
        assert refused.status_code >= 400
        assert refused.json()["error_type"] == "IntegrityError"
        through = _run_skill(served, "save_text", "--json", '{"folder": "notes", "text": "x"}')
        assert through.returncode == 1 and "IntegrityError" in through.stdout
    finally:
        skill.write_bytes(original)
    assert _ledger(served, "SELECT count(*) FROM executions")[0][0] == executions, "nothing of it ran"
    refusals = _ledger(served, "SELECT payload FROM events WHERE kind = 'run.refused'")
    assert len(refusals) >= 2 and all("save_text" in payload for (payload,) in refusals)


def test_a_stale_socket_is_ignored_and_replaced(served_template: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(served_template, root, symlinks=True)
    stale = root / ".kavi" / SOCKET_NAME
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(stale))  # bound, never listening, then closed: a socket file nobody answers on
    env = {**os.environ, "KAVI_WORKSPACE": str(root)}
    env.pop("KAVI_ISOLATION", None)
    cold = subprocess.run(
        [KAVI, "run-skill", "word_count", "--json", '{"text": "x y"}'], capture_output=True, text=True, env=env
    )
    assert cold.returncode == 0, cold.stderr
    assert json.loads(cold.stdout)["output"] == {"count": 2}
    server = start_server(root)
    try:
        assert stat.S_IMODE(stale.stat().st_mode) == 0o600
        through = subprocess.run(
            [KAVI, "run-skill", "word_count", "--json", '{"text": "x y z"}'], capture_output=True, text=True, env=env
        )
        assert json.loads(through.stdout)["output"] == {"count": 3}
        assert _routes(server)["warm"] == 1
    finally:
        stop_server(server)
    assert not stale.exists(), "the server removes its socket when it stops"


@pytest.mark.parametrize("runner", ["cold"])
def test_the_cold_runner_is_still_there(served_template: Path, tmp_path: Path, runner: str) -> None:
    root = tmp_path / "ws"
    shutil.copytree(served_template, root, symlinks=True)
    server = start_server(root, "--runner", runner)
    try:
        with server.client() as client:
            assert client.get("/api/v1/health").json()["runner"] == {"kind": "cold"}
            answer = client.post("/api/v1/skills/word_count/run", json={"text": "a"}).json()
        assert answer["output"] == {"count": 1}
        assert not (root / ".kavi" / SOCKET_NAME).exists(), "only the warm runner answers run-skill"
    finally:
        stop_server(server)
