"""`kavi plan` end to end against one scripted OpenAI-compatible stub on 127.0.0.1 (the planner and the openai
builder both talk to it through the real SDK): a 3-skill plan where one skill is already TRUSTED, one forges
first time and one needs a retry; the same plan with one build per skill escalates the member that needed
the retry; a plan over --max-skills is refused with nothing proposed."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.builders.stub_openai import Call, Reply, Turn, serve
from tests.stages.trees import adopt_repository_skills, ledger_rows
from tests.support import run_cli

PLAN = {
    "skills": [
        {
            "name": "word_count",
            "description": "Count the words of a text",
            "side_effect": "READ_ONLY",
            "io_schema": {"input": {"text": "str"}, "output": {"count": "int"}},
            "examples": [{"input": {"text": "a b"}, "output": {"count": 2}}],
        },
        {
            "name": "count_label",
            "description": "Label a word count",
            "side_effect": "READ_ONLY",
            "io_schema": {"input": {"count": "int"}, "output": {"label": "str"}},
            "examples": [{"input": {"count": 2}, "output": {"label": "2 words"}}],
        },
        {
            "name": "shout",
            "description": "Shout a label",
            "side_effect": "READ_ONLY",
            "io_schema": {"input": {"label": "str"}, "output": {"text": "str"}},
            "examples": [{"input": {"label": "hi"}, "output": {"text": "HI!"}}],
        },
    ],
    "chain": {
        "name": "shout_word_count",
        "steps": [
            {"id": "count", "skill": "word_count", "inputs": {"text": "$input.text"}},
            {"id": "label", "skill": "count_label", "inputs": {"count": "$count.count"}},
            {"id": "loud", "skill": "shout", "inputs": {"label": "$label.label"}},
        ],
        "examples": [{"input": {"text": "a b c"}, "output": {"text": "3 WORDS!"}}],
    },
}

SKILL = '''"""{doc}"""

from __future__ import annotations

from kavi.skill import SideEffect, Skill
from pydantic import BaseModel


class {cls}Input(BaseModel):
    {field_in}: {type_in}


class {cls}Output(BaseModel):
    {field_out}: str


class {cls}(Skill[{cls}Input, {cls}Output]):
    name = "{name}"
    side_effect = SideEffect.READ_ONLY
    input_model = {cls}Input
    output_model = {cls}Output

    def execute(self, data: {cls}Input) -> {cls}Output:
        return {cls}Output({field_out}={body})
'''
TEST = """from {name} import {cls}, {cls}Input


def test_{name}() -> None:
    assert {cls}().execute({cls}Input({field_in}={given})).{field_out} == {expected}
"""
COUNT_LABEL = {
    "doc": "Label a word count.",
    "cls": "CountLabel",
    "name": "count_label",
    "field_in": "count",
    "type_in": "int",
    "field_out": "label",
    "given": "3",
    "expected": '"3 words"',
}
SHOUT = {
    "doc": "Shout a label.",
    "cls": "Shout",
    "name": "shout",
    "field_in": "label",
    "type_in": "str",
    "field_out": "text",
    "given": '"hey"',
    "expected": '"HEY!"',
}
FILES = {
    "count_label": [{**COUNT_LABEL, "body": 'f"{data.count} words"'}],
    "shout": [{**SHOUT, "body": "data.label.upper()"}, {**SHOUT, "body": 'data.label.upper() + "!"'}],  # 2nd right
}


class Scripted:
    """The planner's answer, then each build: write the skill and its test, then say it is done."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan, self.attempts = plan, {name: 0 for name in FILES}

    def __call__(self, turn: Turn) -> Reply:
        messages = turn.body["messages"]
        if "kavi's planner" in messages[0]["content"]:
            return Reply(text=f"Here is the plan:\n```json\n{json.dumps(self.plan)}\n```")
        name = next(n for n in FILES if f"skills/{n}.py" in messages[1]["content"])
        if turn.index == 0:
            self.attempts[name] += 1
        if turn.index > 0:
            return Reply(text="Written.")
        versions = FILES[name]
        values = versions[min(self.attempts[name], len(versions)) - 1]
        return Reply(
            calls=(
                Call("write_file", {"path": f"skills/{name}.py", "content": SKILL.format(**values)}),
                Call("write_file", {"path": f"skills/test_{name}.py", "content": TEST.format(**values)}),
            )
        )


@pytest.fixture
def adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = adopt_repository_skills(tmp_path / "ws")
    monkeypatch.setenv("KAVI_WORKSPACE", str(root))
    monkeypatch.setenv("KAVI_OPENAI_MODEL", "stub-model")
    return root


def _plan(monkeypatch: pytest.MonkeyPatch, scripted: Scripted, *args: str) -> Any:
    with serve(scripted) as stub:
        monkeypatch.setenv("KAVI_OPENAI_BASE_URL", stub.url)
        return run_cli("plan", "count a text's words and shout how many", "--builder", "openai", *args, "--json")


