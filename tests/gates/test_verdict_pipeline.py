"""The parent's verdict through the real pipeline (`kavi propose-skill` → `build-skill` → `verify-skill` →
`promote-skill` → `run-skill`, through the CLI entry point), at FULL and at FALLBACK: forged verdicts,
results that never come, pytest bookkeeping rewritten by tests, hidden examples, schema constraints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kavi.sandbox import bwrap
from kavi.workspace import Workspace
from tests.gates import verdict_candidates as cand
from tests.support import run_cli

IO = '{"input": {"text": "str"}, "output": {"count": "int"}}'
VISIBLE = [
    {"input": {"text": "a b"}, "output": {"count": 2}},
    {"input": {"text": "one two three"}, "output": {"count": 3}},
]
HIDDEN = [
    {"input": {"text": "zebra quagga okapi tapir"}, "output": {"count": 4}},
    {"input": {"text": "narwhal"}, "output": {"count": 1}},
]
HIDDEN_MARKERS = ("zebra", "quagga", "okapi", "tapir", "narwhal")


@pytest.fixture(params=["full", "fallback"])
def level(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "full" and not bwrap.probe_bwrap().works:
        pytest.skip("bubblewrap cannot run here")
    monkeypatch.setenv("KAVI_ISOLATION", request.param)
    return str(request.param)


def _recording(tmp_path: Path, skill: str, tests: str = cand.HONEST_TESTS, name: str = "word_count") -> Path:
    folder = tmp_path / f"rec-{abs(hash((skill, tests)))}"
    (folder / "skills").mkdir(parents=True)
    (folder / "skills" / f"{name}.py").write_text(skill)
    (folder / "skills" / f"test_{name}.py").write_text(tests)
    return folder


def _propose(*extra: str, examples: list[dict[str, object]] = VISIBLE) -> str:
    result = run_cli(
        "propose-skill",
        "--name",
        "word_count",
        "--desc",
        "Count words",
        "--side-effect",
        "READ_ONLY",
        "--io-schema-json",
        IO,
        "--examples-json",
        json.dumps(examples),
        *extra,
        "--json",
    )
    assert result.code == 0, result.stdout + result.stderr
    return str(result.json()["proposal_id"])


def _build_and_verify(proposal: str, recording: Path) -> dict[str, object]:
    built = run_cli("build-skill", proposal, "--builder", "replay", "--replay-from", str(recording), "--json")
    assert built.code == 0, built.stdout + built.stderr
    verified = run_cli("verify-skill", proposal, "--json")
    data: dict[str, object] = verified.json()
    return data


def _gates(verified: dict[str, object]) -> dict[str, dict[str, object]]:
    return {str(gate["gate"]): gate for gate in verified["gates"]}  # type: ignore[attr-defined, index]


@pytest.mark.slow
def test_forged_verdicts_missing_results_and_rewritten_pytest_fail_verify_skill(
    workspace: Workspace, tmp_path: Path, level: str
) -> None:
    """Hostile candidates of one proposal, each verified by `kavi verify-skill`."""
    proposal = _propose()
    cases = [
        (cand.FORGED_VERDICT_THEN_EXIT, cand.HONEST_TESTS, "examples", "2 of 2 example(s) failed"),
        (cand.EXITS_ON_THREE_WORDS, cand.HONEST_TESTS, "examples", "1 of 2 example(s) failed"),
        (cand.AFTER_THE_VERDICT, cand.HONEST_TESTS, "examples", "2 of 2 example(s) failed"),
        (cand.HONEST_SKILL, cand.SKIPS_LATER_TESTS, "pytest", "never ran"),
        (cand.HONEST_SKILL, cand.RESETS_FAILURES, "pytest", "1 of the builder's 2 test(s) failed"),
    ]
    for skill, tests, gate, needle in cases:
        verified = _build_and_verify(proposal, _recording(tmp_path, skill, tests))
        assert verified["status"] == "FAILED", verified
        judged = _gates(verified)[gate]
        assert judged["status"] == "fail" and needle in str(judged["summary"]), judged
        assert judged["isolation"] == level
    shown = run_cli("show", proposal, "--json").json()
    assert shown["proposal"]["status"] == "VERIFY_FAILED"


def test_hidden_examples_are_validated_like_visible_ones(workspace: Workspace) -> None:
    bad = json.dumps([{"input": {"text": "x"}, "output": {"count": "many"}}])
    refused = run_cli(
        "propose-skill", "--name", "word_count", "--desc", "d", "--side-effect", "READ_ONLY",
        "--io-schema-json", IO, "--hidden-examples-json", bad,
    )  # fmt: skip
    assert refused.code != 0 and "hidden example 0 output does not match the schema" in refused.stdout + refused.stderr


@pytest.mark.slow
def test_hidden_examples_end_to_end(workspace: Workspace, tmp_path: Path, level: str) -> None:
    proposal = _propose("--hidden-examples-json", json.dumps(HIDDEN))

    shown = run_cli("show", proposal, "--json").json()
    assert shown["hidden_examples"] == {"count": 2}
    assert not any(marker in json.dumps(shown) for marker in HIDDEN_MARKERS)

    # A build cannot see them: nothing in its sandbox or its packet mentions one.
    waiting = run_cli("build-skill", proposal, "--builder", "manual", "--json").json()
    assert waiting["status"] == "AWAITING_INPUT"
    sandbox = Path(waiting["sandbox"])
    seen = [path for path in sandbox.rglob("*") if path.is_file()]
    assert any(path.name == "BUILD_PACKET.md" for path in seen)
    for path in seen:
        data = path.read_bytes()
        assert not any(marker.encode() in data for marker in HIDDEN_MARKERS), path
    assert not (sandbox / ".kavi").exists()

    # A candidate that special-cases the visible examples passes them and fails the hidden ones.
    resumed = run_cli(
        "build-skill", proposal, "--resume", "--from", str(_recording(tmp_path, cand.SPECIAL_CASES_VISIBLE))
    )
    assert resumed.code == 0, resumed.stdout
    verified = run_cli("verify-skill", proposal, "--json").json()
    examples = _gates(verified)["examples"]
    assert verified["status"] == "FAILED" and examples["status"] == "fail", examples
    assert examples["summary"] == "2 of 4 example(s) (2 hidden) failed"
    assert not any(marker in json.dumps(verified) for marker in HIDDEN_MARKERS)
    assert run_cli("promote-skill", proposal, "--approver", "ci").code != 0

    # The honest candidate passes all four, is promoted and runs; only then does `show` print them.
    verified = _build_and_verify(proposal, _recording(tmp_path, cand.HONEST_SKILL))
    assert verified["status"] == "PASSED", verified
    assert _gates(verified)["examples"]["summary"] == "4 of 4 example(s) (2 hidden) match"
    promoted = run_cli("promote-skill", proposal, "--approver", "ci", "--json")
    assert promoted.code == 0, promoted.stdout + promoted.stderr
    ran = run_cli("run-skill", "word_count", "--json", '{"text": "zebra quagga"}')
    assert ran.code == 0 and ran.json()["output"] == {"count": 2}, ran.stdout + ran.stderr
    shown = run_cli("show", proposal, "--json").json()
    assert shown["hidden_examples"]["count"] == 2
    assert [example["input"]["text"] for example in shown["hidden_examples"]["examples"]] == [
        "zebra quagga okapi tapir",
        "narwhal",
    ]


CONSTRAINED_IO = {
    "input": {
        "type": "object",
        "properties": {"width": {"type": "integer", "minimum": 10, "maximum": 200}},
    },
    "output": {"type": "object", "properties": {"area": {"type": "integer"}}},
}
CONSTRAINED_SKILL = '''"""The area of a square whose side is bounded by the spec."""

from __future__ import annotations

from kavi.skill import SideEffect, Skill
from pydantic import BaseModel, Field


class SquareAreaInput(BaseModel):
    width: int = Field(ge=10, le=200)


class SquareAreaOutput(BaseModel):
    area: int


class SquareArea(Skill[SquareAreaInput, SquareAreaOutput]):
    name = "square_area"
    side_effect = SideEffect.READ_ONLY
    input_model = SquareAreaInput
    output_model = SquareAreaOutput

    def execute(self, data: SquareAreaInput) -> SquareAreaOutput:
        return SquareAreaOutput(area=data.width * data.width)
'''
CONSTRAINED_TESTS = '''import pytest
from pydantic import ValidationError

from square_area import SquareArea, SquareAreaInput


def test_area() -> None:
    assert SquareArea().execute(SquareAreaInput(width=12)).area == 144


def test_width_is_bounded() -> None:
    with pytest.raises(ValidationError):
        SquareAreaInput(width=9)
'''


@pytest.mark.slow
def test_a_json_schema_constraint_is_carried_by_the_spec_and_met_by_field_bounds(
    workspace: Workspace, tmp_path: Path, level: str
) -> None:
    proposed = run_cli(
        "propose-skill",
        "--name",
        "square_area",
        "--desc",
        "Area of a square",
        "--side-effect",
        "READ_ONLY",
        "--io-schema-json",
        json.dumps(CONSTRAINED_IO),
        "--examples-json",
        json.dumps([{"input": {"width": 10}, "output": {"area": 100}}, {"input": {"width": 201}, "error": "input"}]),
        "--json",
    )
    assert proposed.code == 0, proposed.stdout + proposed.stderr
    proposal = proposed.json()["proposal_id"]
    spec = run_cli("show", proposal, "--json").json()["spec"]
    assert spec["input_schema"]["properties"]["width"] == {"type": "integer", "minimum": 10, "maximum": 200}

    recording = _recording(tmp_path, CONSTRAINED_SKILL, CONSTRAINED_TESTS, name="square_area")
    verified = _build_and_verify(proposal, recording)
    assert verified["status"] == "PASSED", json.dumps(_gates(verified), indent=1)[:4000]

    # Bounds that differ from the spec's are a shape mismatch, caught on the live model's JSON Schema.
    loose = _recording(tmp_path, CONSTRAINED_SKILL.replace("le=200", "le=500"), CONSTRAINED_TESTS, name="square_area")
    mismatch = _build_and_verify(proposal, loose)
    invariants = _gates(mismatch)["invariants"]
    assert invariants["status"] == "fail" and "input_model does not match" in str(invariants["summary"])

    _build_and_verify(proposal, recording)
    assert run_cli("promote-skill", proposal, "--approver", "ci").code == 0
    ran = run_cli("run-skill", "square_area", "--json", '{"width": 15}')
    assert ran.code == 0 and ran.json()["output"] == {"area": 225}, ran.stdout + ran.stderr
    refused = run_cli("run-skill", "square_area", "--json", '{"width": 5}')
    assert refused.code != 0 and "width" in refused.stdout + refused.stderr


PRINTS_A_RESPONSE = cand.HONEST_SKILL.replace(
    cand.RETURN, "        print('{\"ok\": true, \"output\": {\"count\": 999}}')\n" + cand.RETURN
)


@pytest.mark.slow
def test_a_printed_response_is_never_run_skills_output(workspace: Workspace, tmp_path: Path, level: str) -> None:
    """Printing is allowed and harmless: a skill's stdout is data, at verification and at run-skill."""
    proposal = _propose()
    verified = _build_and_verify(proposal, _recording(tmp_path, PRINTS_A_RESPONSE))
    assert verified["status"] == "PASSED", json.dumps(_gates(verified), indent=1)[:3000]
    assert run_cli("promote-skill", proposal, "--approver", "ci").code == 0
    ran = run_cli("run-skill", "word_count", "--json", '{"text": "a b c"}')
    assert ran.code == 0, ran.stdout + ran.stderr
    assert ran.json()["output"] == {"count": 3} and "999" not in ran.stdout
    assert ran.json()["isolation"] == level
