"""`kavi plan` follows the builder choice: with `--builder claude-code` the plan is asked of the real Claude
Code CLI (one shot, no tools, a private HOME) against a scripted stub of the Anthropic API on 127.0.0.1, the
same CLI then forges the missing skill, and what the CLI reports the answer cost counts against
--max-cost-usd; a builder with no model cannot plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.builders.conftest import real_claude
from tests.builders.stub_anthropic import Reply, StubAnthropic, ToolUse, Turn, serve
from tests.stages.test_plan import COUNT_LABEL, PLAN, SKILL, TEST
from tests.stages.trees import adopt_repository_skills, ledger_rows
from tests.support import CliResult, run_cli

GOAL = "count a text's words and shout how many"
COUNT_ONLY = {
    "skills": [PLAN["skills"][0]],
    "chain": {
        "name": "count_words",
        "steps": [{"id": "count", "skill": "word_count", "inputs": {"text": "$input.text"}}],
        "examples": [{"input": {"text": "a b c"}, "output": {"count": 3}}],
    },
}
COUNT_AND_LABEL = {
    "skills": PLAN["skills"][:2],
    "chain": {
        "name": "label_word_count",
        "steps": PLAN["chain"]["steps"][:2],
        "examples": [{"input": {"text": "a b c"}, "output": {"label": "3 words"}}],
    },
}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This repository's TRUSTED skills (word_count among them), and the claude-code builder's key and CLI."""
    root = adopt_repository_skills(tmp_path / "ws")
    monkeypatch.setenv("KAVI_WORKSPACE", str(root))
    monkeypatch.setenv("KAVI_CLAUDE_BINARY", str(real_claude()))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-stub-key")
    monkeypatch.setenv("KAVI_CLAUDE_MAX_RETRIES", "0")
    return root


def _answering(text: str) -> Any:
    def scenario(turn: Turn) -> Reply:
        return Reply(text=text)

    return scenario


def _plan(monkeypatch: pytest.MonkeyPatch, answer: str, *args: str) -> tuple[CliResult, StubAnthropic]:
    with serve(_answering(answer), toolless=True) as stub:
        monkeypatch.setenv("KAVI_CLAUDE_BASE_URL", stub.url)
        return run_cli("plan", GOAL, "--builder", "claude-code", *args, "--json"), stub


