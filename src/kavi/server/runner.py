"""The one seam through which the server executes a skill or a chain.

The HTTP API and the MCP tools hold a :class:`Runner` and nothing else that runs code: :class:`WarmRunner`
(the default of `kavi serve`: a child forked per call from a warm zygote, :mod:`kavi.sandbox.warm`) or
:class:`ColdRunner` (a fresh isolated interpreter per call, exactly `kavi run-skill`). Whatever the runner, a
call is the governed run of `kavi run-skill` (for a chain, of `kavi run-chain`: each step such a run): the
hash is checked before import, input and output are validated, the side effects are enforced and the
execution is recorded; a refusal is a typed :class:`kavi.errors.KaviError`.
"""

from __future__ import annotations

from typing import Any, Protocol

from kavi.stages.dispatch import run_trusted
from kavi.stages.run import RunResult
from kavi.workspace import Workspace


class Runner(Protocol):
    """Run the latest TRUSTED version of ``name`` on ``payload``; raise a KaviError when it is refused or fails
    (after recording the execution, as `kavi run-skill` does)."""

    def run(self, name: str, payload: dict[str, Any]) -> RunResult: ...

    def describe(self) -> dict[str, Any]:
        """What runs the calls (for /health): its kind and, for the warm runner, where calls went."""
        ...

    def close(self) -> None: ...


class ColdRunner:
    """A fresh isolated child per call (per step, for a chain): the stage functions behind `kavi run-skill` and
    `kavi run-chain`, chosen by the kind of the name's latest TRUSTED version."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def run(self, name: str, payload: dict[str, Any], **options: Any) -> RunResult:
        return run_trusted(self.workspace, name, payload, **options)

    def describe(self) -> dict[str, Any]:
        return {"kind": "cold"}

    def close(self) -> None:
        """Nothing to stop: every call's child ended with the call."""


class WarmRunner:
    """The same stage function, its child forked from the workspace's warm zygote. A call the zygote cannot
    confine as the cold path would (NETWORK, no FULL isolation here, a failed start-up probe) runs cold, and
    :meth:`describe` counts why."""

    def __init__(self, workspace: Workspace) -> None:
        from kavi.sandbox.warm import Zygote

        self.workspace = workspace
        self.zygote = Zygote().start(wait=False)

    def run(self, name: str, payload: dict[str, Any], **options: Any) -> RunResult:
        return run_trusted(self.workspace, name, payload, launch=self.zygote.run, **options)

    def describe(self) -> dict[str, Any]:
        return self.zygote.describe()

    def close(self) -> None:
        self.zygote.close()


# `kavi serve --runner NAME`
RUNNERS: dict[str, type[ColdRunner] | type[WarmRunner]] = {"warm": WarmRunner, "cold": ColdRunner}