def test_a_plan_reuses_forges_and_retries_and_waits_for_a_person(
    adopted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted = Scripted(PLAN)
    planned = _plan(monkeypatch, scripted)
    assert planned.code == 0, planned.stdout + planned.stderr
    report = planned.json()
    assert report["status"] == "WAITING_FOR_APPROVAL"
    actions = {skill["name"]: skill for skill in report["skills"]}
    assert actions["word_count"]["action"] == "REUSED" and actions["word_count"]["version"] == 1
    assert actions["count_label"]["action"] == "VERIFIED" and "attempt 1" in actions["count_label"]["detail"]
    assert actions["shout"]["action"] == "VERIFIED" and "attempt 2" in actions["shout"]["detail"]
    assert scripted.attempts == {"count_label": 1, "shout": 2}
    assert report["chain"]["status"] == "WAITING_FOR_APPROVAL" and len(report["chain"]["steps"]) == 3
    waiting = "\n".join(report["waiting"])
    for name in ("count_label", "shout"):
        assert f"kavi promote-skill {actions[name]['proposal_id']}" in waiting
    assert ledger_rows(adopted, "SELECT status FROM promotions WHERE name IN ('count_label', 'shout')") == []

    artifact = adopted / ".kavi" / "artifacts" / report["plan_sha256"][:2] / report["plan_sha256"]
    assert json.loads(artifact.read_text())["answer"] == PLAN
    assert ledger_rows(adopted, "SELECT kind FROM artifacts WHERE sha256 = ?", report["plan_sha256"]) == [("PLAN",)]
    tree = run_cli("show-execution", report["plan_id"], "--json").json()["execution"]
    forges = [(child["kind"], child["name"], child["status"], len(child["children"])) for child in tree["children"]]
    assert forges == [("forge", "count_label", "VERIFIED", 1), ("forge", "shout", "VERIFIED", 2)]
    assert tree["output"]["value"]["plan_sha256"] == report["plan_sha256"]
    assert run_cli("audit").code == 0

    # A person approves the members; then the plan's own propose-chain joins them, through every check.
    for name in ("count_label", "shout"):
        assert run_cli("promote-skill", actions[name]["proposal_id"], "--approver", "carol").code == 0
    command = shlex.split(report["chain"]["propose"])
    assert command[:2] == ["kavi", "propose-chain"]
    proposed = run_cli(*command[1:], "--json")
    assert proposed.code == 0, proposed.stdout + proposed.stderr
    assert run_cli("verify-chain", "shout_word_count").code == 0
    assert run_cli("promote-chain", "shout_word_count", "--approver", "carol").code == 0
    ran = run_cli("run-chain", "shout_word_count", "--json", '{"text": "one two"}')
    assert ran.code == 0 and ran.json()["output"] == {"text": "2 WORDS!"}, ran.stdout + ran.stderr


def test_a_member_that_cannot_be_forged_within_its_budget_escalates_the_plan(
    adopted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = _plan(monkeypatch, Scripted(PLAN), "--max-attempts", "1")
    assert planned.code == 1, planned.stdout + planned.stderr
    report = planned.json()
    actions = {skill["name"]: (skill["action"], skill["detail"]) for skill in report["skills"]}
    assert actions["count_label"][0] == "VERIFIED"
    assert actions["shout"] == ("ESCALATED", "the budget of 1 attempt(s) is spent")
    assert report["status"] == "ESCALATED"
    assert (report["chain"]["status"], report["chain"]["blocked_by"]) == ("BLOCKED", ["shout"])
    assert any(item.startswith("shout: ESCALATED") for item in report["waiting"])


def test_a_plan_over_its_limits_is_recorded_and_nothing_is_proposed(
    adopted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = _plan(monkeypatch, Scripted(PLAN), "--max-skills", "2")
    assert refused.code == 1 and "more than --max-skills 2" in refused.stdout
    assert ledger_rows(adopted, "SELECT COUNT(*) FROM proposals WHERE name IN ('count_label', 'shout')") == [(0,)]
    [(status, error)] = ledger_rows(adopted, "SELECT status, error FROM execution_nodes WHERE kind = 'plan'")
    assert status == "FAILED" and "--max-skills" in error
    deep = _plan(monkeypatch, Scripted(PLAN), "--max-depth", "2")
    assert deep.code == 1 and "3 steps deep" in deep.stdout


def test_a_spent_cost_budget_forges_nothing_more(adopted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planned = _plan(monkeypatch, Scripted(PLAN), "--max-cost-usd", "0")
    assert planned.code == 1, planned.stdout + planned.stderr
    report = planned.json()
    assert [(skill["name"], skill["action"]) for skill in report["skills"]] == [
        ("word_count", "REUSED"),
        ("count_label", "SKIPPED"),
        ("shout", "SKIPPED"),
    ]
    assert "cost budget of $0 is spent" in report["skills"][1]["detail"]
    assert report["chain"]["blocked_by"] == ["count_label", "shout"]
    assert ledger_rows(adopted, "SELECT COUNT(*) FROM proposals WHERE name IN ('count_label', 'shout')") == [(0,)]