def test_claude_code_plans_through_the_real_cli_with_no_tools(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planned, stub = _plan(monkeypatch, f"The plan:\n```json\n{json.dumps(COUNT_ONLY)}\n```")
    assert planned.code == 0, planned.stdout + planned.stderr
    report = planned.json()
    assert report["status"] == "WAITING_FOR_APPROVAL" and report["planner"] == "claude-code"
    assert [(skill["name"], skill["action"]) for skill in report["skills"]] == [("word_count", "REUSED")]
    assert report["planner_cost_usd"] > 0  # the CLI's total_cost_usd
    assert "kavi propose-chain --name count_words" in report["chain"]["propose"]

    # One question, through the CLI: the planner's prompt as the system prompt, the goal and the TRUSTED
    # catalogue as the user's message, and no tool offered.
    [asked] = [body for body in stub.requests if "messages" in body]
    system = json.dumps(asked["system"])
    assert "kavi's planner" in system and not asked.get("tools")
    question = json.dumps(asked["messages"][0])
    assert f"Goal: {GOAL}" in question and '\\"name\\": \\"word_count\\"' in question
    assert {h.get("x-api-key") or h.get("X-Api-Key") for h in stub.headers} == {"sk-stub-key"}

    artifact = workspace / ".kavi" / "artifacts" / report["plan_sha256"][:2] / report["plan_sha256"]
    assert json.loads(artifact.read_text())["answer"] == COUNT_ONLY
    tree = run_cli("show-execution", report["plan_id"], "--json").json()["execution"]
    assert tree["input"]["value"]["planner"] == "claude-code"
    assert tree["output"]["value"]["planner_cost_usd"] == report["planner_cost_usd"]
    assert run_cli("audit").code == 0


def test_claude_code_plans_and_forges_the_missing_skill(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One claude-code configuration for both: the CLI with no tools answers the plan, then the CLI with its file
    tools builds count_label in the forge's sandbox; word_count is reused."""
    values = {**COUNT_LABEL, "body": 'f"{data.count} words"'}

    def scenario(turn: Turn) -> Reply:
        if not turn.body.get("tools"):
            return Reply(text=json.dumps(COUNT_AND_LABEL))
        if turn.index > 0:
            return Reply(text="Written.")
        return Reply(
            tool_uses=(
                ToolUse(
                    "Write", {"file_path": f"{turn.workdir}/skills/count_label.py", "content": SKILL.format(**values)}
                ),
                ToolUse(
                    "Write",
                    {"file_path": f"{turn.workdir}/skills/test_count_label.py", "content": TEST.format(**values)},
                ),
            )
        )

    with serve(scenario, toolless=True) as stub:
        monkeypatch.setenv("KAVI_CLAUDE_BASE_URL", stub.url)
        planned = run_cli("plan", GOAL, "--builder", "claude-code", "--json")
    assert planned.code == 0, planned.stdout + planned.stderr
    report = planned.json()
    actions = {skill["name"]: skill for skill in report["skills"]}
    assert actions["word_count"]["action"] == "REUSED"
    assert actions["count_label"]["action"] == "VERIFIED" and actions["count_label"]["cost_usd"] > 0
    assert report["status"] == "WAITING_FOR_APPROVAL" and report["planner"] == "claude-code"
    asked = [body for body in stub.requests if "messages" in body]
    assert not asked[0].get("tools") and "kavi's planner" in json.dumps(asked[0]["system"])
    offered = {tool["name"] for body in asked[1:] for tool in body["tools"]}
    assert {"Write", "Read"} <= offered and "Bash" not in offered  # the build had file tools; the plan none
    tree = run_cli("show-execution", report["plan_id"], "--json").json()["execution"]
    assert [(child["kind"], child["name"], child["status"]) for child in tree["children"]] == [
        ("forge", "count_label", "VERIFIED")
    ]


def test_the_planners_cost_counts_against_the_plans_budget(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """test_plan's PLAN, answered through the CLI: its answer alone costs more than $0.0001, so no member is
    forged and nothing is proposed."""
    planned, stub = _plan(monkeypatch, json.dumps(PLAN), "--max-cost-usd", "0.0001")
    assert planned.code == 1, planned.stdout + planned.stderr
    report = planned.json()
    assert report["planner_cost_usd"] > 0.0001
    assert [(skill["name"], skill["action"]) for skill in report["skills"]] == [
        ("word_count", "REUSED"),
        ("count_label", "SKIPPED"),
        ("shout", "SKIPPED"),
    ]
    assert "cost budget of $0.0001 is spent" in report["skills"][1]["detail"]
    assert len([body for body in stub.requests if "messages" in body]) == 1  # no build was started
    assert ledger_rows(workspace, "SELECT COUNT(*) FROM proposals WHERE name IN ('count_label', 'shout')") == [(0,)]


def test_an_answer_that_is_not_json_is_refused_and_kept(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused, _ = _plan(monkeypatch, "I would rather not plan that.")
    assert refused.code == 1 and "did not answer one JSON object" in refused.stdout, refused.stdout
    [(status, error)] = ledger_rows(workspace, "SELECT status, error FROM execution_nodes WHERE kind = 'plan'")
    assert status == "FAILED" and "I would rather not plan that." in error


def test_an_unreachable_claude_model_is_a_clear_error(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(_answering("{}"), toolless=True) as stub:
        url = stub.url  # closed once the block ends: nothing listens there any more
    monkeypatch.setenv("KAVI_CLAUDE_BASE_URL", url)
    failed = run_cli("plan", GOAL, "--builder", "claude-code", "--json")
    said = failed.stdout + failed.stderr
    assert failed.code == 1 and "the planner model (claude-code) failed" in said, said
    assert f"check that {url} answers" in said
    assert ledger_rows(workspace, "SELECT COUNT(*) FROM artifacts WHERE kind = 'PLAN'") == [(0,)]


@pytest.mark.parametrize("builder", ["manual", "replay", None])
def test_a_builder_with_no_model_cannot_plan(workspace: Path, builder: str | None) -> None:
    """manual and replay have no model to ask; with no --builder, kavi.toml's [build] builder (manual here)."""
    chosen = ("--builder", builder) if builder else ()
    refused = run_cli("plan", GOAL, *chosen, "--json")
    assert refused.code == 2, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert f"the {builder or 'manual'} builder cannot plan" in said
    assert "--builder openai or --builder claude-code" in said
    assert ledger_rows(workspace, "SELECT COUNT(*) FROM execution_nodes WHERE kind = 'plan'") == [(0,)]
