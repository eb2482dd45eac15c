"""What to do about a failed verification: one concrete remedy per problem, read from the gates' reports.

Research (:mod:`kavi.research`) classifies a failure; this module says how to fix each problem in it, in
terms a builder (a model or a person) can act on at once: the exact ``ruff check --fix`` invocation with the
lint gate's own settings, a mypy error's code and line, a failing test's assertion with the values it saw,
a blocked effect with the class the skill declared. Deterministic and pure, like the classifier: the same
reports always give the same remedies. Messages are never cut here; the person reading them needs the end
of a message as much as its start.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from kavi.builders.base import FailureKind
from kavi.gates.lint import ruff_fix_argv
from kavi.research import VERIFY_PRIORITY, gate_kind
from kavi.runtime.hook import BLOCKED_MARKER
from kavi.spec import SkillSpec

MAX_REMEDIES = 40
_SANDBOX_PATH = re.compile(r"/\S*?kavi-verify-[^/\s]+/")
_RUFF_LINE = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z]+\d+) (?P<fix>\[\*\] )?(?P<msg>.+)$"
)
_MYPY_LINE = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::\d+)?: error: (?P<msg>.*?)(?:\s{2}\[(?P<code>[a-z0-9-]+)\])?$"
)
_RULE_LINE = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::\d+)?\s+(?P<rule>[\w.-]+)\s+(?P<msg>.+)$")
_TEST_HEADER = re.compile(r"^_{3,} (?P<name>\S.*?) _{3,}$")
_TEST_LOCATION = re.compile(r"^(?P<file>[\w./-]+\.py):(?P<line>\d+): in (?P<function>\w+)$")

# What mypy's error codes ask for, in a builder's words (the code and line come with every remedy).
MYPY_ADVICE = {
    "no-untyped-def": "annotate every parameter and the return type",
    "no-untyped-call": "call only annotated functions, or annotate this one",
    "assignment": "the assigned value must have the variable's declared type",
    "arg-type": "pass an argument of the parameter's declared type",
    "return-value": "return a value of the declared return type",
    "no-any-return": "return a value of the declared type, not Any (convert or annotate the intermediate value)",
    "type-arg": "give generic types their parameters (list[str], dict[str, int])",
    "attr-defined": "use only attributes the type declares",
    "union-attr": "check for None (or the other union members) before using the attribute",
    "import-not-found": "import only the standard library, pydantic, kavi and the skill's own module",
    "import-untyped": "import only typed packages (the standard library, pydantic, kavi)",
    "name-defined": "define or import the name before using it",
    "call-arg": "call with the parameters the function declares",
    "override": "keep the signature of the method being overridden (execute(self, data: Input) -> Output)",
    "misc": "read mypy's message: the construct is not allowed under --strict",
}

# For a blocked effect: which side-effect class would allow it, and the option that declares its target.
EFFECT_CLASSES = {
    "file write": ("FILE_WRITE", "--write-root FOLDER"),
    "network": ("NETWORK", "--allow-host HOST"),
    "process": ("SUBPROCESS", "--allow-exec PROGRAM"),
}


@dataclass(frozen=True)
class Remedy:
    """One problem and its fix. ``where`` is ``file:line`` (or a test id, or an example); ``problem`` the
    tool's own words, whole; ``fix`` what to do."""

    gate: str
    where: str
    problem: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def remedies_for(gate_results: Iterable[Mapping[str, Any]], spec: SkillSpec | None) -> list[Remedy]:
    """The remedies for every failing gate, the most fundamental gate first (as research orders them);
    a blocked effect reported by several gates is named once."""
    found: list[Remedy] = []
    blocked_seen: set[tuple[str, str]] = set()
    failing = [g for g in gate_results if str(g.get("status", "")).lower() in ("fail", "error")]
    failing.sort(key=lambda g: VERIFY_PRIORITY.index(gate_kind(str(g.get("gate", "?")))))
    for gate in failing:
        name, report = str(gate.get("gate", "?")), str(gate.get("report") or "")
        for effect in _blocked_effects(report):
            key = (effect["effect"], effect["detail"])
            if key not in blocked_seen:
                blocked_seen.add(key)
                found.append(_blocked_remedy(name, effect))
        if blocked_seen and not _has_own_failures(gate_kind(name), report):
            continue
        found.extend(_gate_remedies(name, gate_kind(name), report, str(gate.get("summary") or ""), spec))
    # a path inside the throwaway verify sandbox differs on every run; the same failure must read the same
    return [
        Remedy(r.gate, _SANDBOX_PATH.sub("", r.where), _SANDBOX_PATH.sub("", r.problem), _SANDBOX_PATH.sub("", r.fix))
        for r in found[:MAX_REMEDIES]
    ]


