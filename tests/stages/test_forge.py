"""The forge loop: retry with the research in the next packet, stop at VERIFIED, escalate when it must."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kavi.demo import recording_of
from kavi.stages.common import Forge
from kavi.stages.forge import Budget, forge_skill
from kavi.stages.propose import propose_skill
from kavi.stages.research import build_trace

FAILING_TEST = (
    "from word_count import WordCount, WordCountInput\n\n\n"
    "def test_counts_characters_by_mistake() -> None:\n"
    "    assert WordCount().execute(WordCountInput(text='ab')).count == 2\n"
)


def _attempts(tmp_path: Path, *kinds: str) -> Path:
    """A recording with one folder per attempt: 'good' plays the shipped build, 'failing' breaks its test."""
    root = tmp_path / "recording"
    for number, kind in enumerate(kinds, start=1):
        target = root / f"attempt-{number}"
        shutil.copytree(recording_of("word_count"), target, ignore=shutil.ignore_patterns("__pycache__"))
        if kind == "failing":
            (target / "skills" / "test_word_count.py").write_text(FAILING_TEST)
        elif kind == "escape":
            (target / "kavi.toml").write_text("# builder was here\n")
    return root


def _propose(forge: Forge) -> str:
    return propose_skill(
        forge,
        name="word_count",
        description="Count words",
        side_effect="READ_ONLY",
        io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
    ).proposal_id


def _packet_of(forge: Forge, build_id: str) -> dict[str, object]:
    build = build_trace(forge, build_id)["build"]
    return json.loads(forge.store.get(build["packet_sha256"]))


def test_a_failure_then_a_fix_ends_verified_with_the_facts_in_the_second_packet(forge: Forge, tmp_path: Path) -> None:
    proposal = _propose(forge)
    result = forge_skill(
        forge, proposal, builder_name="replay", builder_options={"source": str(_attempts(tmp_path, "failing", "good"))}
    )
    assert result.status == "VERIFIED" and len(result.attempts) == 2
    assert result.attempts[0]["kind"] == "VERIFY_TEST"
    second = _packet_of(forge, result.attempts[1]["build_id"])
    failure = second["previous_failure"]
    assert isinstance(failure, dict) and failure["kind"] == "VERIFY_TEST"
    assert "test_counts_characters_by_mistake" in json.dumps(failure["facts"])
    assert "pytest" in failure["facts"]["gate_output"]
    assert _packet_of(forge, result.attempts[0]["build_id"])["previous_failure"] is None


def test_the_same_failure_twice_escalates(forge: Forge, tmp_path: Path) -> None:
    proposal = _propose(forge)
    result = forge_skill(
        forge,
        proposal,
        builder_name="replay",
        builder_options={"source": str(_attempts(tmp_path, "failing", "failing", "good"))},
    )
    assert result.status == "ESCALATED" and "twice in a row" in result.reason
    assert len(result.attempts) == 2


def test_leaving_the_allowlist_escalates_at_once(forge: Forge, tmp_path: Path) -> None:
    proposal = _propose(forge)
    result = forge_skill(
        forge, proposal, builder_name="replay", builder_options={"source": str(_attempts(tmp_path, "escape", "good"))}
    )
    assert result.status == "ESCALATED" and "GATE_VIOLATION" in result.reason
    assert len(result.attempts) == 1


def test_a_spent_budget_escalates(forge: Forge, tmp_path: Path) -> None:
    proposal = _propose(forge)
    result = forge_skill(
        forge,
        proposal,
        builder_name="replay",
        budget=Budget(max_attempts=1),
        builder_options={"source": str(_attempts(tmp_path, "failing", "good"))},
    )
    assert result.status == "ESCALATED" and "budget of 1 attempt" in result.reason
    with forge.ledger.reading() as session:
        from kavi.stages.common import get_proposal

        assert get_proposal(session, proposal).status == "ESCALATED"
