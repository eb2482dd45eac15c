"""The failure classifier on report texts taken from real ruff, mypy and pytest runs."""

from __future__ import annotations

import json

import pytest

from kavi.research import (
    FailureKind,
    ResearchNote,
    classify_failure,
    gate_kind,
    parse_mypy,
    parse_pytest,
    parse_ruff,
)

# ruff 0.x, `ruff check --output-format concise` on a candidate with an unused import and variable
RUFF_CONCISE = """\
skills/word_count.py:1:8: F401 [*] `os` imported but unused
skills/word_count.py:7:9: F841 Local variable `unused` is assigned to but never used
Found 2 errors.
[*] 1 fixable with `--fix` (1 unsafe fix available with `--fix --unsafe-fixes`).
"""

# the same, in ruff's default (full) output format
RUFF_FULL = """\
F401 [*] `os` imported but unused
 --> skills/word_count.py:1:8
  |
1 | import os
  |        ^^
2 | from kavi.skill import Skill
  |
help: Remove unused import: `os`

F841 Local variable `unused` is assigned to but never used
 --> skills/word_count.py:7:9
  |
5 | class WordCount(Skill):
6 |     def execute(self, text: str) -> dict[str, int]:
7 |         unused = 1
  |         ^^^^^^
  |
help: Remove assignment to unused variable `unused`

Found 2 errors.
"""

RUFF_SYNTAX = """\
skills/bad.py:1:7: invalid-syntax: Expected a parameter or the end of the parameter list
skills/bad.py:1:8: invalid-syntax: Expected `)`, found newline
Found 2 errors.
"""

MYPY = """\
skills/word_count.py:5: error: Class cannot subclass "Skill" (has type "Any")  [misc]
skills/word_count.py:8: error: Unsupported operand types for + ("int" and "str")  [operator]
skills/word_count.py:8: note: See https://mypy.readthedocs.io/en/stable/ for more
Found 2 errors in 1 file (checked 4 source files)
"""

PYTEST = """\
FF.F                                                                     [100%]
=================================== FAILURES ===================================
______________________________ test_counts_words _______________________________

    def test_counts_words() -> None:
>       assert WordCount().execute("a b") == {"count": 3}
               ^^^^^^^^^^^^^^^^^^^^^^^^^^

skills/test_word_count.py:5:
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _

    def execute(self, text: str) -> dict[str, int]:
        unused = 1
>       return {"count": len(text.split()) + "x"}
E       TypeError: unsupported operand type(s) for +: 'int' and 'str'

skills/word_count.py:8: TypeError
__________________________________ test_empty __________________________________

    def test_empty() -> None:
>       raise ValueError("boom")
E       ValueError: boom

skills/test_word_count.py:9: ValueError
_______________________________ test_example[1] ________________________________
E       AssertionError: example 1: expected {'count': 2}, got {'count': 3}
E       assert 1 == 0

skills/test_word_count_examples.py:6: AssertionError
=========================== short test summary info ============================
FAILED skills/test_word_count.py::test_counts_words - TypeError: unsupported ...
FAILED skills/test_word_count.py::test_empty - ValueError: boom
FAILED skills/test_word_count_examples.py::test_example[1] - AssertionError: ...
3 failed, 1 passed in 1.69s
"""

PYTEST_ONLY_EXAMPLES = """\
=========================== short test summary info ============================
FAILED skills/test_word_count_examples.py::test_example[1] - AssertionError: example 1
1 failed, 1 passed in 0.40s
"""

PYTEST_COLLECTION = """\
E   ModuleNotFoundError: No module named 'nonexistent_mod'
=========================== short test summary info ============================
ERROR skills/test_word_count.py
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
"""

POLICY = """\
skills/word_count.py:3 forbidden-import importing 'socket' is not allowed for READ_ONLY
skills/word_count.py:9 forbidden-call open() with a write mode needs FILE_WRITE
"""


def gate(name: str, status: str, report: str = "", summary: str = "") -> dict[str, str]:
    return {
        "gate": name,
        "status": status,
        "summary": summary or f"{name} {status}",
        "report": report,
    }


def classify(*gates: dict[str, str]) -> ResearchNote:
    return classify_failure(build_status="SUCCEEDED", build_reason=None, failure_kind=None, gate_results=list(gates))


