"""Failure research: why an attempt failed, in facts the next attempt can act on.

:func:`classify_failure` is deterministic and pure: the same build result and gate reports always
give the same :class:`ResearchNote`. It reads the reports the gates already produced (ruff, mypy,
pytest, policy and invariant checks) and keeps what a builder needs: the failing tests, the error
lines with file:line, the rules that fired.

:func:`advise` optionally asks a model (through the openai builder's client) for a revised packet;
it degrades to ``None`` on any failure. :func:`check_advice` refuses mechanically any revision that
widens what the builder may do: only the advice text and additional rules may change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kavi.builders.base import BuildPacket, FailureKind
from kavi.kinds import gate_named

if TYPE_CHECKING:
    from kavi.builders.openai_compat import OpenAIOptions

MAX_FACTS = 50
MAX_MESSAGE = 300


BUILD_KINDS = frozenset(
    {
        FailureKind.GATE_VIOLATION,
        FailureKind.TIMEOUT,
        FailureKind.BUILD_ERROR,
        FailureKind.BACKEND_UNAVAILABLE,
    }
)

# The kind named first is the note's kind when several gates fail: the most fundamental problem
# first (a policy breach makes every test result moot), the cheapest to fix last.
VERIFY_PRIORITY = (
    FailureKind.VERIFY_POLICY,
    FailureKind.VERIFY_INVARIANT,
    FailureKind.VERIFY_KERNEL,
    FailureKind.VERIFY_EXAMPLES,
    FailureKind.VERIFY_TEST,
    FailureKind.VERIFY_TYPE,
    FailureKind.VERIFY_LINT,
    FailureKind.UNKNOWN,
)

_FAILED_STATUSES = frozenset({"fail", "error"})


@dataclass(frozen=True)
class ResearchNote:
    """The classified failure of one attempt: a kind, one line for people, facts for builders."""

    kind: FailureKind
    summary: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-ready dict (also what goes into the next packet's ``previous_failure``)."""
        return {"kind": str(self.kind), "summary": self.summary, "facts": _plain(self.facts)}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --- report parsers ------------------------------------------------------------------------------

_RUFF_CONCISE = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): "
    r"(?P<code>[A-Z]{1,4}\d{1,4}|[a-z][a-z-]*(?=:))\:? (?:\[\*\] )?(?P<message>.+)$"
)
_RUFF_FULL_HEAD = re.compile(r"^(?P<code>[A-Z]{1,4}\d{1,4}) (?:\[\*\] )?(?P<message>.+)$")
_RUFF_FULL_ARROW = re.compile(r"^\s*-->\s*(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+)")
_MYPY = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::(?P<col>\d+))?: error: (?P<message>.*?)"
    r"(?:\s{2}\[(?P<code>[a-z0-9-]+)\])?$"
)
_PYTEST_SUMMARY = re.compile(r"^(?P<outcome>FAILED|ERROR) (?P<id>\S+)(?: - (?P<message>.*))?$")
_PYTEST_LOCATION = re.compile(r"^(?P<file>[\w./-]+\.py):(?P<line>\d+): (?P<exception>\w+)$")
_RULE_LINE = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::(?P<col>\d+))?:?\s+(?P<rule>[\w.-]+):?\s+"
    r"(?P<message>.+)$"
)


