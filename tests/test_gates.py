"""Each gate with a passing fixture and the failures it exists to catch."""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.gates.base import GateContext, GateStatus
from kavi.gates.examples import ExamplesGate
from kavi.gates.invariants import InvariantsGate
from kavi.gates.lint import RuffGate
from kavi.gates.tests import PytestGate
from kavi.gates.typecheck import MypyGate
from kavi.spec import make_spec

SPEC = make_spec(
    name="word_count",
    description="Count words",
    side_effect="READ_ONLY",
    io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
    examples=[{"input": {"text": "a b"}, "output": {"count": 2}}, {"input": {"text": 1}, "error": "SkillInputError"}],
)
GOOD_SKILL = (recording_of("word_count") / "skills" / "word_count.py").read_text()
GOOD_TEST = (recording_of("word_count") / "skills" / "test_word_count.py").read_text()


def context(tmp_path: Path, skill: str = GOOD_SKILL, test: str = GOOD_TEST) -> GateContext:
    sandbox = tmp_path / "sandbox"
    (sandbox / "skills").mkdir(parents=True)
    (sandbox / SPEC.skill_path).write_text(skill)
    (sandbox / SPEC.test_path).write_text(test)
    return GateContext(spec=SPEC, sandbox=sandbox, cache_dir=tmp_path / "cache", timeout_s=60)


@pytest.mark.parametrize(
    "gate", [RuffGate(), MypyGate(), PytestGate(), ExamplesGate(), InvariantsGate()], ids=lambda gate: gate.name
)
def test_an_honest_skill_passes(tmp_path: Path, gate: object) -> None:
    result = gate.run(context(tmp_path))  # type: ignore[attr-defined]
    assert result.status is GateStatus.PASS, result.report


def test_ruff_fails_on_lint(tmp_path: Path) -> None:
    result = RuffGate().run(context(tmp_path, skill="import os\n" + GOOD_SKILL))
    assert result.status is GateStatus.FAIL
    assert any("F401" in line for line in result.facts["findings"])


def test_mypy_is_strict_on_the_skill(tmp_path: Path) -> None:
    untyped = GOOD_SKILL.replace(
        "def execute(self, data: WordCountInput) -> WordCountOutput:", "def execute(self, data):"
    )
    result = MypyGate().run(context(tmp_path, skill=untyped))
    assert result.status is GateStatus.FAIL
    assert any("no-untyped-def" in line for line in result.facts["errors"])


def test_mypy_catches_a_wrong_return_type(tmp_path: Path) -> None:
    wrong = GOOD_SKILL.replace("return WordCountOutput(count=len(data.text.split()))", "return len(data.text)")
    result = MypyGate().run(context(tmp_path, skill=wrong))
    assert result.status is GateStatus.FAIL and "return-value" in result.report


def test_pytest_fails_on_a_failing_test(tmp_path: Path) -> None:
    failing = (
        GOOD_TEST
        + "\n\ndef test_wrong() -> None:\n    assert WordCount().execute(WordCountInput(text='a')).count == 2\n"
    )
    result = PytestGate().run(context(tmp_path, test=failing))
    assert result.status is GateStatus.FAIL
    assert result.facts["failing_tests"] == ["skills/test_word_count.py::test_wrong"]
    assert result.isolation


def test_pytest_fails_when_there_is_no_test(tmp_path: Path) -> None:
    result = PytestGate().run(context(tmp_path, test="from word_count import WordCount\n"))
    assert result.status is GateStatus.FAIL and "no passing test" in result.summary


def test_examples_fail_on_a_wrong_answer_even_if_the_tests_patch_the_skill(tmp_path: Path) -> None:
    wrong = GOOD_SKILL.replace("len(data.text.split())", "len(data.text.split()) + 1")
    patching_test = (
        "import word_count\n\n"
        "word_count.WordCount.execute = lambda self, data: word_count.WordCountOutput(count=2)  # type: ignore\n\n"
        "def test_ok() -> None:\n    assert True\n"
    )
    result = ExamplesGate().run(context(tmp_path, skill=wrong, test=patching_test))
    assert result.status is GateStatus.FAIL
    assert result.facts["failed_examples"][0]["got"] == {"count": 3}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda s: s + "\nprint('import-time side effect')\n", "runs code on import"),
        (lambda s: s.replace('name = "word_count"', 'name = "other"'), "name = 'word_count'"),
        (lambda s: s.replace("SideEffect.READ_ONLY", "SideEffect.NETWORK"), "side_effect = SideEffect.READ_ONLY"),
        (lambda s: s.replace("class WordCount(", "class Counter("), "the spec requires WordCount"),
        (lambda s: s + "\n\nclass Second(Skill[WordCountInput, WordCountOutput]):\n    pass\n", "exactly one"),
        (lambda s: s.replace("    count: int", "    count: int\n    words: list[str]"), "output_model does not match"),
        (lambda s: s.replace("    text: str", "    text: int"), "input_model does not match"),
        (
            lambda s: s.replace("class WordCountInput(BaseModel):", "@staticmethod\nclass WordCountInput(BaseModel):"),
            "decorated",
        ),
    ],
)
def test_invariants_catch_a_skill_of_the_wrong_shape(tmp_path: Path, change: object, needle: str) -> None:
    result = InvariantsGate().run(context(tmp_path, skill=change(GOOD_SKILL)))  # type: ignore[operator]
    assert result.status is GateStatus.FAIL
    assert needle in result.report, result.report
