"""The whole pipeline through the CLI entry point, and every refusal along it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.workspace import Workspace
from tests.support import BOTH_BACKENDS, WORD_COUNT_ARGS, ledger_rows, recording, run_cli


def _propose(*extra: str) -> str:
    result = run_cli("propose-skill", *WORD_COUNT_ARGS, *extra, "--json")
    assert result.code == 0, result.stdout + result.stderr
    return str(result.json()["proposal_id"])


def _event_count(workspace: Workspace) -> int:
    return int(ledger_rows(workspace, "SELECT count(*) FROM events")[0][0])


@BOTH_BACKENDS
def test_manual_build_then_verify_promote_and_run(workspace: Workspace) -> None:
    proposal = _propose()
    waiting = run_cli("build-skill", proposal, "--builder", "manual", "--json").json()
    assert waiting["status"] == "AWAITING_INPUT"
    assert Path(waiting["packet"]).read_text().startswith("# Build packet: word_count")

    resumed = run_cli("build-skill", proposal, "--resume", "--from", str(recording_of("word_count")), "--json")
    assert resumed.code == 0, resumed.stdout
    built = resumed.json()
    assert built["status"] == "SUCCEEDED" and built["attempt"] == 1
    assert set(built["files"]) == {"skills/word_count.py", "skills/test_word_count.py"}
    assert not (workspace.skills_dir / "word_count.py").exists(), "a candidate must not reach skills/ before promotion"

    verified = run_cli("verify-skill", proposal, "--json")
    assert verified.code == 0, verified.stdout
    gates = {gate["gate"]: gate["status"] for gate in verified.json()["gates"]}
    assert gates == dict.fromkeys(("ruff", "mypy", "policy", "invariants", "pytest", "examples"), "pass")

    promoted = run_cli("promote-skill", proposal, "--approver", "alice", "--json").json()
    assert promoted["version"] == 1 and promoted["approver"] == "alice"
    assert (workspace.skills_dir / "word_count.py").read_bytes() == (
        recording_of("word_count") / "skills" / "word_count.py"
    ).read_bytes()

    ran = run_cli("run-skill", "word_count", "--json", '{"text": "a b c"}')
    assert ran.code == 0, ran.stdout + ran.stderr
    assert ran.json()["output"] == {"count": 3}

    listed = run_cli("list-skills", "--json").json()["skills"]
    assert [(s["name"], s["version"], s["status"]) for s in listed] == [("word_count", 1, "TRUSTED")]
    shown = run_cli("show", "word_count", "--json").json()
    assert shown["proposal"]["status"] == "TRUSTED"
    assert shown["executions"]["total"] == 1
    assert shown["verifications"][0]["isolation"]
    assert all(
        gate["isolation"] for gate in shown["verifications"][0]["gates"] if gate["gate"] in ("pytest", "examples")
    )
    assert run_cli("audit").code == 0 and run_cli("verify-lock").code == 0
    assert run_cli("attest", "word_count", "--out", str(workspace.root / "prov.json")).code == 0
    assert run_cli("verify-attestation", str(workspace.root / "prov.json")).code == 0


def test_every_command_prints_exactly_one_json_object(workspace: Workspace) -> None:
    proposal = _propose()
    for args in (
        ("status",),
        ("list-skills",),
        ("show", proposal),
        ("build-skill", proposal, "--builder", "replay", "--replay-from", str(recording_of("word_count"))),
        ("verify-skill", proposal),
        ("promote-skill", proposal, "--approver", "ci"),
        ("revoke", "word_count"),
        ("reject", proposal),
    ):
        result = run_cli(*args, "--json")
        assert result.code == 0, (args, result.stdout, result.stderr)
        assert isinstance(json.loads(result.stdout), dict), args


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("verify-skill", "word_count"), 1, "build it first"),
        (("promote-skill", "word_count"), 1, "verify it"),
        (("run-skill", "word_count", "--json", "{}"), 1, "no TRUSTED version"),
        (("build-skill", "p_doesnotexist"), 1, "no proposal"),
        (("run-skill", "nope", "--json", "{}"), 1, "no skill named"),
        (("build-skill", "word_count", "--from", "x"), 2, "--from only goes with --resume"),
        (("build-skill", "word_count", "--resume"), 1, "no build waiting"),
    ],
)
def test_illegal_transitions_are_one_line_errors(
    workspace: Workspace, args: tuple[str, ...], code: int, needle: str
) -> None:
    _propose()
    events = _event_count(workspace)
    result = run_cli(*args)
    assert result.code == code, result.stderr
    assert needle in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert _event_count(workspace) == events, "a refused command must not write to the ledger"


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--io-schema-json", "{not json", "not valid JSON"),
        ("--io-schema-json", '{"input": {"x": "complex"}, "output": {}}', "unknown type"),
        ("--examples-json", '[{"input": {"text": 1}, "output": {"count": 2}}]', "does not match the schema"),
        ("--side-effect", "ROOT", "unknown side-effect class"),
        ("--name", "os", "standard-library module"),
        ("--name", "class", "keyword"),
        ("--name", "Bad-Name", "snake_case"),
    ],
)
def test_bad_proposals_are_usage_errors(workspace: Workspace, flag: str, value: str, needle: str) -> None:
    args = list(WORD_COUNT_ARGS)
    args[args.index(flag) + 1] = value
    result = run_cli("propose-skill", *args)
    assert result.code == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert _event_count(workspace) == 0


def test_json_mode_reports_errors_as_one_object(workspace: Workspace) -> None:
    result = run_cli("verify-skill", "p_missing", "--json")
    assert result.code == 1
    assert result.json() == {
        "ok": False,
        "error": result.json()["error"],
        "error_type": "NotFoundError",
        "exit_code": 1,
    }


def test_duplicate_skill_name_is_refused(workspace: Workspace) -> None:
    _propose()
    result = run_cli("propose-skill", *WORD_COUNT_ARGS)
    assert result.code == 2 and "already exists" in result.stderr


def test_outside_a_workspace_the_error_names_kavi_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVI_WORKSPACE", str(tmp_path))
    result = run_cli("status")
    assert result.code == 1 and "kavi init" in result.stderr


@BOTH_BACKENDS
def test_tampered_skill_is_refused_and_nothing_of_it_runs(workspace: Workspace) -> None:
    proposal = _propose()
    run_cli("build-skill", proposal, "--builder", "replay", "--replay-from", str(recording_of("word_count")))
    run_cli("verify-skill", proposal)
    assert run_cli("promote-skill", proposal).code == 0
    skill = workspace.skills_dir / "word_count.py"
    marker = workspace.root / "tampered-code-ran"
    skill.write_text(skill.read_text() + f"\nopen({str(marker)!r}, 'w').close()\n")
    result = run_cli("run-skill", "word_count", "--json", '{"text": "a"}')
    assert result.code == 1
    assert "does not match its TRUSTED hash" in result.json()["error"]
    assert not marker.exists()
    kinds = [row[0] for row in ledger_rows(workspace, "SELECT kind FROM events")]
    assert "run.refused" in kinds
    assert ledger_rows(workspace, "SELECT count(*) FROM executions")[0][0] == 0


@BOTH_BACKENDS
def test_versions_revoke_and_run_by_version(workspace: Workspace, tmp_path: Path) -> None:
    proposal = _propose()
    rec = recording("word_count", tmp_path)
    for _ in range(2):
        run_cli("build-skill", proposal, "--builder", "replay", "--replay-from", str(rec))
        assert run_cli("verify-skill", proposal).code == 0
        assert run_cli("promote-skill", proposal).code == 0
        skill = rec / "skills" / "word_count.py"
        skill.write_text(skill.read_text().replace('"""Count', '"""Version two: count'))
    versions = run_cli("list-skills", "--json").json()["skills"]
    assert [v["version"] for v in versions] == [2, 1]
    assert run_cli("run-skill", "word_count", "--version", "1", "--json", '{"text": "x y"}').json()["version"] == 1
    revoked = run_cli("revoke", "word_count", "--json").json()
    assert revoked["version"] == 2 and revoked["installed_version"] == 1
    installed = (workspace.skills_dir / "word_count.py").read_text()
    assert "Version two" not in installed
    refused = run_cli("run-skill", "word_count", "--version", "2", "--json", "{}")
    assert refused.code == 1 and "REVOKED" in refused.json()["error"]
    assert run_cli("revoke", "word_count").code == 0
    assert not (workspace.skills_dir / "word_count.py").exists()
    assert run_cli("reject", proposal).code == 0
    assert run_cli("build-skill", proposal, "--builder", "manual").code == 1


def test_reject_refuses_a_proposal_with_trusted_versions(workspace: Workspace) -> None:
    proposal = _propose()
    run_cli("build-skill", proposal, "--builder", "replay", "--replay-from", str(recording_of("word_count")))
    run_cli("verify-skill", proposal)
    run_cli("promote-skill", proposal)
    result = run_cli("reject", proposal)
    assert result.code == 1 and "revoke them first" in result.stderr


def test_skill_errors_and_bad_input_are_recorded(workspace: Workspace) -> None:
    proposal = _propose()
    run_cli("build-skill", proposal, "--builder", "replay", "--replay-from", str(recording_of("word_count")))
    run_cli("verify-skill", proposal)
    run_cli("promote-skill", proposal)
    bad = run_cli("run-skill", "word_count", "--json", '{"text": 5, "extra": 1}')
    assert bad.code == 2 and "input does not match" in bad.json()["error"]
    not_json = run_cli("run-skill", "word_count", "--json", "{oops")
    assert not_json.code == 2 and "not valid JSON" in not_json.json()["error"]
    errors = [row[0] for row in ledger_rows(workspace, "SELECT error FROM executions")]
    assert len(errors) == 1 and "input does not match" in errors[0]


def test_builders_trace_research_and_forge_commands(workspace: Workspace, tmp_path: Path) -> None:
    names = {row["name"]: row["available"] for row in run_cli("builders", "--json").json()["builders"]}
    assert {"manual", "replay", "claude-code", "openai"} <= set(names) and names["manual"] is True
    proposal = _propose()
    rec = recording("word_count", tmp_path)
    (rec / "skills" / "test_word_count.py").write_text("def test_fails() -> None:\n    assert 1 == 2\n")
    built = run_cli("build-skill", proposal, "--replay-from", str(rec), "--json").json()
    assert run_cli("verify-skill", proposal).code == 1
    traced = run_cli("trace", built["build_id"], "--json").json()
    kinds = [event["kind"] for event in traced["events"]]
    assert kinds[0] == "build.started" and "trace.replay" in kinds and "build.finished" in kinds
    note = run_cli("research-skill", built["build_id"], "--json").json()
    assert note["kind"] == "VERIFY_TEST" and note["note_sha256"]
    forged = run_cli("forge", proposal, "--replay-from", str(rec), "--max-attempts", "1", "--json")
    assert forged.code == 1 and forged.json()["status"] == "ESCALATED"
    assert run_cli("forge", proposal, "--builder", "manual").code == 2


def test_a_bug_exits_3_with_a_log_file_and_no_traceback_on_screen(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tempfile

    import kavi.stages.queries

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("an invariant kavi did not expect to break")

    monkeypatch.setattr(kavi.stages.queries, "status_summary", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = run_cli("status")
    assert result.code == 3
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    log = Path(result.stderr.split("details are in ")[1].split(" (please")[0])
    assert log.is_file() and "RuntimeError: an invariant kavi did not expect to break" in log.read_text()
