"""Advice: a model's revised packet is taken only when it widens nothing; any failure gives None."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from typing import Any

import pytest

from kavi.builders.base import BuildPacket
from kavi.builders.openai_compat import OpenAIOptions
from kavi.research import (
    FailureKind,
    ResearchNote,
    advise,
    check_advice,
    parse_advice_answer,
    request_advice,
)
from tests.builders.stub_openai import Reply, Turn, serve

NOTE = ResearchNote(
    FailureKind.VERIFY_LINT,
    "VERIFY_LINT: failing gate(s) ruff",
    {"rules": ["F401"], "errors": [{"file": "skills/word_count.py", "line": 1, "rule": "F401"}]},
)


@pytest.fixture
def packet() -> BuildPacket:
    spec = {
        "name": "word_count",
        "description": "Count the words of a text.",
        "side_effect": "READ_ONLY",
        "write_roots": [],
        "allow_hosts": [],
        "secrets": [],
        "executables": [],
        "examples": [{"input": {"text": "a b"}, "output": {"count": 2}}],
    }
    return BuildPacket(
        proposal_id="prop-1",
        attempt=2,
        spec=spec,
        allowed_paths=("skills/word_count.py", "skills/test_word_count.py"),
        rules=("Subclass kavi.skill.Skill.",),
        previous_failure=NOTE.to_json(),
    )


def revised(packet: BuildPacket, **changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(packet.to_json()))
    data.update(changes)
    return data


def test_advice_and_added_rules_are_allowed(packet: BuildPacket) -> None:
    rules = [*packet.rules, "Remove unused imports."]
    assert check_advice(packet, revised(packet, advice="Drop `import os`.", rules=rules)) == []
    assert check_advice(packet, {"advice": "only the advice"}) == []


@pytest.mark.parametrize(
    ("spec_change", "words"),
    [
        ({"side_effect": "NETWORK"}, "the side-effect class changed"),
        ({"write_roots": ["data"]}, "the write roots changed"),
        ({"allow_hosts": ["example.org"]}, "the allowed hosts changed"),
        ({"secrets": ["API_TOKEN"]}, "the secrets changed"),
        ({"executables": ["curl"]}, "the executables changed"),
        ({"examples": []}, "frozen spec field 'examples' changed"),
        ({"extra": 1}, "frozen spec field 'extra' changed"),
    ],
)
def test_spec_widening_is_refused(packet: BuildPacket, spec_change: dict[str, Any], words: str) -> None:
    spec = {**packet.spec, **spec_change}
    violations = check_advice(packet, revised(packet, spec=spec))
    assert len(violations) == 1 and violations[0].startswith(words)


def test_other_refusals(packet: BuildPacket) -> None:
    wider = [*packet.allowed_paths, "setup.py"]
    assert check_advice(packet, revised(packet, allowed_paths=wider)) == [
        "the allowlist changed (added ['setup.py'], removed [])"
    ]
    assert check_advice(packet, revised(packet, rules=["Anything goes."])) == [
        "the existing rules must stay, unchanged and first; only additions are allowed"
    ]
    assert check_advice(packet, revised(packet, attempt=9)) == ["attempt must not change"]
    assert check_advice(packet, revised(packet, previous_failure=None)) == ["previous_failure must not change"]
    assert check_advice(packet, {"tools": ["Bash"]}) == ["unknown field 'tools'"]
    assert check_advice(packet, revised(packet, advice=["x"])) == ["advice must be a text"]
    assert check_advice(packet, revised(packet, rules=[*packet.rules, "r" * 600])) == [
        "a new rule is longer than 500 characters"
    ]
    assert check_advice(packet, ["not", "an", "object"]) == ["the revised packet is not a JSON object"]
    assert check_advice(packet, revised(packet, spec="gone")) == ["the spec must stay an object, unchanged"]


def test_parse_advice_answer_reads_fenced_and_bare_json() -> None:
    assert parse_advice_answer('Sure:\n```json\n{"advice": "x"}\n```\n') == {"advice": "x"}
    assert parse_advice_answer('here {"advice": "y"} done') == {"advice": "y"}
    with pytest.raises(ValueError):
        parse_advice_answer("no json here")


def _options(url: str) -> OpenAIOptions:
    return OpenAIOptions(model="adviser", base_url=url, timeout_s=5)


def test_advice_from_a_model(packet: BuildPacket) -> None:
    answer = revised(packet, advice="Remove `import os`.", rules=[*packet.rules, "No unused imports."])

    def scenario(turn: Turn) -> Reply:
        return Reply(text=f"Here it is:\n```json\n{json.dumps(answer)}\n```")

    with serve(scenario) as stub:
        advice = advise(NOTE, packet, _options(stub.url), environ={})

    assert advice is not None
    assert advice.text == "Remove `import os`."
    assert advice.added_rules == ("No unused imports.",)
    assert advice.packet == replace(packet, advice="Remove `import os`.", rules=(*packet.rules, "No unused imports."))
    prompt = stub.requests[0]["messages"][0]["content"]
    assert "VERIFY_LINT" in prompt and "word_count" in prompt


def test_widening_advice_is_refused(packet: BuildPacket) -> None:
    answer = revised(packet, spec={**packet.spec, "side_effect": "NETWORK"}, advice="Use the web.")
    with serve(lambda turn: Reply(text=json.dumps(answer))) as stub:
        advice, why = request_advice(NOTE, packet, _options(stub.url), environ={})
    assert advice is None
    assert why.startswith("advice refused: the side-effect class changed")


def test_server_down_gives_no_advice(packet: BuildPacket) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    advice, why = request_advice(NOTE, packet, _options(f"http://127.0.0.1:{port}/v1"), environ={})
    # the builder's probe finds the dead server at once and says where it looked
    assert advice is None and "not reachable" in why and f"127.0.0.1:{port}" in why


@pytest.mark.parametrize("reply", [Reply(text="I cannot help with that."), Reply(raw=b"garbage"), Reply(status=500)])
def test_bad_answers_give_no_advice(packet: BuildPacket, reply: Reply) -> None:
    with serve(lambda turn: reply) as stub:
        assert advise(NOTE, packet, _options(stub.url), environ={}) is None


def test_no_model_configured_gives_no_advice(packet: BuildPacket) -> None:
    advice, why = request_advice(NOTE, packet, OpenAIOptions(), environ={})
    assert advice is None and "KAVI_OPENAI_MODEL" in why


def test_stalled_adviser_is_bounded(packet: BuildPacket) -> None:
    options = OpenAIOptions(model="adviser", timeout_s=1)
    with serve(lambda turn: Reply(stall=True)) as stub:
        options = options.model_copy(update={"base_url": stub.url})
        advice, why = request_advice(NOTE, packet, options, environ={})
    assert advice is None and "Timeout" in why
