"""`kavi verify-lock --regate` on a fresh clone of this very repository, which holds skills and Triton kernels.

Before kavi.kinds this exited 3 ("kavi hit a bug"): the lock's kernel entries were read as skill specs. Each
kernel is now judged by its own gates: correctness through Triton's CPU interpreter (or SKIPPED with the
reason where torch is missing), speed SKIPPED as unmeasured without a GPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.kinds import KINDS
from tests.clones import fresh_clone
from tests.support import run_cli


@pytest.mark.slow
def test_regate_of_this_repositorys_own_lock_passes_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    result = run_cli("verify-lock", "--regate", "--workspace", str(clone), "--json")
    assert result.code == 0, result.stdout + result.stderr
    report = result.json()
    assert report["ok"] and report["problems"] == []
    regated = {entry["name"]: entry for entry in report["regate"]}
    assert {entry["kind"] for entry in regated.values()} == {"python", "kernel"}
    for entry in regated.values():
        assert "not_gated" not in entry
        statuses = {gate["gate"]: gate for gate in entry["gates"]}
        assert list(statuses) == [gate.name for gate in KINDS[entry["kind"]].gates()]
        if entry["kind"] == "python":
            assert {gate["status"] for gate in statuses.values()} == {"pass"}, entry
            continue
        assert statuses["kernel-screen"]["status"] == "pass", entry
        correctness = statuses["kernel-correctness"]
        assert correctness["status"] == "pass" or (correctness["status"] == "skipped" and correctness["summary"])
        speed = statuses["kernel-speed"]
        assert speed["status"] == "pass" or speed["summary"].startswith("unmeasured: "), speed