def _has_own_failures(kind: FailureKind, report: str) -> bool:
    """Whether a gate that reported a blocked effect also failed for a reason of its own."""
    if kind is FailureKind.VERIFY_TEST:
        return any(not _is_blocked_failure(body) for _, body in _test_failures(report))
    return kind not in (FailureKind.VERIFY_INVARIANT, FailureKind.VERIFY_EXAMPLES)


def _gate_remedies(name: str, kind: FailureKind, report: str, summary: str, spec: SkillSpec | None) -> list[Remedy]:
    if kind is FailureKind.VERIFY_LINT:
        return _lint_remedies(name, report, spec)
    if kind is FailureKind.VERIFY_TYPE:
        return _type_remedies(name, report)
    if kind is FailureKind.VERIFY_TEST:
        return _test_remedies(name, report) or [Remedy(name, "tests", summary, "run the tests and fix what fails")]
    if kind is FailureKind.VERIFY_EXAMPLES:
        return _example_remedies(name, report) or [Remedy(name, "examples", summary, "match the spec's examples")]
    if kind is FailureKind.VERIFY_POLICY:
        return _policy_remedies(name, report)
    return [Remedy(name, name, _first_line(report) or summary, "see the gate's report (`kavi show`, `--json`)")]


# --- lint ---------------------------------------------------------------------------------------------


def fix_command(spec: SkillSpec) -> str:
    """The exact invocation that applies the lint gate's safe fixes, quoted for a shell."""
    return shlex.join(ruff_fix_argv(spec))


def _lint_remedies(gate: str, report: str, spec: SkillSpec | None) -> list[Remedy]:
    findings = [m for m in map(_RUFF_LINE.match, report.splitlines()) if m is not None]
    remedies: list[Remedy] = []
    fixable = [m for m in findings if m["fix"]]
    if fixable:
        command = fix_command(spec) if spec is not None else "ruff check --fix (with the gate's settings)"
        codes = ", ".join(sorted({m["code"] for m in fixable}))
        remedies.append(
            Remedy(gate, "all files", f"{len(fixable)} finding(s) ruff fixes safely ({codes})", f"run `{command}`")
        )
    for match in findings:
        if match["fix"]:
            continue
        where = f"{match['file']}:{match['line']}"
        remedies.append(Remedy(gate, where, f"{match['code']} {match['msg']}", f"edit line {match['line']} by hand"))
    return remedies


# --- types --------------------------------------------------------------------------------------------


def _type_remedies(gate: str, report: str) -> list[Remedy]:
    remedies = []
    for match in filter(None, map(_MYPY_LINE.match, report.splitlines())):
        code = match["code"] or "error"
        advice = MYPY_ADVICE.get(code, "make the types agree (mypy --strict; the flags are in the build packet)")
        remedies.append(
            Remedy(
                gate, f"{match['file']}:{match['line']}", f"[{code}] {match['msg']}", f"line {match['line']}: {advice}"
            )
        )
    return remedies


# --- tests --------------------------------------------------------------------------------------------


def _test_failures(report: str) -> list[tuple[str, list[str]]]:
    """Each failing test's name and the lines of its ``--tb=short`` section."""
    sections: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in report.splitlines():
        if header := _TEST_HEADER.match(line):
            current = []
            sections.append((header["name"], current))
        elif line.startswith(("=====", BLOCKED_MARKER)):
            current = None
        elif current is not None:
            current.append(line)
    return sections


def _is_blocked_failure(body: list[str]) -> bool:
    return any(line.startswith("E ") and "EffectBlocked" in line for line in body)


