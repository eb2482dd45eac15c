"""kavi.lock: written on every trust change, equal to what the ledger derives, enough to verify and run a
fresh clone with no ledger, and every tamper of it or of the files it locks is caught."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import tomllib
import uuid
from pathlib import Path

import pytest

from kavi.integrity.lockfile import verify_lock
from kavi.workspace import Workspace
from tests.support import BOTH_BACKENDS, run_cli


def _lock(workspace: Workspace) -> dict:  # type: ignore[type-arg]
    return tomllib.loads((workspace.root / "kavi.lock").read_text())


def _clone(workspace: Workspace, target: Path) -> Workspace:
    """What a git checkout holds: kavi.toml, kavi.lock and skills/ (no .kavi/)."""
    target.mkdir()
    for name in ("kavi.toml", "kavi.lock"):
        shutil.copy2(workspace.root / name, target / name)
    shutil.copytree(workspace.skills_dir, target / "skills")
    return Workspace(target)


@BOTH_BACKENDS
def test_the_lock_lists_every_trusted_version_with_hashes_spec_and_chain_head(trusted: Workspace) -> None:
    lock = _lock(trusted)
    entries = {(e["name"], e["version"]): e for e in lock["skill"]}
    assert set(entries) == {("word_count", 1), ("word_count", 2)}
    v2 = entries[("word_count", 2)]
    assert v2["installed"] is True and entries[("word_count", 1)]["installed"] is False
    for relative, digest in v2["files"].items():
        assert hashlib.sha256((trusted.root / relative).read_bytes()).hexdigest() == digest
    assert hashlib.sha256(v2["spec"].encode()).hexdigest() == v2["spec_sha256"]
    assert v2["approver"] == "alice" and v2["side_effect"] == "READ_ONLY"
    assert v2["side_effect_params"] == {"write_roots": [], "allow_hosts": [], "secrets": [], "executables": []}
    assert len(v2["chain_head"]) == 64 and v2["chain_head"] != entries[("word_count", 1)]["chain_head"]
    assert verify_lock(trusted).ok


@BOTH_BACKENDS
def test_revoke_and_reject_rewrite_the_lock(trusted: Workspace) -> None:
    before = _lock(trusted)
    assert run_cli("revoke", "word_count", "--version", "2").code == 0
    after = _lock(trusted)
    assert [(e["version"], e["installed"]) for e in after["skill"]] == [(1, True)]
    assert after["ledger_head"] != before["ledger_head"]
    assert run_cli("verify-lock").code == 0
    assert run_cli("revoke", "word_count", "--version", "1").code == 0
    assert _lock(trusted)["skill"] == []
    assert run_cli("reject", "word_count").code == 0
    assert run_cli("verify-lock", "--json").json()["ok"] is True
    assert not (trusted.skills_dir / "word_count.py").exists()


@pytest.mark.parametrize(
    ("tamper", "where"),
    [
        (lambda ws: (ws.skills_dir / "word_count.py").write_text("x = 1\n"), "skills/word_count.py"),
        (lambda ws: (ws.skills_dir / "test_word_count.py").unlink(), "skills/test_word_count.py"),
        (lambda ws: (ws.skills_dir / "extra.py").write_text("x = 1\n"), "skills/extra.py"),
        (
            lambda ws: (ws.root / "kavi.lock").write_text(
                (ws.root / "kavi.lock").read_text().replace('\\"count\\"', '\\"total\\"')
            ),
            "kavi.lock word_count",
        ),
        (
            lambda ws: (ws.root / "kavi.lock").write_text(
                (ws.root / "kavi.lock").read_text().replace("installed = false", "installed = true")
            ),
            "kavi.lock word_count",
        ),
    ],
)
def test_verify_lock_on_a_fresh_clone_catches_file_and_lock_tampering(
    trusted: Workspace, tmp_path: Path, tamper: object, where: str
) -> None:
    clone = _clone(trusted, tmp_path / "clone")
    assert run_cli("verify-lock", "--workspace", str(clone.root)).code == 0
    tamper(clone)  # type: ignore[operator]
    result = run_cli("verify-lock", "--workspace", str(clone.root), "--json")
    assert result.code == 1
    data = result.json()
    assert data["ledger_checked"] is False
    assert any(p["where"].startswith(where) for p in data["problems"]), data["problems"]
    assert not (clone.root / ".kavi" / "ledger.db").exists()


@BOTH_BACKENDS
@pytest.mark.parametrize(
    ("old", "new"),
    [('approver = "alice"', 'approver = "mallory"'), ("version = 2", "version = 3"), ("READ_ONLY", "NETWORK")],
)
def test_verify_lock_against_the_ledger_catches_any_changed_field(trusted: Workspace, old: str, new: str) -> None:
    path = trusted.root / "kavi.lock"
    path.write_text(path.read_text().replace(old, new, 1))
    result = run_cli("verify-lock", "--json")
    assert result.code == 1
    assert result.json()["ledger_checked"] is True


def test_a_malformed_lock_is_an_error_not_a_crash(trusted: Workspace) -> None:
    (trusted.root / "kavi.lock").write_text("lock_version = [")
    result = run_cli("verify-lock")
    assert result.code == 1 and "kavi.lock" in result.stderr


def test_a_clone_without_a_ledger_runs_from_the_lock_unrecorded(trusted: Workspace, tmp_path: Path) -> None:
    clone = _clone(trusted, tmp_path / "clone")
    ran = run_cli("run-skill", "word_count", "--json", '{"text": "a b c"}', "--workspace", str(clone.root))
    assert ran.code == 0, ran.stdout + ran.stderr
    data = ran.json()
    assert data["output"] == {"count": 3} and data["recorded"] is False and data["version"] == 2
    old = run_cli("run-skill", "word_count", "--version", "1", "--json", "{}", "--workspace", str(clone.root))
    assert old.code == 1 and "not installed" in old.json()["error"]
    (clone.skills_dir / "word_count.py").write_text((clone.skills_dir / "word_count.py").read_text() + "\n")
    refused = run_cli("run-skill", "word_count", "--json", '{"text": "a"}', "--workspace", str(clone.root))
    assert refused.code == 1 and refused.json()["error_type"] == "IntegrityError"


def test_a_tampered_inline_spec_is_refused_before_running(trusted: Workspace, tmp_path: Path) -> None:
    clone = _clone(trusted, tmp_path / "clone")
    lock = clone.root / "kavi.lock"
    lock.write_text(lock.read_text().replace('\\"integer\\"', '\\"number\\"'))
    refused = run_cli("run-skill", "word_count", "--json", '{"text": "a"}', "--workspace", str(clone.root))
    assert refused.code == 1 and "frozen spec" in refused.json()["error"]


@BOTH_BACKENDS
def test_the_run_with_a_ledger_is_still_recorded(trusted: Workspace) -> None:
    ran = run_cli("run-skill", "word_count", "--json", '{"text": "a"}')
    assert ran.json()["recorded"] is True and ran.json()["execution_id"].startswith("x_")


@BOTH_BACKENDS
def test_a_lost_lock_is_rewritten_by_verify_lock_write(trusted: Workspace) -> None:
    (trusted.root / "kavi.lock").unlink()
    (trusted.skills_dir / "word_count.py").unlink()
    assert run_cli("verify-lock").code == 1
    assert run_cli("verify-lock", "--write").code == 0
    assert run_cli("audit").code == 0


@pytest.mark.slow
def test_regate_reruns_the_gates_on_a_clone(trusted: Workspace, tmp_path: Path) -> None:
    clone = _clone(trusted, tmp_path / "clone")
    result = run_cli("verify-lock", "--regate", "--workspace", str(clone.root), "--json")
    assert result.code == 0, result.stdout
    gates = result.json()["regate"][0]["gates"]
    assert {g["gate"] for g in gates} >= {"ruff", "mypy", "pytest", "examples"}
    assert all(g["status"] == "pass" for g in gates)


def test_the_reusable_ci_workflow_checks_the_lock_and_regates() -> None:
    from tests.support import REPO

    text = (REPO / ".github" / "workflows" / "kavi-verify-lock.yml").read_text()
    assert "workflow_call:" in text
    assert "run: kavi verify-lock\n" in text and "run: kavi verify-lock --regate\n" in text
    assert "${{ inputs." not in text.split("steps:")[1].split("run:")[-1], "inputs reach shells only via env"


def test_init_adopts_a_clone_whose_lock_lists_a_version_it_cannot_hold(trusted: Workspace, tmp_path: Path) -> None:
    """word_count v1 is TRUSTED but not installed: the clone has no bytes of it. Adoption takes v2 (the
    installed one, keeping its version, approver and promotion id), names v1 as not adopted, and the lock,
    the ledger and the audit agree afterwards; the next promotion numbers on from v2."""
    clone = _clone(trusted, tmp_path / "clone")
    before = (clone.root / "kavi.lock").read_bytes()
    locked = {e["version"]: e for e in _lock(trusted)["skill"]}
    init = run_cli("init", str(clone.root), "--json")
    assert init.code == 0, init.stdout + init.stderr
    data = init.json()
    assert [(v["name"], v["version"], v["approver"]) for v in data["adopted"]] == [("word_count", 2, "alice")]
    assert data["adopted"][0]["promotion_id"] == locked[2]["promotion_id"]
    assert [(v["name"], v["version"]) for v in data["not_adopted"]] == [("word_count", 1)]
    assert (clone.root / "kavi.lock").read_bytes() == before
    checked = run_cli("verify-lock", "--workspace", str(clone.root), "--json").json()
    assert checked["ok"] and checked["ledger_checked"], checked["problems"]
    assert run_cli("audit", "--workspace", str(clone.root)).code == 0
    ran = run_cli("run-skill", "word_count", "--json", '{"text": "a b"}', "--workspace", str(clone.root))
    assert ran.code == 0 and ran.json()["recorded"] is True and ran.json()["version"] == 2


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('side_effect = "READ_ONLY"', 'side_effect = "NETWORK"', "differ from its frozen spec"),
        ('approver = "alice"\n', 'approver = "alice"\ncandidate_sha256 = "00"\n', "kavi.lock"),
        ("x", "x", ""),
    ],
    ids=["side-effect-field", "duplicate-key", "untouched"],
)
def test_adoption_refuses_a_lock_that_contradicts_itself(
    trusted: Workspace, tmp_path: Path, old: str, new: str, expected: str
) -> None:
    clone = _clone(trusted, tmp_path / "clone")
    lock = clone.root / "kavi.lock"
    lock.write_text(lock.read_text().replace(old, new))
    init = run_cli("init", str(clone.root))
    if not expected:
        assert init.code == 0, init.stderr
        return
    assert init.code == 1 and expected in init.stderr, init.stderr
    assert not (clone.root / ".kavi" / "ledger.db").exists()


def test_a_lock_that_points_outside_the_kinds_folder_is_neither_read_nor_gated(
    trusted: Workspace, tmp_path: Path
) -> None:
    """A pull request controls kavi.lock in CI: an entry naming ``skills/../../x.py`` (with x.py's real hash)
    must not make `verify-lock --regate` read x.py or write it into the verify sandbox's parent folder."""
    clone = _clone(trusted, tmp_path / "clone")
    escape = f"kavi-escape-{uuid.uuid4().hex}.py"
    source = (clone.skills_dir / "word_count.py").read_bytes()
    (clone.root.parent / escape).write_bytes(source)  # where skills/../../<escape> points from the clone
    lock = clone.root / "kavi.lock"
    lock.write_text(lock.read_text().replace('"skills/word_count.py" =', f'"skills/../../{escape}" ='))
    result = run_cli("verify-lock", "--regate", "--workspace", str(clone.root), "--json")
    assert result.code == 1, result.stdout + result.stderr
    report = result.json()
    messages = [p["message"] for p in report["problems"]]
    assert any("files must be exactly skills/word_count.py, skills/test_word_count.py" in m for m in messages)
    assert any(m.startswith("not re-gated: it lists files other than") for m in messages), messages
    assert [entry["gates"] for entry in report["regate"]] == [[]]
    assert not (Path(tempfile.gettempdir()) / escape).exists()


def test_a_tampered_locked_file_is_reported_and_not_gated(trusted: Workspace, tmp_path: Path) -> None:
    clone = _clone(trusted, tmp_path / "clone")
    (clone.skills_dir / "word_count.py").write_text("import os\nos.system('true')\n")
    result = run_cli("verify-lock", "--regate", "--workspace", str(clone.root), "--json")
    assert result.code == 1, result.stdout + result.stderr
    report = result.json()
    assert report["regate"][0]["not_gated"] == "its files do not match kavi.lock"
    assert report["regate"][0]["gates"] == []
