"""8 processes x 200 operations on one workspace: no "database is locked" reaches anyone, no traceback,
no duplicate attempt or version numbers, and the audit and the lock are clean afterwards."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.integrity.audit import audit_workspace
from kavi.integrity.lockfile import verify_lock
from kavi.workspace import Workspace

pytestmark = pytest.mark.slow

WORKERS = 8
OPS = 200
WORKER = Path(__file__).with_name("concurrency_worker.py")


def test_eight_processes_share_one_workspace_safely(trusted: Workspace, tmp_path: Path) -> None:
    recordings = Path(str(recording_of("word_count"))).parent
    env = {**os.environ, "KAVI_WORKSPACE": str(trusted.root)}
    outputs = [tmp_path / f"worker{i}.jsonl" for i in range(WORKERS)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(i), str(OPS), "7", str(recordings), str(outputs[i])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr[-2000:]
    results = [json.loads(line) for path in outputs for line in path.read_text().splitlines()]
    assert len(results) >= WORKERS * OPS
    for result in results:
        text = result["stdout"] + result["stderr"]
        assert "database is locked" not in text, result
        assert "Traceback" not in text and result["code"] in (0, 1, 2), result
        if result["code"] != 0:
            assert len(result["stderr"].strip().splitlines()) <= 1, result
    ok = sum(1 for r in results if r["code"] == 0)
    assert ok > len(results) * 0.6, f"only {ok} of {len(results)} operations succeeded"
    runs = [r for r in results if r["args"][0] == "run-skill" and r["code"] == 0]
    assert runs and all(json.loads(r["stdout"])["recorded"] for r in runs)

    conn = sqlite3.connect(trusted.root / ".kavi" / "ledger.db")
    try:
        for proposal_id, attempts in _grouped(conn, "SELECT proposal_id, attempt FROM builds ORDER BY attempt"):
            assert attempts == list(range(1, len(attempts) + 1)), (proposal_id, attempts)
        for name, versions in _grouped(conn, "SELECT name, version FROM promotions ORDER BY version"):
            assert versions == list(range(1, len(versions) + 1)), (name, versions)
        executions = conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    finally:
        conn.close()
    assert executions >= len(runs)
    report = audit_workspace(trusted)
    assert report.ok, [f.line() for f in report.findings[:5]]
    assert verify_lock(trusted).ok


def _grouped(conn: sqlite3.Connection, sql: str) -> list[tuple[str, list[int]]]:
    groups: dict[str, list[int]] = {}
    for key, number in conn.execute(sql):
        groups.setdefault(key, []).append(number)
    return sorted(groups.items())
