"""`kavi replay`: a recorded execution runs again with its recorded inputs against the same TRUSTED
versions; a deterministic skill matches, a non-deterministic one (a real promoted skill that shuffles) is
reported and recorded as non-determinism; a revoked version or an input kept only as a preview is refused
before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kavi.stages.common import Forge
from kavi.stages.executions import execution, record_execution
from kavi.stages.run import INPUT_PREVIEW_CHARS, REPLAY_INPUT_MAX_BYTES, run_skill
from tests.stages.trees import adopt_repository_skills, ledger_rows, promote_shuffle_words
from tests.support import run_cli


@pytest.fixture
def adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = adopt_repository_skills(tmp_path / "ws")
    monkeypatch.setenv("KAVI_WORKSPACE", str(root))
    return root


def _run(payload: dict[str, object], skill: str = "word_count") -> str:
    ran = run_cli("run-skill", skill, "--json", json.dumps(payload))
    assert ran.code == 0, ran.stderr
    return str(ran.json()["execution_id"])


def test_a_deterministic_run_replays_to_the_same_output(adopted: Path) -> None:
    original = _run({"text": "the same three"})
    replayed = run_cli("replay", original)
    assert replayed.code == 0, replayed.stdout + replayed.stderr
    assert "same" in replayed.stdout and "every output matched" in replayed.stdout

    [(replay_id, status, replay_of)] = ledger_rows(
        adopted, "SELECT id, status, replay_of FROM execution_nodes WHERE kind = 'replay'"
    )
    assert (status, replay_of) == ("MATCHED", original)
    [(parent, output)] = ledger_rows(adopted, "SELECT parent_id, output_json FROM executions WHERE id != ?", original)
    assert parent == replay_id and json.loads(output) == {"count": 3}
    [(payload,)] = ledger_rows(adopted, "SELECT payload FROM events WHERE kind = 'replay.matched'")
    assert json.loads(payload)["original_id"] == original and json.loads(payload)["differed"] == []
    shown = run_cli("show-execution", original, "--json").json()["execution"]
    assert shown["replays"] == [{"id": replay_id, "status": "MATCHED", "created_at": shown["replays"][0]["created_at"]}]


def test_a_nondeterministic_skill_is_detected_and_recorded(adopted: Path, tmp_path: Path) -> None:
    promote_shuffle_words(adopted, tmp_path)
    words = " ".join(f"w{index}" for index in range(40))  # 40! orders: the replay matching by chance is moot
    original = _run({"text": words}, "shuffle_words")

    replayed = run_cli("replay", original, "--json")
    assert replayed.code == 1, replayed.stdout + replayed.stderr
    report = replayed.json()
    assert report["ok"] is False and report["matched"] is False
    [run] = report["runs"]
    assert run["original_id"] == original and run["matched"] is False
    assert sorted(run["replayed"]["output"]["text"].split()) == sorted(words.split())
    assert run["replayed"]["output"] != run["recorded"]["output"]

    [(payload, proposal_id)] = ledger_rows(
        adopted, "SELECT payload, proposal_id FROM events WHERE kind = 'replay.nondeterministic'"
    )
    verdict = json.loads(payload)
    assert verdict["original_id"] == original and verdict["replay_id"] == report["replay_id"]
    assert [item["original"] for item in verdict["differed"]] == [original]
    assert proposal_id == ledger_rows(adopted, "SELECT id FROM proposals WHERE name = 'shuffle_words'")[0][0]
    assert ledger_rows(adopted, "SELECT status FROM execution_nodes WHERE replay_of = ?", original) == [("DIFFERED",)]
    text = run_cli("replay", original)
    assert text.code == 1 and "DIFFERENT" in text.stdout and "NON-DETERMINISM" in text.stdout
    assert run_cli("audit").code == 0


def test_replaying_a_node_replays_every_skill_run_below_it(adopted: Path) -> None:
    with Forge.opened(adopted) as forge, execution(forge, "chat", "conversation") as node:
        run_skill(forge.workspace, "word_count", {"text": "a"}, parent=node.id)
        run_skill(forge.workspace, "word_count", {"text": "a b"}, parent=node.id)
    replayed = run_cli("replay", node.id, "--json")
    assert replayed.code == 0, replayed.stdout
    assert [(run["recorded"]["output"], run["matched"]) for run in replayed.json()["runs"]] == [
        ({"count": 1}, True),
        ({"count": 2}, True),
    ]
    tree = run_cli("show-execution", replayed.json()["replay_id"], "--json").json()["execution"]
    assert [child["output"]["value"] for child in tree["children"]] == [{"count": 1}, {"count": 2}]


def test_a_revoked_version_is_not_replayed(adopted: Path) -> None:
    original = _run({"text": "soon revoked"})
    assert run_cli("revoke", "word_count", "--reason", "miscounts hyphens").code == 0
    refused = run_cli("replay", original)
    assert refused.code == 1
    assert "word_count v1 is REVOKED: miscounts hyphens" in refused.stderr and "never another" in refused.stderr
    assert ledger_rows(adopted, "SELECT COUNT(*) FROM executions") == [(1,)]
    assert ledger_rows(adopted, "SELECT COUNT(*) FROM execution_nodes") == [(0,)]


def test_an_input_longer_than_its_preview_is_kept_whole_for_replay(adopted: Path) -> None:
    text = "word " * 2_000
    original = _run({"text": text})
    [(kept, digest)] = ledger_rows(adopted, "SELECT input_json, input_sha256 FROM executions")
    assert len(kept) == INPUT_PREVIEW_CHARS
    assert (adopted / ".kavi" / "artifacts" / digest[:2] / digest).read_text() == json.dumps({"text": text})
    assert ledger_rows(adopted, "SELECT kind FROM artifacts WHERE sha256 = ?", digest) == [("run-input",)]
    replayed = run_cli("replay", original, "--json")
    assert replayed.code == 0 and replayed.json()["runs"][0]["replayed"]["output"] == {"count": 2_000}
    assert run_cli("audit").code == 0


def test_an_input_kept_only_as_a_preview_is_refused(adopted: Path) -> None:
    payload = {"text": "w " * (REPLAY_INPUT_MAX_BYTES // 2 + 1)}
    source = adopted / "big.json"
    source.write_text(json.dumps(payload))
    ran = run_cli("run-skill", "word_count", "--input-file", str(source))
    assert ran.code == 0, ran.stderr
    refused = run_cli("replay", ran.json()["execution_id"])
    assert refused.code == 1 and "was not recorded whole" in refused.stderr and "record_input" in refused.stderr
    assert ledger_rows(adopted, "SELECT COUNT(*) FROM execution_nodes") == [(0,)]


def test_an_execution_that_ran_no_skill_has_nothing_to_replay(adopted: Path) -> None:
    with Forge.opened(adopted) as forge:
        declined = record_execution(
            forge, "declined", "word_count", input_data={"text": "x"}, parent=None, status="DECLINED"
        )
    refused = run_cli("replay", declined)
    assert refused.code == 1 and "ran no skill" in refused.stderr
