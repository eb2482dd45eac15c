"""The one seam through which the server executes a skill.

The HTTP API and the MCP tools hold a :class:`Runner` and nothing else that runs code, so a faster runner (the
warm zygote of issue 12) replaces :class:`ColdRunner` without touching either. Whatever the runner, a call is
the governed run of `kavi run-skill`: the hash is checked before import, input and output are validated, the
side effects are enforced and one execution is recorded; a refusal is a typed :class:`kavi.errors.KaviError`.
"""

from __future__ import annotations

from typing import Any, Protocol

from kavi.stages.run import RunResult, run_skill
from kavi.workspace import Workspace


class Runner(Protocol):
    """Run the latest TRUSTED version of ``name`` on ``payload``; raise a KaviError when it is refused or fails
    (after recording the execution, as `kavi run-skill` does)."""

    def run(self, name: str, payload: dict[str, Any]) -> RunResult: ...


class ColdRunner:
    """A fresh isolated child per call: exactly the stage function behind `kavi run-skill`."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def run(self, name: str, payload: dict[str, Any]) -> RunResult:
        return run_skill(self.workspace, name, payload)
