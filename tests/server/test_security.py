"""Who may talk to a local kavi: no cross-origin page, no rebinding host, no open bind without a token."""

from __future__ import annotations

import os
import sqlite3
import subprocess

from tests.server.conftest import KAVI, Served


def _execution_count(served: Served) -> int:
    with sqlite3.connect(served.workspace.root / ".kavi" / "ledger.db") as conn:
        return int(conn.execute("SELECT count(*) FROM executions").fetchone()[0])


def test_a_page_on_another_origin_cannot_post(served: Served) -> None:
    before = _execution_count(served)
    attacks = (
        {"Origin": "http://evil.test", "Content-Type": "text/plain"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {"Origin": served.url.replace("127.0.0.1", "localhost")},
    )
    with served.client() as client:
        for headers in attacks:
            refused = client.post("/api/v1/skills/word_count/run", content=b'{"text": "csrf"}', headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            assert "access-control-allow-origin" not in refused.headers
            assert client.post("/mcp", json={}, headers=headers).status_code == 403, headers
    assert _execution_count(served) == before, "a refused request must not reach the runner"
    with served.client(Origin=served.url, **{"Sec-Fetch-Site": "same-origin"}) as client:
        assert client.post("/api/v1/skills/word_count/run", json={"text": "same origin"}).status_code == 200
    assert _execution_count(served) == before + 1


def test_a_rebinding_host_is_refused_even_for_reads(served: Served) -> None:
    with served.client(Host="attacker.test") as client:
        answer = client.get("/api/v1/skills")
    assert answer.status_code == 421 and "loopback" in answer.json()["detail"]


def test_no_cors_headers_by_default(served: Served) -> None:
    with served.client(Origin="http://evil.test") as client:
        answer = client.options("/api/v1/skills", headers={"Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in answer.headers


def test_a_non_loopback_bind_without_a_token_refuses_to_start(served: Served) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAVI_SERVE_TOKEN"}
    env["KAVI_WORKSPACE"] = str(served.workspace.root)
    started = subprocess.run(
        [KAVI, "serve", "--host", "0.0.0.0", "--port", "0"], env=env, capture_output=True, text=True, timeout=30
    )
    assert started.returncode == 2, started.stderr
    assert "needs a token" in started.stderr