def test_ruff_concise_and_full_give_the_same_errors() -> None:
    expected = [
        {
            "file": "skills/word_count.py",
            "line": 1,
            "col": 8,
            "rule": "F401",
            "message": "`os` imported but unused",
        },
        {
            "file": "skills/word_count.py",
            "line": 7,
            "col": 9,
            "rule": "F841",
            "message": "Local variable `unused` is assigned to but never used",
        },
    ]
    assert parse_ruff(RUFF_CONCISE) == expected
    assert parse_ruff(RUFF_FULL) == expected
    assert [e["rule"] for e in parse_ruff(RUFF_SYNTAX)] == ["invalid-syntax", "invalid-syntax"]


def test_mypy_errors_keep_code_and_skip_notes() -> None:
    errors = parse_mypy(MYPY)
    assert [(e["line"], e["rule"]) for e in errors] == [(5, "misc"), (8, "operator")]
    assert errors[1]["message"] == 'Unsupported operand types for + ("int" and "str")'


def test_pytest_failing_tests_and_locations() -> None:
    tests, locations = parse_pytest(PYTEST)
    assert [t["id"] for t in tests] == [
        "skills/test_word_count.py::test_counts_words",
        "skills/test_word_count.py::test_empty",
        "skills/test_word_count_examples.py::test_example[1]",
    ]
    assert tests[1]["message"] == "ValueError: boom"
    assert ("skills/word_count.py", 8, "TypeError") in [(loc["file"], loc["line"], loc["message"]) for loc in locations]


def test_lint_failure() -> None:
    note = classify(gate("ruff", "fail", RUFF_CONCISE), gate("mypy", "pass"))
    assert note.kind is FailureKind.VERIFY_LINT
    assert note.facts["rules"] == ["F401", "F841"]
    assert "skills/word_count.py:1 F401" in note.summary


def test_type_failure_outranks_lint() -> None:
    note = classify(gate("ruff", "fail", RUFF_FULL), gate("mypy", "fail", MYPY))
    assert note.kind is FailureKind.VERIFY_TYPE
    assert note.facts["kinds"] == ["VERIFY_TYPE", "VERIFY_LINT"]
    assert {e["gate"] for e in note.facts["errors"]} == {"ruff", "mypy"}


def test_builder_tests_and_examples_failing() -> None:
    note = classify(gate("pytest", "fail", PYTEST))
    assert note.kind is FailureKind.VERIFY_EXAMPLES
    assert note.facts["kinds"] == ["VERIFY_EXAMPLES", "VERIFY_TEST"]
    assert len(note.facts["failing_tests"]) == 3


def test_only_builder_tests_failing_is_verify_test() -> None:
    report = PYTEST.replace("FAILED skills/test_word_count_examples.py::test_example[1] - AssertionError: ...\n", "")
    note = classify(gate("pytest", "fail", report))
    assert note.kind is FailureKind.VERIFY_TEST
    assert "2 failing test(s), first skills/test_word_count.py::test_counts_words" in note.summary


def test_examples_gate_by_name_and_by_test_id() -> None:
    assert classify(gate("examples", "fail", PYTEST_ONLY_EXAMPLES)).kind is FailureKind.VERIFY_EXAMPLES
    assert classify(gate("pytest", "fail", PYTEST_ONLY_EXAMPLES)).kind is FailureKind.VERIFY_EXAMPLES


def test_collection_error_is_a_test_failure() -> None:
    note = classify(gate("pytest", "error", PYTEST_COLLECTION))
    assert note.kind is FailureKind.VERIFY_TEST
    assert note.facts["failing_tests"][0] == {
        "gate": "pytest",
        "id": "skills/test_word_count.py",
        "outcome": "error",
    }


def test_policy_outranks_everything_and_names_the_rule() -> None:
    note = classify(gate("pytest", "fail", PYTEST), gate("policy", "fail", POLICY))
    assert note.kind is FailureKind.VERIFY_POLICY
    assert note.facts["rules"] == ["forbidden-call", "forbidden-import"]
    assert note.facts["errors"][0]["line"] == 3


