"""Executions as trees: a run at the top is its own root; runs under a node (a chain run, a chat) and a
forge's attempts hang below it; `kavi executions` lists roots (or one skill's executions at any depth),
`kavi show-execution` prints a tree with inputs, outputs, timings and isolation layers, and `--tail` follows
new executions as the ledger records them."""

from __future__ import annotations

import json
import os
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.errors import NotFoundError
from kavi.ledger import store
from kavi.ledger.migrations import MIGRATIONS
from kavi.ledger.store import Ledger
from kavi.stages.common import Forge
from kavi.stages.executions import execution, execution_tree, list_executions, record_execution
from kavi.stages.run import run_skill
from kavi.workspace import init_workspace
from tests.stages.trees import SAVE_TEXT, adopt_repository_skills, ledger_rows, promote_recorded
from tests.support import REPO, WORD_COUNT_ARGS, run_cli

KAVI = str(Path(sys.executable).parent / "kavi")


@pytest.fixture
def adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = adopt_repository_skills(tmp_path / "ws")
    monkeypatch.setenv("KAVI_WORKSPACE", str(root))
    return root


def test_a_run_at_the_top_is_its_own_tree_and_show_execution_prints_it(adopted: Path) -> None:
    ran = run_cli("run-skill", "word_count", "--json", '{"text": "one two three"}')
    assert ran.code == 0, ran.stderr
    run_id = ran.json()["execution_id"]

    listed = run_cli("executions", "--json").json()["executions"]
    assert [(row["id"], row["kind"], row["status"], row["root_id"]) for row in listed] == [
        (run_id, "skill", "OK", run_id)
    ]
    shown = run_cli("show-execution", run_id[:8], "--json").json()["execution"]
    assert shown["input"] == {"value": {"text": "one two three"}, "truncated": False}
    assert shown["output"] == {"value": {"count": 3}, "truncated": False}
    assert shown["parent_id"] is None and shown["children"] == [] and shown["duration_s"] > 0
    assert shown["layers"] == ran.json()["layers"] and shown["isolation"] == ran.json()["isolation"]
    text = run_cli("show-execution", run_id)
    assert text.code == 0
    assert f"{run_id}  skill word_count v1" in text.stdout and '"count": 3' in text.stdout
    assert f"layers: {','.join(shown['layers'])}" in text.stdout


def test_runs_under_a_node_form_one_tree(adopted: Path) -> None:
    with Forge.opened(adopted) as forge, execution(forge, "chain", "count_twice", input_data={"text": "a b"}) as node:
        first = run_skill(forge.workspace, "word_count", {"text": "a b"}, parent=node.id)
        failed = run_skill(forge.workspace, "word_count", {"words": 3}, parent=node.id, raise_on_failure=False)
        node.output = {"count": first.output}
    assert failed.error is not None and failed.execution_id

    roots = run_cli("executions", "--json").json()["executions"]
    assert [(row["id"], row["kind"], row["status"], row["children"]) for row in roots] == [(node.id, "chain", "OK", 2)]
    of_skill = run_cli("executions", "--skill", "word_count", "--json").json()["executions"]
    assert {row["id"] for row in of_skill} == {first.execution_id, failed.execution_id}
    assert {row["parent_id"] for row in of_skill} == {node.id}

    tree = run_cli("show-execution", node.id, "--json").json()["execution"]
    assert tree["input"]["value"] == {"text": "a b"} and tree["output"]["value"] == {"count": {"count": 2}}
    assert [(child["id"], child["status"]) for child in tree["children"]] == [
        (first.execution_id, "OK"),
        (failed.execution_id, "FAILED"),
    ]
    assert tree["children"][1]["error"].startswith("SkillInputError")
    below = run_cli("show-execution", failed.execution_id)
    assert f"under {node.id}" in below.stdout and "error: SkillInputError" in below.stdout
    events = ledger_rows(adopted, "SELECT kind FROM events WHERE kind LIKE 'execution.%' ORDER BY id")
    assert events == [("execution.started",), ("execution.finished",)]
    assert run_cli("audit").code == 0


def test_a_parent_the_ledger_does_not_know_is_refused_before_anything_runs(adopted: Path) -> None:
    with Forge.opened(adopted) as forge, pytest.raises(NotFoundError, match="c_missing"):
        run_skill(forge.workspace, "word_count", {"text": "a"}, parent="c_missing")
    assert ledger_rows(adopted, "SELECT id FROM executions") == []


def test_a_forge_and_its_attempts_form_a_tree(workspace: Path) -> None:
    proposed = run_cli("propose-skill", *WORD_COUNT_ARGS, "--json").json()
    forged = run_cli(
        "forge", proposed["proposal_id"], "--builder", "replay", "--replay-from", str(recording_of("word_count"))
    )
    assert forged.code == 0, forged.stdout + forged.stderr
    [root] = run_cli("executions", "--json").json()["executions"]
    assert (root["kind"], root["name"], root["status"], root["children"]) == ("forge", "word_count", "VERIFIED", 1)

    tree = run_cli("show-execution", root["id"], "--json").json()["execution"]
    assert tree["input"]["value"]["proposal_id"] == proposed["proposal_id"]
    [attempt] = tree["children"]
    assert attempt["kind"] == "attempt" and attempt["status"] == "PASSED"
    assert attempt["output"]["value"]["build"] == "SUCCEEDED"
    gates = {gate["gate"]: gate for gate in attempt["verification"]["gates"]}
    assert gates["pytest"]["status"] == "pass" and "hook" in gates["pytest"]["layers"]
    assert "verification" in run_cli("show-execution", root["id"]).stdout