def _cut(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def _error(file: str, line: str, message: str, rule: str | None, col: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"file": file, "line": int(line), "message": _cut(message)}
    if col:
        found["col"] = int(col)
    if rule:
        found["rule"] = rule
    return found


def parse_ruff(report: str) -> list[dict[str, Any]]:
    """Errors from ruff's concise (``f:l:c: CODE msg``) or full (``CODE msg`` + ``--> f:l:c``)."""
    errors: list[dict[str, Any]] = []
    pending: re.Match[str] | None = None
    for line in report.splitlines():
        if match := _RUFF_CONCISE.match(line):
            errors.append(_error(match["file"], match["line"], match["message"], match["code"], match["col"]))
            pending = None
        elif match := _RUFF_FULL_HEAD.match(line):
            pending = match
        elif pending is not None and (arrow := _RUFF_FULL_ARROW.match(line)):
            errors.append(_error(arrow["file"], arrow["line"], pending["message"], pending["code"], arrow["col"]))
            pending = None
    return errors


def parse_mypy(report: str) -> list[dict[str, Any]]:
    """Errors from mypy's ``file:line: error: message  [code]`` lines (notes are skipped)."""
    return [
        _error(m["file"], m["line"], m["message"], m["code"], m["col"])
        for m in map(_MYPY.match, report.splitlines())
        if m is not None
    ]


def parse_pytest(report: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Failing tests from the summary (``FAILED id - msg``) and ``file:line: Error`` lines."""
    tests: list[dict[str, Any]] = []
    locations: list[dict[str, Any]] = []
    for line in report.splitlines():
        if match := _PYTEST_SUMMARY.match(line.strip()):
            test = {"id": match["id"], "outcome": match["outcome"].lower()}
            if match["message"]:
                test["message"] = _cut(match["message"])
            tests.append(test)
        elif match := _PYTEST_LOCATION.match(line.strip()):
            locations.append(_error(match["file"], match["line"], match["exception"], None))
    return tests, locations


def parse_rule_report(report: str) -> list[dict[str, Any]]:
    """Policy and invariant reports: one ``file:line rule message`` a line."""
    return [
        _error(m["file"], m["line"], m["message"], m["rule"], m["col"])
        for m in map(_RULE_LINE.match, report.splitlines())
        if m is not None
    ]


# --- classification ------------------------------------------------------------------------------


def _is_examples(test_id: str) -> bool:
    return "examples" in test_id


def gate_kind(gate: str) -> FailureKind:
    """The failure kind a gate declares for its failure (``failure_kind``); UNKNOWN only for a gate this kavi
    does not have (a record from another version)."""
    found = gate_named(gate)
    return found.failure_kind if found is not None else FailureKind.UNKNOWN


def _gate_facts(kind: FailureKind, report: str) -> tuple[set[FailureKind], dict[str, list[Any]]]:
    """The kinds one failing gate shows, with the errors and failing tests in its report."""
    facts: dict[str, list[Any]] = {"errors": [], "failing_tests": []}
    kinds = {kind}
    if kind is FailureKind.VERIFY_LINT:
        facts["errors"] = parse_ruff(report)
    elif kind is FailureKind.VERIFY_TYPE:
        facts["errors"] = parse_mypy(report)
    elif kind in (FailureKind.VERIFY_POLICY, FailureKind.VERIFY_INVARIANT):
        facts["errors"] = parse_rule_report(report)
    elif kind in (FailureKind.VERIFY_TEST, FailureKind.VERIFY_EXAMPLES, FailureKind.VERIFY_KERNEL):
        facts["failing_tests"], facts["errors"] = parse_pytest(report)
        if kind is FailureKind.VERIFY_TEST and facts["failing_tests"]:
            kinds = {
                FailureKind.VERIFY_EXAMPLES if _is_examples(t["id"]) else FailureKind.VERIFY_TEST
                for t in facts["failing_tests"]
            }
    else:
        facts["errors"] = parse_ruff(report) or parse_mypy(report) or parse_rule_report(report)
    return kinds, facts


def classify_failure(
    *,
    build_status: str,
    build_reason: str | None,
    failure_kind: str | None,
    gate_results: Sequence[Mapping[str, Any]],
) -> ResearchNote:
    """Classify one attempt from its build result and its gate results (dicts: gate, status,
    summary, report). A failed build wins: its gates, if any, never ran on a real candidate."""
    if str(build_status).upper() == "FAILED" or (failure_kind and not gate_results):
        return _build_note(build_reason, failure_kind)
    failing = [g for g in gate_results if str(g.get("status", "")).lower() in _FAILED_STATUSES]
    if not failing:
        return ResearchNote(FailureKind.UNKNOWN, "no failure found: the build and every gate passed")
    kinds: set[FailureKind] = set()
    errors: list[dict[str, Any]] = []
    tests: list[dict[str, Any]] = []
    gates = []
    # the most important gate first, so that facts and summary lead with what matters most
    failing.sort(key=lambda g: VERIFY_PRIORITY.index(gate_kind(str(g.get("gate", "?")))))
    for gate in failing:
        name = str(gate.get("gate", "?"))
        gate_kinds, facts = _gate_facts(gate_kind(name), str(gate.get("report") or ""))
        kinds |= gate_kinds
        errors += [{"gate": name, **error} for error in facts["errors"]]
        tests += [{"gate": name, **test} for test in facts["failing_tests"]]
        gates.append(
            {
                "gate": name,
                "status": str(gate.get("status")),
                "summary": _cut(str(gate.get("summary") or "")),
            }
        )
    kind = next(k for k in VERIFY_PRIORITY if k in kinds)
    facts_out: dict[str, Any] = {
        "failing_gates": gates,
        "kinds": [k.value for k in VERIFY_PRIORITY if k in kinds],
        "errors": errors[:MAX_FACTS],
        "failing_tests": tests[:MAX_FACTS],
        "rules": sorted({str(e["rule"]) for e in errors if e.get("rule")})[:MAX_FACTS],
    }
    return ResearchNote(kind, _verify_summary(kind, gates, errors, tests), facts_out)


def _build_note(reason: str | None, failure_kind: str | None) -> ResearchNote:
    try:
        kind = FailureKind(str(failure_kind).upper()) if failure_kind else FailureKind.BUILD_ERROR
    except ValueError:
        kind = FailureKind.UNKNOWN
    if kind not in BUILD_KINDS and kind is not FailureKind.UNKNOWN:
        kind = FailureKind.UNKNOWN
    text = _cut(reason or "the build failed without a reason")
    facts: dict[str, Any] = {"build_reason": text, "failure_kind": failure_kind}
    paths = re.findall(r"[\w./-]+\.\w+", reason or "")
    if paths:
        facts["paths"] = sorted(set(paths))[:MAX_FACTS]
    return ResearchNote(kind, f"build failed ({kind.value}): {text}", facts)


def _verify_summary(
    kind: FailureKind,
    gates: Iterable[Mapping[str, Any]],
    errors: Sequence[Mapping[str, Any]],
    tests: Sequence[Mapping[str, Any]],
) -> str:
    names = ", ".join(str(g["gate"]) for g in gates)
    parts = [f"failing gate(s) {names}"]  # the kind is the note's own field; a reader sees it once
    if tests:
        parts.append(f"{len(tests)} failing test(s), first {tests[0]['id']}")
    if errors:
        first = errors[0]
        where = f"{first['file']}:{first['line']}"
        rule = f" {first['rule']}" if first.get("rule") else ""
        parts.append(f"{len(errors)} error(s), first {where}{rule} {first['message']}")
    return "; ".join(parts)


# --- advice --------------------------------------------------------------------------------------

MAX_ADVICE_INPUT = 12_000
MAX_ADVICE_TEXT = 4_000
MAX_NEW_RULES = 10
MAX_RULE_LENGTH = 500
ADVICE_TIMEOUT_S = 60.0

_FROZEN_SPEC_FIELDS = {
    "side_effect": "the side-effect class",
    "write_roots": "the write roots",
    "allow_hosts": "the allowed hosts",
    "secrets": "the secrets",
    "executables": "the executables",
}
_PACKET_FIELDS = frozenset(
    {"proposal_id", "attempt", "spec", "allowed_paths", "rules", "previous_failure", "advice", "guide"}
)

ADVICE_PROMPT = """\
A build of a kavi skill failed. Below are the research note (why it failed) and the build packet
the builder was given, as JSON. Answer with ONE JSON object: the same packet, where you may change
only "advice" (a short text telling the builder what to do differently) and add entries at the end
of "rules". Every other field must stay exactly as given: the spec, the allowed paths, the ids.
"""


@dataclass(frozen=True)
class Advice:
    """A checked revision of a packet: the advice text, the added rules, the revised packet."""

    text: str | None
    added_rules: tuple[str, ...]
    packet: BuildPacket


def _canonical(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


def check_advice(original: BuildPacket, revised: Any) -> list[str]:
    """Every way ``revised`` widens or changes ``original`` beyond advice and added rules.

    A field left out of ``revised`` counts as unchanged; an empty list means the revision is safe.
    """
    if not isinstance(revised, Mapping):
        return ["the revised packet is not a JSON object"]
    before = original.to_json()
    violations = [f"unknown field {key!r}" for key in sorted(set(revised) - _PACKET_FIELDS)]
    violations += _spec_violations(before["spec"], revised.get("spec", before["spec"]))
    violations += _allowlist_violations(before["allowed_paths"], revised)
    for key in ("proposal_id", "attempt", "previous_failure", "guide"):
        if key in revised and _canonical(revised[key]) != _canonical(before[key]):
            violations.append(f"{key} must not change")
    violations += _rule_violations(list(original.rules), revised.get("rules", list(original.rules)))
    advice = revised.get("advice")
    if advice is not None and not isinstance(advice, str):
        violations.append("advice must be a text")
    elif isinstance(advice, str) and len(advice) > MAX_ADVICE_TEXT:
        violations.append(f"advice is longer than {MAX_ADVICE_TEXT} characters")
    return violations


def _spec_violations(spec: Mapping[str, Any], revised: Any) -> list[str]:
    if not isinstance(revised, Mapping):
        return ["the spec must stay an object, unchanged"]
    problems = []
    for key in sorted(set(spec) | set(revised)):
        if _canonical(spec.get(key)) == _canonical(revised.get(key)):
            continue
        label = _FROZEN_SPEC_FIELDS.get(key, f"frozen spec field {key!r}")
        problems.append(f"{label} changed: {_canonical(spec.get(key))[:120]} -> {_canonical(revised.get(key))[:120]}")
    return problems


def _allowlist_violations(allowed: Sequence[str], revised: Mapping[str, Any]) -> list[str]:
    if "allowed_paths" not in revised:
        return []
    new = revised["allowed_paths"]
    if not isinstance(new, list | tuple) or not all(isinstance(p, str) for p in new):
        return ["allowed_paths must stay a list of the same paths"]
    added, removed = sorted(set(new) - set(allowed)), sorted(set(allowed) - set(new))
    if added or removed or len(new) != len(allowed):
        return [f"the allowlist changed (added {added}, removed {removed})"]
    return []


def _rule_violations(rules: list[str], revised: Any) -> list[str]:
    if not isinstance(revised, list | tuple) or not all(isinstance(r, str) for r in revised):
        return ["rules must stay a list of texts"]
    revised = list(revised)
    if revised[: len(rules)] != rules:
        return ["the existing rules must stay, unchanged and first; only additions are allowed"]
    added = revised[len(rules) :]
    problems = []
    if len(added) > MAX_NEW_RULES:
        problems.append(f"more than {MAX_NEW_RULES} new rules")
    problems += [f"a new rule is longer than {MAX_RULE_LENGTH} characters" for r in added if len(r) > MAX_RULE_LENGTH]
    return problems


def advice_prompt(note: ResearchNote, packet: BuildPacket) -> str:
    """The bounded question put to the advising model."""
    note_json = json.dumps(note.to_json(), sort_keys=True)[: MAX_ADVICE_INPUT // 3]
    # the guide (example skill, gate settings) is fixed and not the adviser's to revise: a field left out
    # counts as unchanged, and leaving it out keeps the question within its bound
    shown = {key: value for key, value in packet.to_json().items() if key != "guide"}
    packet_json = json.dumps(shown, sort_keys=True)
    if len(packet_json) > MAX_ADVICE_INPUT:
        raise ValueError("the packet is too large to ask for advice about")
    return f"{ADVICE_PROMPT}\nResearch note:\n{note_json}\n\nBuild packet:\n{packet_json}\n"


def parse_advice_answer(text: str) -> Any:
    """The JSON object in a model's answer (a bare object or one inside a ``` fence)."""
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", text, re.DOTALL)
    candidate = fenced.group(1) if fenced else text[text.find("{") : text.rfind("}") + 1]
    return json.loads(candidate)


def request_advice(
    note: ResearchNote,
    packet: BuildPacket,
    options: OpenAIOptions,
    *,
    environ: Mapping[str, str] | None = None,
) -> tuple[Advice | None, str]:
    """Ask a model for a revised packet; return (advice or None, why). Never raises."""
    try:
        from kavi.builders.openai_compat import OpenAIBuilder

        builder = OpenAIBuilder(options, environ=environ)
        ok, reason = builder.available()
        if not ok:
            return None, f"advice unavailable: {reason}"
        client = builder.client()
        try:
            completion = client.chat.completions.create(
                model=options.model,
                messages=[{"role": "user", "content": advice_prompt(note, packet)}],
                max_tokens=min(options.max_response_tokens, 2048),
                timeout=min(options.timeout_s, ADVICE_TIMEOUT_S),
            )
        finally:
            client.close()
        revised = parse_advice_answer(str(completion.choices[0].message.content or ""))
    except Exception as error:  # graceful degradation: no advice is always an acceptable answer
        return None, f"no advice: {type(error).__name__}: {_cut(str(error))}"
    violations = check_advice(packet, revised)
    if violations:
        return None, "advice refused: " + "; ".join(violations)
    return _advice_from(packet, revised), "advice accepted"


def _advice_from(packet: BuildPacket, revised: Mapping[str, Any]) -> Advice:
    rules = tuple(revised.get("rules", packet.rules))
    text = revised.get("advice", packet.advice)
    new_packet = BuildPacket(
        proposal_id=packet.proposal_id,
        attempt=packet.attempt,
        spec=packet.spec,
        allowed_paths=packet.allowed_paths,
        rules=rules,
        previous_failure=packet.previous_failure,
        advice=text,
        guide=packet.guide,
    )
    return Advice(text=text, added_rules=rules[len(packet.rules) :], packet=new_packet)


def advise(
    note: ResearchNote,
    packet: BuildPacket,
    options: OpenAIOptions,
    *,
    environ: Mapping[str, str] | None = None,
) -> Advice | None:
    """A checked revised packet from a model, or None when there is none to be had."""
    return request_advice(note, packet, options, environ=environ)[0]