def test_invariant_and_kernel_gates() -> None:
    invariant = "skills/word_count.py:12 output-schema returned 'count' as str"
    assert classify(gate("invariants", "fail", invariant)).kind is FailureKind.VERIFY_INVARIANT
    kernel = classify(gate("kernel-correctness", "fail", "max abs error 3.1e-2 > 1e-3"))
    assert kernel.kind is FailureKind.VERIFY_KERNEL
    assert kernel.facts["failing_gates"][0]["gate"] == "kernel-correctness"


def test_build_failures_win_over_gates() -> None:
    for kind in ("TIMEOUT", "GATE_VIOLATION", "BUILD_ERROR", "BACKEND_UNAVAILABLE"):
        note = classify_failure(
            build_status="FAILED",
            build_reason="wrote outside the allowlist: notes/x.txt",
            failure_kind=kind,
            gate_results=[gate("ruff", "fail", RUFF_CONCISE)],
        )
        assert note.kind.value == kind
        assert note.facts["paths"] == ["notes/x.txt"]
    odd = classify_failure(build_status="FAILED", build_reason=None, failure_kind="MARTIAN", gate_results=[])
    assert odd.kind is FailureKind.UNKNOWN


def test_nothing_failed_and_unknown_gate() -> None:
    assert classify(gate("ruff", "pass"), gate("mypy", "skipped")).kind is FailureKind.UNKNOWN
    weird = classify(gate("spellcheck", "fail", "skills/a.py:3 typo 'teh'"))
    assert weird.kind is FailureKind.UNKNOWN
    assert weird.facts["errors"][0]["rule"] == "typo"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ruff", FailureKind.VERIFY_LINT),
        ("mypy", FailureKind.VERIFY_TYPE),
        ("pytest", FailureKind.VERIFY_TEST),
        ("examples", FailureKind.VERIFY_EXAMPLES),
        ("policy", FailureKind.VERIFY_POLICY),
        ("invariants", FailureKind.VERIFY_INVARIANT),
        ("kernel-screen", FailureKind.VERIFY_KERNEL),
        ("kernel-correctness", FailureKind.VERIFY_KERNEL),
        ("kernel-speed", FailureKind.VERIFY_KERNEL),
        ("kernel_timing", FailureKind.UNKNOWN),  # no such gate: its name is not guessed from
    ],
)
def test_gate_names(name: str, kind: FailureKind) -> None:
    assert gate_kind(name) is kind


def test_a_new_gate_is_classified_by_what_it_declares_not_by_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gate whose name says nothing (``spellcheck``) still gets the kind it declares, so forge does not
    escalate its failure as unclassifiable."""
    from dataclasses import replace
    from typing import ClassVar

    from kavi.gates.base import GateResult, GateStatus
    from kavi.kinds import KINDS

    class SpellcheckGate:
        name: ClassVar[str] = "spellcheck"
        failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_LINT
        may_be_unmeasured: ClassVar[bool] = False

        def applies_to(self, spec: object) -> bool:
            return True

        def run(self, context: object) -> GateResult:
            return GateResult(self.name, GateStatus.PASS, "ok")

    skill = KINDS["python"]
    monkeypatch.setitem(KINDS, "python", replace(skill, gates=lambda: (*skill.gates(), SpellcheckGate())))
    assert gate_kind("spellcheck") is FailureKind.VERIFY_LINT
    note = classify(gate("spellcheck", "fail", "skills/a.py:3 typo 'teh'"))
    assert note.kind is FailureKind.VERIFY_LINT


def test_every_gate_declares_a_verify_kind_that_research_can_rank() -> None:
    from kavi.kinds import KINDS
    from kavi.research import VERIFY_PRIORITY

    for kind in KINDS.values():
        for declared in kind.gates():
            assert declared.failure_kind in VERIFY_PRIORITY and declared.failure_kind is not FailureKind.UNKNOWN
            assert gate_kind(declared.name) is declared.failure_kind


def test_classification_is_deterministic_and_json_ready() -> None:
    gates = [
        gate("mypy", "fail", MYPY),
        gate("pytest", "fail", PYTEST),
        gate("ruff", "fail", RUFF_FULL),
    ]
    first = classify(*gates).to_json()
    assert first == classify(*gates).to_json()
    assert json.loads(json.dumps(first)) == first
    assert first["kind"] == "VERIFY_EXAMPLES"
