"""The pytest gate: the builder's own tests, run on the exact candidate bytes in the verify sandbox,
isolated, with third-party pytest plugins off so nothing outside the candidate shapes the result.

These tests are the builder's evidence, not kavi's (kavi's is the examples gate, frozen and partly hidden,
run where no test code is). The verdict is still the parent's: kavi's plugin
(:mod:`kavi.runtime.pytest_report`) reports every collected test, every phase and whether each test
function itself ran, as it happens, on a channel apart from pytest's output; this gate counts collected
against reported tests and requires every one of them to have run and passed, whatever pytest's exit status
or summary line says. A test that registers a plugin (so later tests never run), resets
``session.testsfailed`` or otherwise rewrites pytest's own bookkeeping fails the gate.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from kavi.builders.base import FailureKind
from kavi.gates.base import GateContext, GateResult, GateStatus
from kavi.gates.execution import blocked_result, run_python
from kavi.spec import SkillSpec

# No ini file in the sandbox (nothing there tells a gate from a real run) and none found by searching
# upwards: ``-c /dev/null`` is an empty configuration, the options are given here.
PYTEST_OPTIONS = ("-c", os.devnull, "--confcutdir", ".", "-o", "pythonpath=skills", "-p", "no:cacheprovider")
REPORT_PLUGIN = "kavi.runtime.pytest_report"
CHANNEL_ENV = "KAVI_PYTEST_REPORT"  # the plugin's own name for it; not imported, so the parent needs no pytest
_NO_TESTS = 5  # pytest's exit status when it collected nothing: judged as "no passing test"
_DURATION = re.compile(r" in \d+(?:\.\d+)?s(?: \(\d+:\d\d:\d\d\))?")
_SUMMARY = re.compile(r"(\d+) (passed|failed|error|errors|skipped)")


@dataclass
class Records:
    """What the report channel carried, sorted by kind; ``problems`` are breaches of the protocol."""

    collected: list[str] | None = None
    collect_errors: list[str] = field(default_factory=list)
    reports: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: dict[str, str] = field(default_factory=dict)
    finish: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


def read_records(channel: str) -> Records:
    records = Records()
    for line in channel.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            records.problems.append("the report channel carried a line that is not kavi's")
            continue
        event = record.get("event") if isinstance(record, dict) else None
        if event == "start":
            continue
        if event == "collect_error":
            records.collect_errors.append(str(record.get("nodeid")))
            continue
        if event == "collected" and records.collected is None and isinstance(record.get("items"), list):
            records.collected = [str(item) for item in record["items"]]
        elif event == "report":
            key = (str(record.get("nodeid")), str(record.get("when")))
            if key in records.reports:
                records.problems.append(f"{key[0]} was reported twice for its {key[1]}")
            records.reports[key] = str(record.get("outcome"))
        elif event == "call":
            nodeid = str(record.get("nodeid"))
            if nodeid in records.calls:
                records.problems.append(f"{nodeid} ran twice")
            records.calls[nodeid] = str(record.get("ran"))
        elif event == "finish" and records.finish is None:
            records.finish = record
        else:
            records.problems.append(f"unexpected report record {str(event)[:40]!r}")
    return records


def judge_records(records: Records, returncode: int) -> tuple[list[str], list[str], list[str]]:
    """(problems, passed tests, failing tests) from the records alone; pytest's exit status only adds."""
    problems = [f"collecting {nodeid or 'the tests'} failed" for nodeid in records.collect_errors]
    problems += records.problems
    if records.collected is None:
        problems.append("pytest collected nothing (or the collection never finished)")
        return problems, [], []
    passed: list[str] = []
    failing: list[str] = []
    collected = set(records.collected)
    for nodeid in records.collected:
        setup = records.reports.get((nodeid, "setup"))
        call = records.reports.get((nodeid, "call"))
        teardown = records.reports.get((nodeid, "teardown"))
        ran = records.calls.get(nodeid)
        if setup is None:
            problems.append(f"{nodeid} was collected but never reported")
            failing.append(nodeid)
        elif setup == "skipped":
            pass
        elif setup != "passed" or teardown != "passed":
            failing.append(nodeid)
        elif call == "passed" and ran == "returned":
            passed.append(nodeid)
        elif call == "passed":
            problems.append(f"{nodeid} was reported passed but its test function {_ran(ran)}")
            failing.append(nodeid)
        elif call != "skipped":
            failing.append(nodeid)
    unknown = sorted({nodeid for nodeid, _ in records.reports} - collected)
    if unknown:
        problems.append(f"reports for tests that were never collected: {', '.join(unknown[:5])}")
    finish = records.finish
    if finish is None:
        problems.append("the test session never finished")
    else:
        if finish.get("plugins_added"):
            added = ", ".join(str(name) for name in finish["plugins_added"][:5])
            problems.append(f"test code registered pytest plugins during the run: {added}")
        if finish.get("exitstatus") not in (0, _NO_TESTS) and not failing:
            problems.append(f"pytest ended with status {finish.get('exitstatus')}")
    if returncode not in (0, _NO_TESTS) and not failing and not problems:
        problems.append(f"pytest exited {returncode}")
    return problems, passed, failing


