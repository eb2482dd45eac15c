"""How gates execute candidate code: always through the isolated executor and under the audit hook, with
the power the spec's side-effect class declares and no more."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kavi.gates.base import GateContext, GateResult, GateStatus
from kavi.runtime.guard import guarded_python_argv
from kavi.sandbox.executor import ExecResult, note_layers, policies_for_spec, run_isolated


def run_python(context: GateContext, module: str, args: Sequence[str]) -> ExecResult:
    """Run ``python -m module args`` on the candidate: cwd at the verify sandbox, its write roots anchored
    there, the hook installed before anything of the candidate is imported."""
    policy, effects = policies_for_spec(
        context.spec,
        Path(context.sandbox),
        timeout_s=context.timeout_s,
        require_isolation=context.require_isolation,
        env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    argv = guarded_python_argv(effects, module=module, args=args)
    return run_isolated(argv, cwd=Path(context.sandbox), policy=policy)


def blocked_result(gate: str, result: ExecResult) -> GateResult | None:
    """The gate's FAIL when the hook or the OS refused an effect or a limit stopped the child, else None."""
    blocks = describe_blocks(result)
    if not blocks:
        return None
    report = "\n".join(blocks) + "\n\n" + result.stdout + result.stderr
    return GateResult(
        gate,
        GateStatus.FAIL,
        blocks[0],
        report,
        isolation=str(result.isolation),
        facts={"blocked": list(result.blocked)},
    )


def describe_blocks(result: ExecResult) -> list[str]:
    """One line per effect the hook or the OS refused, naming the effect and the class."""
    lines = [
        f"blocked {block.get('effect', 'effect')}: {block.get('detail', '')} ({block.get('side_effect', '')})"
        for block in result.blocked
    ]
    if result.killed_reason and result.killed_reason != "timeout":
        lines.append(f"stopped: the {result.killed_reason} limit was reached")
    return lines


PROBE_SPEC_FILE = "kavi_spec.json"


def shared_probe(context: GateContext) -> tuple[ExecResult, dict[str, Any] | None]:
    """Import the candidate once, in one isolated child, for both the examples and the invariants gates:
    the first gate to ask runs it, the other waits for the same answer."""
    with context.shared_lock:
        if "probe" not in context.shared:
            result = run_python(context, "kavi.runtime.probe", ["all", PROBE_SPEC_FILE, context.spec.skill_path])
            try:
                verdict: dict[str, Any] | None = json.loads(result.stdout.strip().splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                verdict = None
            context.shared["probe"] = (result, verdict)
        else:
            note_layers(context.shared["probe"][0].layers)  # the child this gate shares, in its record too
        cached: tuple[ExecResult, dict[str, Any] | None] = context.shared["probe"]
        return cached
