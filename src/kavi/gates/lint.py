"""The ruff gate: the candidate must be clean under a broad, fixed rule set (the user's config is ignored
so a workspace cannot loosen it)."""

from __future__ import annotations

import sys
from typing import ClassVar

from kavi.builders.base import FailureKind
from kavi.gates.base import GateContext, GateResult, GateStatus
from kavi.gates.tooling import run_tool
from kavi.spec import SkillSpec

#: PGH003/PGH004 refuse blanket waivers (a bare noqa, a file-level ruff or flake8 exemption without
#: codes, a bare type-ignore) in ruff itself: the second layer behind the policy's suppression rule.
RULES = "E,F,W,I,B,UP,S,SIM,RUF,ASYNC,BLE,PIE,T10,PGH003,PGH004"

#: Rules the gate does not apply, each because kavi judges the same thing better elsewhere. One
#: table, so that the lint rules and the policy gate cannot disagree about an honest skill.
IGNORED_RULES: dict[str, str] = {
    "S101": "assert is how tests check things",
    "S603": "the policy gate judges every subprocess call: a declared program, never a shell",
    "S607": "a SUBPROCESS spec declares programs by bare name (--allow-exec git) and the policy "
    "gate checks the literal program against it; the run-time layers resolve it on PATH",
}
IGNORED = ",".join(IGNORED_RULES)


def ruff_settings(name: str) -> list[str]:
    """The gate's whole ruff configuration as arguments: the one source for the gate itself, the build
    packet, research's suggested fix and forge's automatic fixes, so none of them can drift apart."""
    return [
        "--isolated",
        "--target-version",
        "py311",
        "--line-length",
        "100",
        "--select",
        RULES,
        "--ignore",
        IGNORED,
        "--config",
        f'lint.isort.known-first-party = ["{name}"]',
        "--config",
        'lint.isort.known-third-party = ["kavi", "pydantic"]',
    ]


def ruff_fix_argv(spec: SkillSpec) -> list[str]:
    """``ruff check --fix`` with the gate's settings on the candidate's two files: ruff's safe fixes only."""
    return ["ruff", "check", "--fix", "--no-cache", *ruff_settings(spec.name), spec.skill_path, spec.test_path]


class RuffGate:
    name: ClassVar[str] = "ruff"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_LINT
    may_be_unmeasured: ClassVar[bool] = False

    def applies_to(self, spec: SkillSpec) -> bool:
        return True

    def run(self, context: GateContext) -> GateResult:
        files = [context.spec.skill_path, context.spec.test_path]
        argv = [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--output-format",
            "concise",
            *ruff_settings(context.spec.name),
            *files,
        ]
        run = run_tool(argv, cwd=context.sandbox, timeout_s=context.timeout_s)
        if run.timed_out:
            return GateResult(self.name, GateStatus.ERROR, "ruff timed out", run.output)
        if run.returncode == 0:
            return GateResult(self.name, GateStatus.PASS, "no lint findings", run.output)
        if run.returncode == 1:
            findings = [line for line in run.output.splitlines() if line.count(":") >= 3]
            return GateResult(
                self.name,
                GateStatus.FAIL,
                f"{len(findings)} lint finding(s)",
                run.output,
                facts={"findings": findings[:50]},
            )
        return GateResult(self.name, GateStatus.ERROR, f"ruff exited {run.returncode}", run.output)