def _ran(ran: str | None) -> str:
    return "never ran" if ran is None else f"{ran}"


class PytestGate:
    name: ClassVar[str] = "pytest"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_TEST
    may_be_unmeasured: ClassVar[bool] = False

    def applies_to(self, spec: SkillSpec) -> bool:
        return True

    def run(self, context: GateContext) -> GateResult:
        args = [
            *PYTEST_OPTIONS,
            "-p",
            REPORT_PLUGIN,
            "-q",
            "-rfE",
            "--tb=short",
            "--color=no",
            "--rootdir",
            ".",
            context.spec.test_path,
        ]
        result = run_python(context, "pytest", args, env={CHANNEL_ENV: "stdout"})
        # The same candidate gives the same report: pytest's wall time ("3 passed in 0.20s") is dropped (the
        # gate's duration_s records it), so a report is content-addressed like every other artifact.
        result = replace(result, stderr=_DURATION.sub("", result.stderr))
        report = result.stderr  # pytest's own output; stdout is kavi's report channel
        isolation = str(result.isolation)
        blocked = blocked_result(self.name, result)
        if blocked is not None:
            return blocked
        counts = {kind: int(n) for n, kind in _SUMMARY.findall(report)}
        if result.timed_out:
            return GateResult(
                self.name,
                GateStatus.FAIL,
                f"tests timed out after {context.timeout_s:g} s",
                report,
                isolation=isolation,
                facts={"evidence": "builder", "counts": counts},
            )
        records = read_records(result.stdout)
        problems, passed, failing = judge_records(records, result.returncode)
        facts = {
            "evidence": "builder",
            "counts": counts,
            "collected": len(records.collected or []),
            "passed": len(passed),
            "failing_tests": failing,
            "problems": problems,
        }
        if problems:
            body = "\n".join(problems) + "\n\n" + report
            return GateResult(self.name, GateStatus.FAIL, problems[0], body, isolation=isolation, facts=facts)
        if failing:
            summary = f"{len(failing)} of the builder's {len(records.collected or [])} test(s) failed"
            return GateResult(self.name, GateStatus.FAIL, summary, report, isolation=isolation, facts=facts)
        if not passed:
            return GateResult(
                self.name,
                GateStatus.FAIL,
                "the builder's test file holds no passing test",
                report,
                isolation=isolation,
                facts=facts,
            )
        return GateResult(
            self.name,
            GateStatus.PASS,
            f"the builder's {len(passed)} test(s) passed (the builder's evidence; kavi's is the examples gate)",
            report,
            isolation=isolation,
            facts=facts,
        )
