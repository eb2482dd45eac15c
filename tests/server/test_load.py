"""Load on loopback: concurrent clients calling one skill through a real `kavi serve`, no errors, every call
one execution in the ledger, and the ledger audits clean afterwards. The full 8 x 200 with its p50/p99 is in
benchmarks/serve.py; here a bounded share of it runs in every CI job."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.server.conftest import Served
from tests.support import run_cli

CLIENTS = 8
CALLS_EACH = 12


def _client_calls(served: Served, client_number: int) -> list[tuple[int, dict[str, object]]]:
    answers = []
    with served.client() as client:
        for call in range(CALLS_EACH):
            words = " ".join(["w"] * (client_number + call + 1))
            response = client.post("/api/v1/skills/word_count/run", json={"text": words})
            answers.append((response.status_code, response.json()))
    return answers


def test_concurrent_clients_get_every_answer_right_and_the_ledger_audits_clean(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Path(served.workspace.root) / ".kavi" / "ledger.db"
    with sqlite3.connect(ledger) as conn:
        before = conn.execute("SELECT COUNT(*) FROM executions WHERE name = 'word_count'").fetchone()[0]
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda n: _client_calls(served, n), range(CLIENTS)))
    for client_number, answers in enumerate(results):
        for call, (status, body) in enumerate(answers):
            assert status == 200, body
            assert body["output"] == {"count": client_number + call + 1}
    ids = {body["execution_id"] for answers in results for _, body in answers}
    assert len(ids) == CLIENTS * CALLS_EACH
    with sqlite3.connect(ledger) as conn:
        after = conn.execute("SELECT COUNT(*) FROM executions WHERE name = 'word_count'").fetchone()[0]
        recorded = {row[0] for row in conn.execute("SELECT id FROM executions")}
    assert after - before == CLIENTS * CALLS_EACH and ids <= recorded
    monkeypatch.setenv("KAVI_WORKSPACE", str(served.workspace.root))
    audited = run_cli("audit", "--json")
    assert audited.code == 0, audited.stdout
