"""The build packet carries a complete example skill and the gates' exact settings, read from the gates."""

from __future__ import annotations

import shlex

import pytest

from kavi.demo import recording_of
from kavi.gates import lint
from kavi.gates.typecheck import mypy_config
from kavi.ledger.models import Proposal
from kavi.spec import SkillSpec
from kavi.stages.build import make_packet
from kavi.stages.common import Forge
from kavi.stages.propose import propose_skill


def _packet_for(forge: Forge, name: str) -> tuple[SkillSpec, dict[str, str], str]:
    proposed = propose_skill(
        forge,
        name=name,
        description="Count letters",
        side_effect="READ_ONLY",
        io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
    )
    with forge.ledger.reading() as session:
        proposal = session.get(Proposal, proposed.proposal_id)
        assert proposal is not None
        spec = forge.spec_of(proposal)
        assert isinstance(spec, SkillSpec)
        packet = make_packet(proposal, spec, 1)
    return spec, packet.guide, packet.render_markdown()


def test_the_packet_holds_the_gate_settings_and_a_complete_example(forge: Forge) -> None:
    spec, guide, markdown = _packet_for(forge, "letter_count")
    files = [spec.skill_path, spec.test_path]
    assert guide["ruff"] == shlex.join(["ruff", "check", *lint.ruff_settings("letter_count"), *files])
    assert "--select E,F,W,I,B,UP,S,SIM,RUF,ASYNC,BLE,PIE,T10" in guide["ruff"]
    assert 'lint.isort.known-first-party = ["letter_count"]' in guide["ruff"]
    assert guide["mypy"] == mypy_config(spec) and "strict = True" in guide["mypy"]
    shipped = recording_of("word_count") / "skills"
    assert guide["example_skill"] == (shipped / "word_count.py").read_text()
    assert guide["example_test"] == (shipped / "test_word_count.py").read_text()
    for text in (guide["ruff"], guide["mypy"].strip(), guide["example_skill"].strip(), "known-third-party"):
        assert text in markdown
    assert "```ini" in markdown and "```python" in markdown


def test_the_settings_come_from_the_gate_module_not_a_copy(forge: Forge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lint, "RULES", "E,F")
    _, guide, _ = _packet_for(forge, "letter_count")
    assert "--select E,F " in guide["ruff"]


def test_the_example_is_never_the_task_itself(forge: Forge) -> None:
    _, guide, _ = _packet_for(forge, "word_count")
    assert guide["example_name"] == "write_note" and "class WordCount" not in guide["example_skill"]


def test_the_adviser_is_not_shown_the_guide_and_may_not_change_it(forge: Forge) -> None:
    from kavi.research import FailureKind, ResearchNote, advice_prompt, check_advice

    proposed = propose_skill(
        forge,
        name="letter_count",
        description="Count letters",
        side_effect="READ_ONLY",
        io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
    )
    with forge.ledger.reading() as session:
        proposal = session.get(Proposal, proposed.proposal_id)
        assert proposal is not None
        packet = make_packet(proposal, forge.spec_of(proposal), 1)
    prompt = advice_prompt(ResearchNote(FailureKind.VERIFY_LINT, "lint"), packet)
    assert packet.guide["example_skill"].strip() not in prompt
    revised = {k: v for k, v in packet.to_json().items() if k != "guide"}
    assert check_advice(packet, {**revised, "advice": "sort the imports"}) == []
    tampered = {**packet.to_json(), "guide": {**packet.guide, "mypy": "[mypy]\nstrict = False\n"}}
    assert check_advice(packet, tampered) == ["guide must not change"]
