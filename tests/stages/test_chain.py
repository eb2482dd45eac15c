"""Chains through the real CLI: propose-chain, verify-chain (the composition gate), promote-chain, run-chain.

The members are real TRUSTED skills, forged once per session through every gate (word_count, halve,
save_text). One more member, ``peek``, declares READ_ONLY but writes: its verification is recorded by hand, as
if a gate had missed it, so that only the run-time enforcement stands between it and the workspace.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from kavi.demo import recording_of
from kavi.ledger.ids import new_id, utc_now
from kavi.ledger.models import Proposal, ProposalStatus, Verification
from kavi.ledger.store import append_event
from kavi.stages.build import build_skill
from kavi.stages.common import Forge, latest_build, set_status
from kavi.stages.promote import promote_skill
from kavi.stages.propose import propose_skill
from kavi.workspace import Workspace, init_workspace
from tests.support import CliResult, forge_trusted, run_cli

RECORDINGS = Path(__file__).parent / "chain_recordings"
SERVER_RECORDINGS = Path(__file__).parent.parent / "server" / "recordings"

WORD_COUNT = {
    "name": "word_count",
    "description": "Count the words in a text",
    "side_effect": "READ_ONLY",
    "io_schema": {"input": {"text": "str"}, "output": {"count": "int"}},
    "examples": [{"input": {"text": "a b"}, "output": {"count": 2}}],
}
HALVE = {
    "name": "halve",
    "description": "Halve an even number",
    "side_effect": "READ_ONLY",
    "io_schema": {"input": {"n": "int"}, "output": {"half": "int"}},
    "examples": [{"input": {"n": 4}, "output": {"half": 2}}, {"input": {"n": 3}, "error": "ValueError"}],
}
SAVE_TEXT = {
    "name": "save_text",
    "description": "Save a text as saved.txt under a folder",
    "side_effect": "FILE_WRITE",
    "io_schema": {"input": {"folder": "str", "text": "str"}, "output": {"path": "str"}},
    "examples": [{"input": {"folder": "notes", "text": "hi"}, "output": {"path": "notes/saved.txt"}}],
    "write_roots": ("notes",),
}
PEEK = {
    "name": "peek",
    "description": "Report the size of a file",
    "side_effect": "READ_ONLY",
    "io_schema": {"input": {"path": "str"}, "output": {"size": "int"}},
    "examples": [{"input": {"path": "notes/saved.txt"}, "output": {"size": 0}}],
}

COUNT_THEN_HALVE = [
    {"id": "count", "skill": "word_count", "version": 1, "inputs": {"text": "input.text"}},
    {"id": "half", "skill": "halve", "version": 1, "inputs": {"n": "count.count"}},
]


def pass_by_hand(forge: Forge, reference: str) -> None:
    """Record a PASSED verification of the latest candidate without running a gate (a gate that missed)."""
    with forge.ledger.transaction() as session:
        proposal = session.exec(select(Proposal).where(Proposal.name == reference)).one()
        build = latest_build(session, proposal.id)
        assert build is not None and build.candidate_sha256 is not None
        verification = Verification(
            id=new_id("v"),
            proposal_id=proposal.id,
            build_id=build.id,
            candidate_sha256=build.candidate_sha256,
            status="PASSED",
            isolation="full",
            duration_s=0.0,
            created_at=utc_now(),
        )
        session.add(verification)
        session.flush()
        append_event(  # recorded as the verify stage records one, so the audit sees a consistent ledger
            session,
            "verification.finished",
            {"verification_id": verification.id, "status": "PASSED", "candidate_sha256": build.candidate_sha256},
            proposal_id=proposal.id,
            build_id=build.id,
        )
        set_status(session, proposal, ProposalStatus.VERIFIED, verification_id=verification.id)


@pytest.fixture(scope="module")
def chain_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("chain-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        patch.delenv("KAVI_WORKSPACE", raising=False)
        root = tmp_path_factory.mktemp("chain-template") / "ws"
        workspace, _ = init_workspace(root)
        with Forge.opened(workspace) as forge:
            forge_trusted(forge, WORD_COUNT, recording_of("word_count"))
            forge_trusted(forge, HALVE, RECORDINGS / "halve")
            forge_trusted(forge, SAVE_TEXT, SERVER_RECORDINGS / "save_text")
            proposed = propose_skill(forge, **PEEK)  # type: ignore[arg-type]
            built = build_skill(
                forge, proposed.proposal_id, builder_name="replay", builder_options={"source": str(RECORDINGS / "peek")}
            )
            assert built.status == "SUCCEEDED", built.reason
            pass_by_hand(forge, "peek")
            promote_skill(forge, proposed.proposal_id, approver="mallory")
    return root


@pytest.fixture
def ws(chain_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    root = tmp_path / "ws"
    shutil.copytree(chain_template, root, symlinks=True)
    monkeypatch.setenv("KAVI_WORKSPACE", str(root))
    return Workspace(root)


def propose(name: str, steps: Any, examples: Any) -> CliResult:
    return run_cli(
        "propose-chain",
        "--name",
        name,
        "--steps-json",
        json.dumps(steps),
        "--examples-json",
        json.dumps(examples),
        "--json",
    )


def test_a_type_mismatch_is_refused_at_propose(ws: Workspace) -> None:
    steps = [
        {"id": "count", "skill": "word_count", "inputs": {"text": "input.text"}},
        {"id": "again", "skill": "word_count", "inputs": {"text": "count.count"}},
    ]
    refused = propose("count_twice", steps, [{"input": {"text": "a"}, "output": {"count": 1}}])
    assert refused.code == 2, refused.stdout
    error = refused.json()["error"]
    assert "type mismatch: count.count (word_count output, int) cannot feed again.text (word_count input, str)" in error
    assert run_cli("show", "count_twice").code == 1, "nothing may be recorded for a refused chain"


@pytest.mark.parametrize(
    ("steps", "examples", "message"),
    [
        (
            [{"id": "half", "skill": "halve", "inputs": {}}],
            [{"input": {}, "output": {"half": 1}}],
            "required input(s) n",
        ),
        (
            [{"id": "half", "skill": "halve", "inputs": {"m": "input.m"}}],
            [{"input": {"m": 2}, "output": {"half": 1}}],
            "has no input field 'm'",
        ),
        (
            [
                {"id": "a", "skill": "halve", "inputs": {"n": "b.half"}},
                {"id": "b", "skill": "halve", "inputs": {"n": "a.half"}},
            ],
            [{"input": {}, "output": {"half": 1}}],
            "in a cycle",
        ),
        (COUNT_THEN_HALVE, [], "at least one end-to-end example"),
        (COUNT_THEN_HALVE, [{"input": {"text": 3}, "output": {"half": 1}}], "chain example 0 input"),
        ([{"id": "s", "skill": "no_such_skill", "inputs": {}}], [{"input": {}, "output": {}}], "no skill named"),
        ([{"id": "h", "skill": "halve", "version": 7, "inputs": {}}], [{"input": {}, "output": {}}], "halve v7 is not"),
    ],
)
def test_propose_refuses_what_cannot_compose(ws: Workspace, steps: Any, examples: Any, message: str) -> None:
    refused = propose("broken", steps, examples)
    assert refused.code == 2, refused.stdout
    assert message in refused.json()["error"]


def test_propose_derives_the_chains_schemas_and_the_union_of_its_classes(ws: Workspace) -> None:
    steps = {
        "steps": [
            {"id": "save", "skill": "save_text", "inputs": {"folder": "input.folder", "text": "input.text"}},
            {"id": "count", "skill": "word_count", "inputs": {"text": "input.text"}},
        ],
        "output": {"path": "save.path", "words": "count.count"},
    }
    example = {"input": {"folder": "notes", "text": "a b c"}, "output": {"path": "notes/saved.txt", "words": 3}}
    proposed = propose("save_and_count", steps, [example])
    assert proposed.code == 0, proposed.stdout
    body = proposed.json()
    assert body["side_effects"] == ["READ_ONLY", "FILE_WRITE"]
    assert body["input_schema"]["properties"] == {"folder": {"type": "string"}, "text": {"type": "string"}}
    assert body["input_schema"]["required"] == ["folder", "text"]
    assert body["output_schema"]["properties"] == {"path": {"type": "string"}, "words": {"type": "integer"}}
    assert [step["version"] for step in body["steps"]] == [1, 1], "an unpinned version is pinned at propose"
    assert all(len(step["skill_sha256"]) == 64 for step in body["steps"])
    assert run_cli("verify-chain", "save_and_count").code == 0
    assert run_cli("promote-chain", "save_and_count", "--approver", "bob").code == 0
    listed = {row["name"]: row for row in run_cli("list-skills", "--json").json()["skills"]}
    assert listed["save_and_count"]["side_effect"] == "READ_ONLY+FILE_WRITE"
    assert listed["save_and_count"]["members"] == ["save_text v1", "word_count v1"]
    text = run_cli("list-skills")
    assert "READ_ONLY+FILE_WRITE" in text.stdout
    shown = run_cli("show", "save_and_count")
    assert "READ_ONLY+FILE_WRITE" in shown.stdout and "chain of save_text v1, word_count v1" in shown.stdout
    assert not (ws.root / "notes").exists(), "verifying a chain writes nothing into the workspace"


def test_happy_path_propose_verify_promote_run(ws: Workspace) -> None:
    examples = [{"input": {"text": "a b"}, "output": {"half": 1}}, {"input": {"text": "a b c"}, "error": "odd"}]
    assert propose("count_then_halve", COUNT_THEN_HALVE, examples).code == 0
    verified = run_cli("verify-chain", "count_then_halve", "--json")
    assert verified.code == 0, verified.stdout
    gates = verified.json()["gates"]
    assert [gate["gate"] for gate in gates] == ["composition"] and gates[0]["status"] == "pass"
    promoted = run_cli("promote-chain", "count_then_halve", "--approver", "bob", "--json")
    assert promoted.code == 0, promoted.stdout
    body = promoted.json()
    assert body["approver"] == "bob" and body["version"] == 1
    definition = ws.root / "chains" / "count_then_halve.json"
    spec = json.loads(definition.read_bytes())
    assert hashlib.sha256(definition.read_bytes()).hexdigest() == body["skill_sha256"]
    assert {step["skill"]: step["skill_sha256"] for step in spec["steps"]}.keys() == {"word_count", "halve"}

    for check in ("audit", "verify-lock"):  # the chain's definition is installed and locked like a skill
        checked = run_cli(check, "--json")
        assert checked.code == 0, checked.stdout
    assert "count_then_halve" in (ws.root / "kavi.lock").read_text()

    ran = run_cli("run-chain", "count_then_halve", "--json", '{"text": "one two three four"}')
    assert ran.code == 0, ran.stdout + ran.stderr
    result = ran.json()
    assert result["output"] == {"half": 2}
    assert [(s["step"], s["side_effect"], s["ok"]) for s in result["steps"]] == [
        ("count", "READ_ONLY", True),
        ("half", "READ_ONLY", True),
    ]
    assert all(step["execution_id"] for step in result["steps"])
    shown = run_cli("show", "halve", "--json").json()
    assert shown["executions"]["total"] == 1, "each step is an execution of its member"
    chain_shown = run_cli("show", "count_then_halve", "--json").json()
    assert chain_shown["executions"]["total"] == 1

    failed = run_cli("run-chain", "count_then_halve", "--json", '{"text": "a b c"}')
    assert failed.code == 1
    assert "step half (halve v1, READ_ONLY) failed: ValueError: 3 is odd" in failed.json()["error"]
    bad = run_cli("run-chain", "count_then_halve", "--json", '{"words": 1}')
    assert bad.code == 2 and "does not match its schema" in bad.json()["error"]

    nested = propose("chain_of_chains", [{"skill": "count_then_halve", "inputs": {"text": "input.text"}}], examples)
    assert nested.code == 2 and "count_then_halve is a chain: a chain's steps are skills" in nested.json()["error"]
    not_a_skill = run_cli("run-chain", "halve", "--json", '{"n": 2}')
    assert (
        not_a_skill.code == 2
        and "halve is not a chain (run it with `kavi run-skill halve`)" in not_a_skill.json()["error"]
    )


def test_parts_that_pass_alone_but_fail_together_are_rejected_naming_the_step(ws: Workspace) -> None:
    # word_count and halve each pass their own gates; an odd count makes halve refuse what word_count returns
    assert (
        propose("count_then_halve", COUNT_THEN_HALVE, [{"input": {"text": "a b c"}, "output": {"half": 1}}]).code == 0
    )
    verified = run_cli("verify-chain", "count_then_halve", "--json")
    assert verified.code == 1
    gate = verified.json()["gates"][0]
    assert gate["gate"] == "composition" and gate["status"] == "fail"
    assert (
        gate["summary"]
        == "example 0: step half (halve v1, READ_ONLY) failed: ValueError: 3 is odd: it has no whole half"
    )
    assert gate["facts"]["failed_steps"] == ["half"]
    assert run_cli("promote-chain", "count_then_halve").code == 1
    rebuilt = run_cli("build-skill", "count_then_halve", "--builder", "manual", "--json")
    assert rebuilt.code == 1 and "nothing is built" in rebuilt.json()["error"]


def test_an_unexpected_result_names_the_step_and_the_mismatch(ws: Workspace) -> None:
    assert propose("count_then_halve", COUNT_THEN_HALVE, [{"input": {"text": "a b"}, "output": {"half": 5}}]).code == 0
    gate = run_cli("verify-chain", "count_then_halve", "--json").json()["gates"][0]
    assert gate["status"] == "fail"
    assert "output half (from step half) is 1, the example expects 5" in gate["summary"]


def test_revoking_a_member_suspends_the_chain_and_a_new_member_version_changes_nothing(
    ws: Workspace, tmp_path: Path
) -> None:
    assert propose("count_then_halve", COUNT_THEN_HALVE, [{"input": {"text": "a b"}, "output": {"half": 1}}]).code == 0
    assert run_cli("verify-chain", "count_then_halve").code == 0
    assert run_cli("promote-chain", "count_then_halve").code == 0
    v2 = tmp_path / "halve-v2"
    shutil.copytree(RECORDINGS / "halve", v2)
    (v2 / "skills" / "halve.py").write_text((v2 / "skills" / "halve.py").read_text() + "# v2\n")
    assert run_cli("build-skill", "halve", "--builder", "replay", "--replay-from", str(v2)).code == 0
    assert run_cli("verify-skill", "halve").code == 0
    assert run_cli("promote-skill", "halve").code == 0
    ran = run_cli("run-chain", "count_then_halve", "--json", '{"text": "a b"}').json()
    assert [step["version"] for step in ran["steps"]] == [1, 1], "a new member version changes no chain"

    assert run_cli("revoke", "halve", "--version", "1", "--reason", "wrong").code == 0

    listed = {row["name"]: row for row in run_cli("list-skills", "--json").json()["skills"]}
    assert listed["count_then_halve"]["suspended"] == "member halve v1 (step half) is REVOKED"
    assert "count_then_halve v1 is suspended: member halve v1 (step half) is REVOKED" in run_cli("list-skills").stdout
    shown = run_cli("show", "count_then_halve")
    assert "suspended: member halve v1 (step half) is REVOKED" in shown.stdout

    refused = run_cli("run-chain", "count_then_halve", "--json", '{"text": "a b"}')
    assert refused.code == 1
    assert refused.json()["error_type"] == "ChainSuspendedError"
    assert "chain count_then_halve is suspended: its member halve v1 (step half)" in refused.json()["error"]
    assert "propose the chain again" in refused.json()["error"]
    assert run_cli("show", "count_then_halve", "--json").json()["executions"]["total"] == 1, "nothing more ran"


def test_a_read_only_member_cannot_write_although_another_member_writes(ws: Workspace) -> None:
    steps = [
        {"id": "save", "skill": "save_text", "inputs": {"folder": "input.folder", "text": "input.text"}},
        {"id": "peek", "skill": "peek", "inputs": {"path": "save.path"}},
    ]
    examples = [{"input": {"folder": "notes", "text": "hello"}, "output": {"size": 0}}]
    assert propose("save_then_peek", steps, examples).code == 0
    # The composition gate runs each step with its own class: peek's write is blocked and named.
    gate = run_cli("verify-chain", "save_then_peek", "--json").json()["gates"][0]
    assert gate["status"] == "fail"
    assert gate["summary"].startswith("example 0: step peek (peek v1, READ_ONLY) was blocked: SideEffectViolation")
    assert not (ws.root / "notes").exists()

    with Forge.opened(ws) as forge:  # a reviewer waves it through anyway: the run time still holds
        pass_by_hand(forge, "save_then_peek")
    assert run_cli("promote-chain", "save_then_peek").code == 0
    ran = run_cli("run-chain", "save_then_peek", "--json", '{"folder": "notes", "text": "hello"}')
    assert ran.code == 1
    assert ran.json()["error_type"] == "SideEffectViolation"
    assert "step peek (peek v1, READ_ONLY) was blocked" in ran.json()["error"]
    assert (ws.root / "notes" / "saved.txt").read_text() == "hello", "the FILE_WRITE step wrote; peek could not"


def test_a_chain_run_is_a_tree_of_its_steps_and_replays_whole(ws: Workspace) -> None:
    examples = [{"input": {"text": "a b"}, "output": {"half": 1}}]
    assert propose("count_then_halve", COUNT_THEN_HALVE, examples).code == 0
    assert run_cli("verify-chain", "count_then_halve").code == 0
    assert run_cli("promote-chain", "count_then_halve", "--approver", "bob").code == 0
    ran = run_cli("run-chain", "count_then_halve", "--json", '{"text": "one two three four"}').json()

    tree = run_cli("show-execution", ran["execution_id"], "--json").json()["execution"]
    steps = {child["id"] for child in tree["children"]}
    assert steps == {step["execution_id"] for step in ran["steps"]}, "the steps are the chain run's children"

    replayed = run_cli("replay", ran["execution_id"], "--json")
    assert replayed.code == 0, replayed.stdout + replayed.stderr
    body = replayed.json()
    runs = body["runs"]
    assert [(run["name"], run["matched"]) for run in runs] == [("count_then_halve", True)], "replayed whole"
    again = run_cli("show-execution", runs[0]["replay_id"], "--json").json()["execution"]
    assert len(again["children"]) == 2, "the replayed chain ran its two steps again, below itself"
    assert run_cli("audit", "--json").code == 0
