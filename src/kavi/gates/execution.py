"""How gates execute candidate code: always through the isolated executor and under the audit hook, with
the power the spec's side-effect class declares and no more."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kavi.gates.base import GateContext, GateResult, GateStatus
from kavi.runtime.child import child_argv, read_report
from kavi.runtime.guard import guarded_python_argv
from kavi.sandbox.executor import ExecResult, policies_for_spec, run_isolated


def run_python(
    context: GateContext, module: str, args: Sequence[str], env: dict[str, str] | None = None
) -> ExecResult:
    """Run ``python -m module args`` on the candidate: cwd at the verify sandbox, its write roots anchored
    there, the hook installed before anything of the candidate is imported."""
    policy, effects = policies_for_spec(
        context.spec,
        Path(context.sandbox),
        timeout_s=context.timeout_s,
        require_isolation=context.require_isolation,
        env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **(env or {})},
    )
    argv = guarded_python_argv(effects, module=module, args=args)
    return run_isolated(argv, cwd=Path(context.sandbox), policy=policy)


def blocked_result(gate: str, result: ExecResult) -> GateResult | None:
    """The gate's FAIL when the hook or the OS refused an effect or a limit stopped the child, else None."""
    blocks = describe_blocks(result)
    if not blocks:
        return None
    # stdout and stderr kept apart by a line break: a report line (KAVI-BLOCKED ...) must start a line
    report = "\n".join(blocks) + "\n\n" + result.stdout.rstrip("\n") + "\n" + result.stderr
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


def run_skill_child(
    context: GateContext,
    *,
    payload: dict[str, Any] | None = None,
    payloads: list[dict[str, Any]] | None = None,
    introspect: bool = False,
) -> tuple[ExecResult, dict[str, Any] | None]:
    """Run the skill the way `run-skill` does: the same child module, argv, environment and request shape,
    the write roots anchored at the verify sandbox as run-skill anchors them at the workspace. Returns the
    result and the reporter's one report (None when the channel did not carry exactly one)."""
    spec = context.spec
    sandbox = Path(context.sandbox)
    policy, effects = policies_for_spec(
        spec, sandbox, timeout_s=context.timeout_s, require_isolation=context.require_isolation, read_workspace=False
    )
    for root in effects.write_roots:
        Path(root).mkdir(parents=True, exist_ok=True)
    source = context.skill_file.read_bytes()
    request: dict[str, Any] = {
        "name": spec.name,
        "sha256": hashlib.sha256(source).hexdigest(),
        "source": source.decode("utf-8"),
        "filename": str(context.skill_file),
        "spec": spec.canonical_json().decode("utf-8"),
        "input": payload if payload is not None else {},
        "policy": effects.as_dict(),
    }
    if introspect:
        request["introspect"] = True
    if payloads is not None:  # one reporter, one fresh worker forked per input (see kavi.runtime.child)
        request["inputs"] = payloads
    result = run_isolated(child_argv(), cwd=sandbox, policy=policy, stdin=json.dumps(request).encode("utf-8"))
    return result, read_report(result.stdout)

