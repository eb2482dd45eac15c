"""Attestations: an in-toto Statement v1 with SLSA provenance, signed as DSSE, verified against the
workspace; any changed byte of a subject, a dependency, the statement or the signature fails verification."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from kavi.integrity.attest import make_statement, verify_attestation
from kavi.workspace import Workspace
from tests.support import BOTH_BACKENDS, ledger_rows, run_cli


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    result = run_cli("keygen", "--out", str(tmp_path / "keys" / "signer"), "--json")
    assert result.code == 0, result.stdout + result.stderr
    data = result.json()
    return Path(data["private_key"]), Path(data["public_key"])


def _attest(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "provenance.json"
    result = run_cli("attest", "word_count", "--out", str(out), *extra)
    assert result.code == 0, result.stdout + result.stderr
    return out


def test_keygen_writes_a_private_key_only_its_owner_can_read_and_never_overwrites(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    again = run_cli("keygen", "--out", str(private.with_suffix("")))
    assert again.code == 2 and "already exists" in again.stderr


@BOTH_BACKENDS
def test_the_statement_is_in_toto_v1_with_slsa_provenance(trusted: Workspace) -> None:
    statement = make_statement(trusted, "word_count")
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    subjects = {s["name"] for s in statement["subject"]}
    assert subjects == {"skills/word_count.py", "skills/test_word_count.py"}
    deps = {d["name"] for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert {"spec", "build-packet", "candidate", "builder", "trace"} <= deps
    assert {"gate:ruff", "gate:mypy", "gate:pytest", "gate:examples"} <= deps
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["version"] == 2
    older = make_statement(trusted, "word_count", 1)
    assert older["subject"] != statement["subject"]


@BOTH_BACKENDS
def test_a_signed_attestation_round_trips(trusted: Workspace, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    envelope_path = _attest(tmp_path, "--sign", str(private))
    envelope = json.loads(envelope_path.read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    result = run_cli("verify-attestation", str(envelope_path), "--key", str(public), "--json")
    assert result.code == 0, result.stdout
    assert result.json()["signature_ok"] is True and result.json()["ledger_checked"] is True


@BOTH_BACKENDS
def test_an_unsigned_attestation_verifies_and_an_older_version_too(trusted: Workspace, tmp_path: Path) -> None:
    path = _attest(tmp_path, "--version", "1")
    assert run_cli("verify-attestation", str(path)).code == 0


@BOTH_BACKENDS
@pytest.mark.parametrize("subject", ["word_count.py", "test_word_count.py"])
@pytest.mark.parametrize("position", [0, 57, -1])
def test_any_changed_byte_of_a_subject_fails_verification(
    trusted: Workspace, tmp_path: Path, keys: tuple[Path, Path], subject: str, position: int
) -> None:
    private, public = keys
    path = _attest(tmp_path, "--sign", str(private))
    target = trusted.skills_dir / subject
    data = bytearray(target.read_bytes())
    data[position] ^= 0x20
    target.write_bytes(bytes(data))
    result = run_cli("verify-attestation", str(path), "--key", str(public), "--json")
    assert result.code == 1
    assert any(subject in problem for problem in result.json()["problems"]), result.json()["problems"]


@BOTH_BACKENDS
def test_a_wrong_key_or_a_changed_payload_fails(trusted: Workspace, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    path = _attest(tmp_path, "--sign", str(private))
    other = run_cli("keygen", "--out", str(tmp_path / "other")).code
    assert other == 0
    wrong = run_cli("verify-attestation", str(path), "--key", str(tmp_path / "other.pub"), "--json")
    assert wrong.code == 1 and wrong.json()["signature_ok"] is False
    envelope = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["internalParameters"]["approver"] = "mallory"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(envelope))
    changed = run_cli("verify-attestation", str(path), "--key", str(public), "--json")
    assert changed.code == 1 and changed.json()["signature_ok"] is False
    unsigned_check = run_cli("verify-attestation", str(path), "--json")
    assert unsigned_check.code == 1 and "--key" in unsigned_check.json()["problems"][0]


@BOTH_BACKENDS
def test_a_forged_unsigned_statement_is_checked_against_the_ledger(trusted: Workspace, tmp_path: Path) -> None:
    path = _attest(tmp_path)
    statement = json.loads(path.read_text())
    statement["predicate"]["buildDefinition"]["internalParameters"]["approver"] = "mallory"
    path.write_text(json.dumps(statement))
    result = verify_attestation(trusted, path, None)
    assert not result.ok and any("predicate" in p for p in result.problems)


@BOTH_BACKENDS
def test_a_modified_gate_report_in_the_store_fails(trusted: Workspace, tmp_path: Path) -> None:
    path = _attest(tmp_path)
    digest = ledger_rows(
        trusted,
        "SELECT g.report_sha256 FROM verification_gates g JOIN promotions p ON p.verification_id = g.verification_id"
        " WHERE p.version = 2 AND g.report_sha256 IS NOT NULL LIMIT 1",
    )[0][0]
    (trusted.artifacts_dir / digest[:2] / digest).write_bytes(b"rewritten")
    result = verify_attestation(trusted, path, None)
    assert not result.ok and any(digest[:12] in p for p in result.problems), result.problems


@BOTH_BACKENDS
def test_attesting_tampered_installed_bytes_is_refused(trusted: Workspace) -> None:
    (trusted.skills_dir / "word_count.py").write_text("x = 1\n")
    result = run_cli("attest", "word_count")
    assert result.code == 1 and "refusing to attest" in result.stderr
