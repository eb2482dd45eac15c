"""How gates execute candidate code: always through the isolated executor, with the power the spec's
side-effect class declares and no more."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from kavi.gates.base import GateContext
from kavi.sandbox.executor import ExecPolicy, ExecResult, run_isolated


def policy_for(context: GateContext) -> ExecPolicy:
    spec = context.spec
    return ExecPolicy(
        side_effect=spec.side_effect,
        timeout_s=context.timeout_s,
        env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        write_roots=tuple(context.sandbox / root for root in spec.write_roots),
        allow_hosts=spec.allow_hosts,
        executables=spec.executables,
        require_isolation=context.require_isolation,
    )


def run_python(context: GateContext, module: str, args: Sequence[str]) -> ExecResult:
    """Run ``python -m module args`` on the candidate, isolated, with cwd at the verify sandbox."""
    argv = [sys.executable, "-m", module, *args]
    return run_isolated(argv, cwd=Path(context.sandbox), policy=policy_for(context))
