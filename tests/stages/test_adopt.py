"""A fresh `git clone` of this repository: the committed kavi.lock counts from the first command on.

Read-only commands answer from the lock and create no ledger; a command that writes is refused until
`kavi init` adopts the lock; after adoption run-skill, list-skills, show, verify-lock, audit and doctor agree,
the committed lock is unchanged, and a tampered file makes adoption refuse without creating a ledger.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO, run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs git and a git checkout"
    ),
]


def _clone(tmp_path: Path) -> Path:
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True, timeout=120)
    return target


def _kavi(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point in-process (a subprocess per command costs seconds of imports), in ``root``."""
    result = run_cli(*args, "--workspace", str(root)) if args[0] != "init" else run_cli(*args, str(root))
    return subprocess.CompletedProcess(args, result.code, result.stdout, result.stderr)


def _json(root: Path, *args: str) -> dict[str, object]:
    completed = _kavi(root, *args, "--json")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    data: dict[str, object] = json.loads(completed.stdout)
    return data


def test_a_fresh_clone_runs_from_its_lock_and_init_adopts_it(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    locked = (clone / "kavi.lock").read_bytes()
    names = {line.split('"')[1] for line in locked.decode().splitlines() if line.startswith("name = ")}
    assert "word_count" in names

    # before init: every read-only command answers from the lock and no ledger appears
    status = _json(clone, "status")
    assert status["source"] == "lock" and "kavi init" in str(status["note"])
    assert {row["name"] for row in status["locked"]} == names  # type: ignore[union-attr]
    listed = _json(clone, "list-skills")
    assert {row["name"] for row in listed["skills"]} == names  # type: ignore[union-attr]
    assert _json(clone, "show", "word_count")["proposal"]["status"] == "TRUSTED"  # type: ignore[index]
    assert _json(clone, "verify-lock")["ok"] is True
    doctor = _json(clone, "doctor")
    assert doctor["ok"] is True, doctor
    ran = _kavi(clone, "run-skill", "word_count", "--json", '{"text": "a b c"}')
    assert ran.returncode == 0 and json.loads(ran.stdout)["output"] == {"count": 3}, ran.stderr
    assert not (clone / ".kavi" / "ledger.db").exists()

    # a command that writes the ledger would hide the lock behind an empty one: refused, with the fix
    refused = _kavi(clone, "reject", "word_count")
    assert refused.returncode == 1 and "kavi init" in refused.stderr, refused.stderr
    assert not (clone / ".kavi" / "ledger.db").exists()

    # init adopts: the TRUSTED versions keep their ids, hashes and approvers, and the lock is unchanged
    init = _json(clone, "init")
    adopted = {row["name"]: row for row in init["adopted"]}  # type: ignore[union-attr]
    assert set(adopted) == names
    assert {row["approver"] for row in adopted.values()} == {"kavi-maintainers"}
    assert (clone / "kavi.lock").read_bytes() == locked
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout == ""
    assert (clone / ".kavi" / "ledger.db").is_file()

    ran = _kavi(clone, "run-skill", "word_count", "--json", '{"text": "a b"}')
    assert ran.returncode == 0 and json.loads(ran.stdout)["recorded"] is True, ran.stderr
    listed = _json(clone, "list-skills")
    assert listed["source"] == "ledger" and {row["name"] for row in listed["skills"]} == names  # type: ignore[union-attr]
    shown = _json(clone, "show", "word_count")
    assert shown["versions"][0]["approver"] == "kavi-maintainers"  # type: ignore[index]
    assert shown["verifications"][0]["status"] == "ADOPTED"  # type: ignore[index]
    assert _json(clone, "verify-lock")["ok"] is True
    assert _kavi(clone, "audit").returncode == 0
    assert _json(clone, "doctor")["ok"] is True
    assert _json(clone, "init")["created"] is False  # idempotent: a second init adopts nothing again

    # the pipeline goes on from the adopted state: revoking rewrites the lock from the new ledger
    revoked = _kavi(clone, "revoke", "word_count", "--reason", "tried in a clone")
    assert revoked.returncode == 0, revoked.stderr
    assert not (clone / "skills" / "word_count.py").exists()
    assert _json(clone, "verify-lock")["ok"] is True


def test_adoption_refuses_a_tampered_clone_and_creates_no_ledger(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    skill = clone / "skills" / "word_count.py"
    skill.write_text(skill.read_text() + "\nimport os  # tampered\n")
    init = _kavi(clone, "init")
    assert init.returncode == 1, init.stdout + init.stderr
    assert "cannot adopt kavi.lock" in init.stderr and "skills/word_count.py" in init.stderr
    assert not (clone / ".kavi" / "ledger.db").exists()
    ran = _kavi(clone, "run-skill", "word_count", "--json", '{"text": "a"}')
    assert ran.returncode == 1 and "TRUSTED hash" in ran.stderr
