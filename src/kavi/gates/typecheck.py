"""The mypy gate: the skill must type-check under ``--strict``; its tests are checked without the
annotation requirements. mypy's cache lives in the workspace so it is reused across verifications."""

from __future__ import annotations

import sys
from typing import ClassVar

from kavi.builders.base import FailureKind
from kavi.gates.base import GateContext, GateResult, GateStatus
from kavi.gates.tooling import run_tool
from kavi.spec import SkillSpec

CONFIG_NAME = "kavi_mypy.ini"


def mypy_config(spec: SkillSpec) -> str:
    return (
        "[mypy]\n"
        "strict = True\n"
        "python_version = 3.11\n"
        "mypy_path = skills\n"
        "warn_unused_configs = False\n"
        "show_error_codes = True\n"
        # A waiver must name its error code (the policy gate also refuses file-level switches and
        # codes it does not list as waivable): a bare type-ignore comment is itself an error.
        "enable_error_code = ignore-without-code\n"
        "warn_unused_ignores = True\n"
        "show_column_numbers = False\n"
        f"\n[mypy-test_{spec.name}]\n"
        "disallow_untyped_defs = False\n"
        "disallow_incomplete_defs = False\n"
        "disallow_untyped_calls = False\n"
        "disallow_untyped_decorators = False\n"
    )


class MypyGate:
    name: ClassVar[str] = "mypy"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_TYPE
    may_be_unmeasured: ClassVar[bool] = False

    def applies_to(self, spec: SkillSpec) -> bool:
        return True

    def run(self, context: GateContext) -> GateResult:
        config = context.sandbox / CONFIG_NAME
        config.write_text(mypy_config(context.spec), encoding="utf-8")
        cache = context.cache_dir / "mypy"
        argv = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(cache),
            "--no-color-output",
            "--no-error-summary",
            context.spec.skill_path,
            context.spec.test_path,
        ]
        run = run_tool(argv, cwd=context.sandbox, timeout_s=context.timeout_s, env={"MYPY_FORCE_COLOR": "0"})
        if run.timed_out:
            return GateResult(self.name, GateStatus.ERROR, "mypy timed out", run.output)
        errors = [line for line in run.output.splitlines() if ": error:" in line]
        if run.returncode == 0:
            return GateResult(self.name, GateStatus.PASS, "strict type check clean", run.output)
        if run.returncode == 1 and errors:
            return GateResult(
                self.name, GateStatus.FAIL, f"{len(errors)} type error(s)", run.output, facts={"errors": errors[:50]}
            )
        return GateResult(self.name, GateStatus.ERROR, f"mypy exited {run.returncode}", run.output)
