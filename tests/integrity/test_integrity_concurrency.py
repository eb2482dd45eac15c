"""8 processes x 200 operations on one workspace: no "database is locked" reaches anyone, no traceback,
no duplicate attempt or version numbers, and the audit and the lock are clean afterwards. Again with the
ledger on Postgres (fewer operations per process: the contended pipelines are the same), where no lock
timeout, deadlock or unique violation may reach anyone either."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.integrity.audit import audit_workspace
from kavi.integrity.lockfile import verify_lock
from kavi.workspace import Workspace
from tests.support import BOTH_BACKENDS, ledger_rows

pytestmark = pytest.mark.slow

WORKERS = 8
OPS = {"sqlite": 200, "postgres": 40}
LEDGER_TROUBLE = ("database is locked", "lock timeout", "deadlock detected", "duplicate key", "UNIQUE constraint")
WORKER = Path(__file__).with_name("concurrency_worker.py")


@BOTH_BACKENDS
def test_eight_processes_share_one_workspace_safely(trusted: Workspace, tmp_path: Path, ledger_backend: str) -> None:
    ops = OPS[ledger_backend]
    recordings = Path(str(recording_of("word_count"))).parent
    env = {**os.environ, "KAVI_WORKSPACE": str(trusted.root)}
    outputs = [tmp_path / f"worker{i}.jsonl" for i in range(WORKERS)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(i), str(ops), "7", str(recordings), str(outputs[i])],
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
    assert len(results) >= WORKERS * ops
    for result in results:
        text = result["stdout"] + result["stderr"]
        assert not [trouble for trouble in LEDGER_TROUBLE if trouble in text], result
        assert "Traceback" not in text and result["code"] in (0, 1, 2), result
        if result["code"] != 0:
            assert len(result["stderr"].strip().splitlines()) <= 1, result
    ok = sum(1 for r in results if r["code"] == 0)
    assert ok > len(results) * 0.6, f"only {ok} of {len(results)} operations succeeded"
    runs = [r for r in results if r["args"][0] == "run-skill" and r["code"] == 0]
    assert runs and all(json.loads(r["stdout"])["recorded"] for r in runs)

    for proposal_id, attempts in _grouped(trusted, "SELECT proposal_id, attempt FROM builds ORDER BY attempt"):
        assert attempts == list(range(1, len(attempts) + 1)), (proposal_id, attempts)
    for name, versions in _grouped(trusted, "SELECT name, version FROM promotions ORDER BY version"):
        assert versions == list(range(1, len(versions) + 1)), (name, versions)
    executions = ledger_rows(trusted, "SELECT COUNT(*) FROM executions")[0][0]
    assert executions >= len(runs)
    report = audit_workspace(trusted)
    assert report.ok, [f.line() for f in report.findings[:5]]
    assert verify_lock(trusted).ok


def _grouped(workspace: Workspace, sql: str) -> list[tuple[str, list[int]]]:
    groups: dict[str, list[int]] = {}
    for key, number in ledger_rows(workspace, sql):
        groups.setdefault(key, []).append(number)
    return sorted(groups.items())