def _test_remedies(gate: str, report: str) -> list[Remedy]:
    remedies = []
    for name, body in _test_failures(report):
        if _is_blocked_failure(body):
            continue
        errors = [line[1:].strip().removeprefix("AssertionError: ") for line in body if line.startswith("E ")]
        # pytest explains a compared value with "+ where" lines, nested; the first one says where it came from
        explained = [e for e in errors if not e.startswith(("+", "and "))]
        first_where = next((e.lstrip("+ ").strip() for e in errors if e.startswith("+")), "")
        locations = [m for m in map(_TEST_LOCATION.match, body) if m is not None]
        where = f"{locations[0]['file']}:{locations[0]['line']} {name}" if locations else name
        source = next((line.strip() for line in body if line.strip().startswith("assert ")), "")
        problem = " → ".join(part for part in (source, "; ".join(explained)) if part)
        if first_where:
            problem += f" ({first_where})"
        remedies.append(Remedy(gate, where, problem or "the test failed", _test_fix(explained)))
    return remedies


def _test_fix(errors: list[str]) -> str:
    compared = next((re.match(r"assert (.+?) (==|!=|<=|>=|<|>|in|not in|is|is not) (.+)$", e) for e in errors), None)
    if compared:
        return (
            f"the test saw {compared[1]} where it expected {compared[2]} {compared[3]}: fix the skill, or the "
            "test if its expectation is wrong (the spec's examples are the reference)"
        )
    if errors:
        return f"the test raised {errors[0].split(':', 1)[0]}: fix the skill (or the test) so it does not"
    return "run the test and fix the skill or its expectation"


# --- examples, policy and blocked effects -------------------------------------------------------------


def _example_remedies(gate: str, report: str) -> list[Remedy]:
    remedies = []
    for line in report.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        results = data.get("examples", {}).get("results", []) if isinstance(data, dict) else []
        for result in results:
            if result.get("ok"):
                continue
            expected = "error " + str(result["error"]) if "error" in result else json.dumps(result.get("expected"))
            got = result.get("detail") or json.dumps(result.get("output"))
            remedies.append(
                Remedy(
                    gate,
                    f"example {result.get('index')}: input {json.dumps(result.get('input'))}",
                    f"expected {expected}, got {got}",
                    "make execute() return exactly the example's output for this input (examples cannot be edited)",
                )
            )
    return remedies


def _policy_remedies(gate: str, report: str) -> list[Remedy]:
    remedies = []
    for match in filter(None, map(_RULE_LINE.match, report.splitlines())):
        remedies.append(
            Remedy(
                gate,
                f"{match['file']}:{match['line']}",
                f"{match['rule']}: {match['msg']}",
                "remove this call: the skill's side-effect class does not allow it (a person decides whether to "
                "propose the skill again with a wider class)",
            )
        )
    return remedies


def _blocked_effects(report: str) -> list[dict[str, str]]:
    found = []
    for line in report.splitlines():
        at = line.find(BLOCKED_MARKER)  # a report may follow output that did not end its line
        if at >= 0:
            try:
                data = json.loads(line[at + len(BLOCKED_MARKER) :])
            except ValueError:
                continue
            if isinstance(data, dict):
                found.append({k: _SANDBOX_PATH.sub("", str(v)) for k, v in data.items()})
    return found


def _blocked_remedy(gate: str, effect: Mapping[str, str]) -> Remedy:
    declared, what, detail = effect.get("side_effect", "?"), effect.get("effect", "?"), effect.get("detail", "")
    wider = EFFECT_CLASSES.get(what)
    if wider is None:
        fix = f"remove the {what}: no side-effect class allows it"
    elif wider[0] == declared:
        fix = f"{detail} is not among the targets the spec declares: use only those ({wider[1]} at propose)"
    else:
        fix = (
            f"a {declared} skill may not perform a {what}: compute the result without it; if the skill truly "
            f"needs it, a person must propose it again as {wider[0]} ({wider[1]})"
        )
    return Remedy(gate, detail or what, f"{what} blocked; the skill is declared {declared}", fix)


def _first_line(report: str) -> str:
    return next((line.strip() for line in report.splitlines() if line.strip()), "")
