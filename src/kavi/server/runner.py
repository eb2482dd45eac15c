"""The one seam through which the server executes a skill or a chain.

The HTTP API and the MCP tools hold a :class:`Runner` and nothing else that runs code, so a faster runner (the
warm zygote of issue 12) replaces :class:`ColdRunner` without touching either. Whatever the runner, a call is
the governed run of `kavi run-skill` (or, for a chain, of `kavi run-chain`: each step such a run): the hash is
checked before import, input and output are validated, the side effects are enforced and the execution is
recorded; a refusal is a typed :class:`kavi.errors.KaviError`.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from kavi.artifacts import ArtifactStore
from kavi.errors import KaviError
from kavi.kinds import kind_of
from kavi.ledger import fast
from kavi.stages.run import RunResult, run_skill
from kavi.stages.run_chain import run_chain
from kavi.workspace import Workspace


class Runner(Protocol):
    """Run the latest TRUSTED version of ``name`` on ``payload``; raise a KaviError when it is refused or fails
    (after recording the execution, as `kavi run-skill` does)."""

    def run(self, name: str, payload: dict[str, Any]) -> RunResult: ...


class ColdRunner:
    """A fresh isolated child per call (per step, for a chain): the stage functions behind `kavi run-skill` and
    `kavi run-chain`, chosen by the kind of the name's latest TRUSTED version."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def run(self, name: str, payload: dict[str, Any]) -> RunResult:
        if composite(self.workspace, name):
            return run_chain(self.workspace, name, payload)
        return run_skill(self.workspace, name, payload)


def composite(workspace: Workspace, name: str) -> bool:
    """Whether the latest TRUSTED version of ``name`` is of a kind that runs other versions (a chain). Any
    doubt (no ledger, no TRUSTED version) answers False, and `run_skill` then gives its own refusal."""
    ledger_path = workspace.ledger_path
    if ledger_path is None or not ledger_path.is_file():
        return False
    conn = fast.connect(ledger_path)
    try:
        row, _ = fast.trusted_version(conn, name, None)
        spec = json.loads(ArtifactStore(workspace.artifacts_dir).get(row["spec_sha256"]))
    except KaviError:
        return False
    finally:
        conn.close()
    return kind_of(spec.get("kind")).composite
