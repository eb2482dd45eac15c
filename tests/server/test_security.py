"""Who may talk to a local kavi: no cross-origin page, no rebinding host, no open bind without a token."""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest

from kavi.errors import UsageError
from kavi.server.security import Access, cross_origin, is_loopback
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


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.7", False),
        ("kavi.internal", False),
        ("localhost.attacker.test", False),
    ],
)
def test_which_binds_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if not loopback:
        with pytest.raises(UsageError, match="needs a token"):
            Access.resolve(host, None, None, "me")
        assert Access.resolve(host, "t0ken", "ci", "me").token_identity == "ci"


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),  # curl, an SDK: no browser page involved
        ({"sec-fetch-site": "none"}, False),  # typed into the address bar
        ({"sec-fetch-site": "same-origin", "origin": "http://127.0.0.1:8731"}, False),
        ({"sec-fetch-site": "same-site"}, True),  # another port of localhost is another origin
        ({"sec-fetch-site": "cross-site"}, True),
        ({"origin": "http://127.0.0.1:9999"}, True),
        ({"origin": "https://127.0.0.1:8731"}, False),  # the scheme is not compared; host and port are
        ({"origin": "null"}, True),  # a sandboxed iframe or a file: page
    ],
)
def test_the_same_origin_rule(headers: dict[str, str], refused: bool) -> None:
    scope = {"headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    assert (cross_origin(scope, "127.0.0.1:8731") is not None) is refused
