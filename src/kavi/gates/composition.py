"""The composition gate: a chain is exactly as trusted as its members at their pinned hashes.

It checks that every member is still TRUSTED at the version and hashes the chain pins (read from the ledger,
never written), then runs every frozen end-to-end example through the steps, each step in an isolated child
of its own with its member's own side-effect class, the data passing from step to step through this process
(the parent) and never through files. A step that fails or is blocked is named; parts that each pass alone
but fail together (a value one member returns that the next refuses, a result the example did not expect)
fail the gate with the step and the mismatch. The gate records no execution: a verification is not a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kavi.builders.base import FailureKind
from kavi.chain import ChainOutcome, ChainSpec
from kavi.gates.base import GateResult, GateSettings, GateStatus
from kavi.spec import Example


@dataclass(frozen=True)
class ChainGateContext:
    spec: ChainSpec
    sandbox: Path
    workspace_root: Path | None
    timeout_s: float
    require_isolation: bool


def chain_context(spec: ChainSpec, sandbox: Path, settings: GateSettings) -> ChainGateContext:
    return ChainGateContext(spec, sandbox, settings.workspace_root, settings.timeout_s, settings.require_isolation)


class CompositionGate:
    name: ClassVar[str] = "composition"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_EXAMPLES
    may_be_unmeasured: ClassVar[bool] = False

    def applies_to(self, spec: Any) -> bool:
        return True

    def run(self, context: ChainGateContext) -> GateResult:
        from kavi.errors import KaviError
        from kavi.ledger import fast
        from kavi.stages.run_chain import isolated_step_runner, resolve_members
        from kavi.workspace import Workspace, find_workspace

        spec = context.spec
        if context.workspace_root is None:
            return GateResult(self.name, GateStatus.ERROR, "a chain is judged against a workspace's ledger; none given")
        workspace = find_workspace(context.workspace_root)
        if not workspace.has_ledger():
            return GateResult(self.name, GateStatus.SKIPPED, "no ledger here to find the chain's members in")
        conn = fast.connect(workspace.ledger_url)
        try:
            members = resolve_members(workspace, conn, spec)
        except KaviError as exc:
            return GateResult(self.name, GateStatus.FAIL, exc.message, report=f"{exc.message}\nhint: {exc.hint}")
        finally:
            conn.close()
        from kavi.chain import execute_chain

        # Steps write under the sandbox's roots, never the workspace's: a verification is not a run.
        sandboxed = Workspace(root=context.sandbox, _raw=workspace.raw_settings())
        runner = isolated_step_runner(sandboxed, members, require_isolation=context.require_isolation)
        problems: list[str] = []
        lines: list[str] = []
        levels: list[str] = []
        failed_steps: list[str] = []
        for index, example in enumerate(spec.examples):
            outcome = execute_chain(spec, dict(example.input), runner)
            levels += [step["isolation"] for step in outcome.steps if step["isolation"]]
            verdict, step = judge(spec, example, outcome)
            for record in outcome.steps:
                state = "ok" if record["ok"] else record["error"]
                lines.append(f"example {index} step {record['step']} ({record['side_effect']}): {state}")
            if verdict is not None:
                problems.append(f"example {index}: {verdict}")
                if step:
                    failed_steps.append(step)
        isolation = _weakest(levels)
        facts = {"steps": [step.id for step in spec.steps], "failed_steps": sorted(set(failed_steps))}
        report = "\n".join(problems + lines)
        if problems:
            return GateResult(self.name, GateStatus.FAIL, problems[0], report, isolation=isolation, facts=facts)
        summary = f"{len(spec.examples)} end-to-end example(s) passed through {len(spec.steps)} isolated step(s)"
        return GateResult(self.name, GateStatus.PASS, summary, report, isolation=isolation, facts=facts)


def judge(spec: ChainSpec, example: Example, outcome: ChainOutcome) -> tuple[str | None, str | None]:
    """(what went wrong, the step to blame) for one example; (None, None) when it passed."""
    if example.error is not None:
        if outcome.ok:
            return f"expected an error matching {example.error!r}, the chain returned {outcome.output}", None
        if example.error == outcome.error_type or example.error in (outcome.error or ""):
            return None, None
        return f"expected an error matching {example.error!r}, got {outcome.error}", outcome.failed_step
    if not outcome.ok:
        return outcome.error, outcome.failed_step
    assert example.output is not None and outcome.output is not None
    for field_name, expected in example.output.items():
        actual = outcome.output.get(field_name)
        if actual != expected:
            step = spec.output[field_name].split(".")[0]
            return (
                f"the parts pass alone but not together: output {field_name} (from step {step}) is "
                f"{actual!r}, the example expects {expected!r}",
                step,
            )
    extra = sorted(set(outcome.output) - set(example.output))
    if extra:
        return f"the chain returned field(s) {', '.join(extra)} the example does not expect", None
    return None, None


def _weakest(levels: list[str]) -> str | None:
    order = ("none", "process", "fallback", "full")
    return min(levels, key=lambda level: order.index(level) if level in order else 0) if levels else None
