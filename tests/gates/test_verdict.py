"""The gates judge in the parent: what a candidate prints, how it exits, what it writes on descriptors or
leaves to run after its result, and what its tests do to pytest's bookkeeping cannot change a verdict.
Each case runs at FULL (bubblewrap) and at FALLBACK."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kavi.gates.base import GateContext, GateStatus
from kavi.gates.examples import ExamplesGate
from kavi.gates.invariants import InvariantsGate
from kavi.gates.tests import PytestGate
from kavi.sandbox import bwrap
from kavi.spec import SkillSpec, make_spec, parse_hidden_examples
from tests.gates import verdict_candidates as cand

EXAMPLES = [
    {"input": {"text": "a b"}, "output": {"count": 2}},
    {"input": {"text": "one two three"}, "output": {"count": 3}},
]


def _spec(side_effect: str = "READ_ONLY", **extra: object) -> SkillSpec:
    return make_spec(
        name="word_count",
        description="Count words",
        side_effect=side_effect,
        io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
        examples=EXAMPLES,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["full", "fallback"])
def level(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "full" and not bwrap.probe_bwrap().works:
        pytest.skip("bubblewrap cannot run here")
    monkeypatch.setenv("KAVI_ISOLATION", request.param)
    return str(request.param)


def _context(tmp_path: Path, skill: str, tests: str = cand.HONEST_TESTS, spec: SkillSpec | None = None) -> GateContext:
    spec = spec or _spec()
    sandbox = tmp_path / "sandbox"
    (sandbox / "skills").mkdir(parents=True)
    (sandbox / spec.skill_path).write_text(skill)
    (sandbox / spec.test_path).write_text(tests)
    return GateContext(spec=spec, sandbox=sandbox, cache_dir=tmp_path / "cache", timeout_s=60)


def test_a_forged_verdict_on_stdout_and_sys_exit_fail_every_example(tmp_path: Path, level: str) -> None:
    result = ExamplesGate().run(_context(tmp_path, cand.FORGED_VERDICT_THEN_EXIT))
    assert result.status is GateStatus.FAIL, result.report
    assert result.summary == "2 of 2 example(s) failed"
    assert all("SystemExit" in failure["detail"] for failure in result.facts["failed_examples"])
    assert result.isolation == level


def test_forged_results_on_every_descriptor_do_not_pass_a_wrong_answer(tmp_path: Path, level: str) -> None:
    result = ExamplesGate().run(_context(tmp_path, cand.FORGED_ON_EVERY_FD))
    assert result.status is GateStatus.FAIL, result.report
    assert result.facts["results"] == 2 and len(result.facts["failed_examples"]) == 2


def test_an_example_without_a_result_fails_and_is_counted(tmp_path: Path, level: str) -> None:
    result = ExamplesGate().run(_context(tmp_path, cand.EXITS_ON_THREE_WORDS))
    assert result.status is GateStatus.FAIL, result.report
    assert result.summary == "1 of 2 example(s) failed"
    (failure,) = result.facts["failed_examples"]
    assert failure["index"] == 1 and "without a result" in failure["detail"]


def test_code_left_to_run_after_the_result_never_runs(tmp_path: Path, level: str) -> None:
    spec = _spec("FILE_WRITE", write_roots=("out",))
    context = _context(tmp_path, cand.AFTER_THE_VERDICT, spec=spec)
    result = ExamplesGate().run(context)
    assert result.status is GateStatus.FAIL and result.summary == "2 of 2 example(s) failed", result.report
    assert (context.sandbox / "out").is_dir(), "the write root exists, so a late write would have landed"
    assert list((context.sandbox / "out").iterdir()) == []


def test_an_honest_skill_passes_both_live_gates(tmp_path: Path, level: str) -> None:
    context = _context(tmp_path, cand.HONEST_SKILL)
    examples, invariants = ExamplesGate().run(context), InvariantsGate().run(context)
    assert examples.status is GateStatus.PASS and examples.summary == "2 of 2 example(s) match", examples.report
    assert invariants.status is GateStatus.PASS, invariants.report
    assert examples.facts["evidence"] == "kavi"


def test_hidden_examples_run_too_and_say_nothing_about_themselves(tmp_path: Path, level: str) -> None:
    spec = _spec()
    hidden = parse_hidden_examples([{"input": {"text": "secret hidden words here"}, "output": {"count": 4}}], spec)
    context = replace(_context(tmp_path, cand.SPECIAL_CASES_VISIBLE, spec=spec), hidden_examples=hidden)
    result = ExamplesGate().run(context)
    assert result.status is GateStatus.FAIL and result.summary == "1 of 3 example(s) (1 hidden) failed"
    assert result.facts["failed_hidden"] == 1 and result.facts["failed_examples"] == []
    assert "secret" not in result.report and "secret" not in repr(result.facts)


@pytest.mark.parametrize(
    ("tests", "needle"),
    [
        (cand.SKIPS_LATER_TESTS, "test_z_wrong was reported passed but its test function never ran"),
        (cand.RESETS_FAILURES, "1 of the builder's 2 test(s) failed"),
        (cand.UNREGISTERS_KAVI, "test_z_wrong was collected but never reported"),
        (cand.SELF_PLUGIN, "test_z_wrong was reported passed but its test function never ran"),
    ],
    ids=["plugin-skips-later-tests", "resets-testsfailed", "unregisters-kavi", "module-is-its-own-plugin"],
)
def test_tests_cannot_rewrite_the_pytest_verdict(tmp_path: Path, level: str, tests: str, needle: str) -> None:
    result = PytestGate().run(_context(tmp_path, cand.HONEST_SKILL, tests=tests))
    assert result.status is GateStatus.FAIL, result.report
    assert needle in result.summary, result.summary
    assert "skills/test_word_count.py::test_z_wrong" in result.facts["failing_tests"] or (
        "test_a_wrong" in str(result.facts["failing_tests"])
    )
    assert result.facts["evidence"] == "builder"


def test_the_builders_tests_pass_as_the_builders_evidence(tmp_path: Path, level: str) -> None:
    result = PytestGate().run(_context(tmp_path, cand.HONEST_SKILL))
    assert result.status is GateStatus.PASS, result.report
    assert result.facts["evidence"] == "builder" and result.facts["collected"] == result.facts["passed"] == 3
    assert "the builder's 3 test(s) passed" in result.summary


def test_the_gate_and_its_plugin_agree_on_the_channel() -> None:
    from kavi.gates import tests
    from kavi.runtime import pytest_report

    assert tests.CHANNEL_ENV == pytest_report.CHANNEL_ENV