def test_tail_prints_each_new_execution_as_the_ledger_records_it(adopted: Path) -> None:
    env = {**os.environ, "KAVI_WORKSPACE": str(adopted)}
    tail = subprocess.Popen(
        [KAVI, "executions", "--tail", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        deadline, seen = time.monotonic() + 60, None
        while seen is None and time.monotonic() < deadline:  # the tail starts at the head it first reads
            ran = run_cli("run-skill", "word_count", "--json", '{"text": "tail me"}').json()
            if select.select([tail.stdout], [], [], 3)[0]:
                seen = json.loads(tail.stdout.readline())  # type: ignore[union-attr]
        assert seen is not None, tail.stderr.read() if tail.poll() is not None else "the tail printed nothing"
        assert seen["event_kind"] == "run.finished" and seen["name"] == "word_count" and seen["ok"] is True
        recorded = {row[0] for row in ledger_rows(adopted, "SELECT id FROM executions")}
        assert seen["execution_id"] in recorded and ran["execution_id"] in recorded
    finally:
        tail.terminate()
        tail.wait(timeout=10)


def test_execution_nodes_work_on_a_postgres_ledger(tmp_path: Path, postgres_url: str) -> None:
    workspace, _ = init_workspace(tmp_path / "pg")
    config = workspace.root / "kavi.toml"
    config.write_text(config.read_text().replace('url = ".kavi/ledger.db"', f'url = "{postgres_url}"'))
    with Forge.opened(workspace.root) as forge:
        with execution(forge, "plan", "a goal", input_data={"goal": "count words"}) as plan:
            declined = record_execution(
                forge, "declined", "word_count", input_data={"text": "x"}, parent=plan.id, status="DECLINED"
            )
            plan.status = "WAITING"
        [listed] = list_executions(forge)
        tree = execution_tree(forge, plan.id)
    assert (listed["id"], listed["status"], listed["children"]) == (plan.id, "WAITING", 1)
    assert [(child["id"], child["status"], child["root_id"]) for child in tree["children"]] == [
        (declined, "DECLINED", plan.id)
    ]


def test_a_ledger_from_before_the_tree_is_upgraded_and_its_runs_are_roots(
    adopted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(store, "MIGRATIONS", MIGRATIONS[:4])
        Ledger.open(f"sqlite:///{tmp_path / 'old.db'}").close()
    upgraded = Ledger.open(f"sqlite:///{tmp_path / 'old.db'}")
    assert upgraded.schema_version() == [name for name, _ in MIGRATIONS]
    assert "m007_execution_tree" in upgraded.schema_version()
    upgraded.close()

    ran = run_cli("run-skill", "word_count", "--json", '{"text": "old row"}').json()
    with sqlite3.connect(adopted / ".kavi" / "ledger.db") as conn:  # what a run recorded before m007 looks like
        conn.execute("UPDATE executions SET root_id = NULL")
    [row] = run_cli("executions", "--json").json()["executions"]
    assert (row["id"], row["root_id"]) == (ran["execution_id"], ran["execution_id"])
    assert run_cli("show-execution", ran["execution_id"], "--json").json()["execution"]["children"] == []
    assert run_cli("replay", ran["execution_id"]).code == 0


@pytest.mark.parametrize(
    ("tamper", "where"),
    [
        ("UPDATE execution_nodes SET status = 'OK' WHERE kind = 'forge'", "status OK but event"),
        ("UPDATE execution_nodes SET parent_id = NULL WHERE kind = 'attempt'", "parent_id None differs"),
        ("UPDATE executions SET parent_id = NULL", "parent None but event"),
    ],
)
def test_audit_names_a_tree_rewritten_behind_the_events(adopted: Path, tamper: str, where: str) -> None:
    with Forge.opened(adopted) as forge, execution(forge, "forge", "word_count") as node:
        node.status = "ESCALATED"
        with execution(forge, "attempt", "word_count", parent=node.id):
            run_skill(forge.workspace, "word_count", {"text": "a"}, parent=node.id)
    assert run_cli("audit").code == 0
    with sqlite3.connect(adopted / ".kavi" / "ledger.db") as conn:
        conn.execute(tamper)
    audited = run_cli("audit", "--json")
    assert audited.code == 1
    assert any(where in finding["message"] for finding in audited.json()["findings"]), audited.stdout


def test_a_blocked_effect_is_shown_as_blocked(adopted: Path, tmp_path: Path) -> None:
    recorded = REPO / "tests" / "server" / "recordings" / "save_text" / "skills"
    files = {f"skills/{path.name}": path.read_text(encoding="utf-8") for path in recorded.glob("*.py")}
    promote_recorded(adopted, SAVE_TEXT, files, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    refused = run_cli("run-skill", "save_text", "--json", json.dumps({"folder": str(outside), "text": "escape"}))
    assert refused.code == 1 and "SideEffectViolation" in refused.stdout
    [(run_id,)] = ledger_rows(adopted, "SELECT id FROM executions WHERE name = 'save_text'")

    shown = run_cli("show-execution", run_id, "--json").json()["execution"]
    assert shown["status"] == "BLOCKED" and shown["blocked"].startswith("SideEffectViolation")
    assert shown["output"] is None and list(outside.iterdir()) == []
    text = run_cli("show-execution", run_id).stdout
    assert "BLOCKED" in text and "blocked: SideEffectViolation" in text
