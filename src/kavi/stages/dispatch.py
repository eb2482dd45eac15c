"""Running a TRUSTED name whatever its kind: the one dispatch the server, chat and replay share.

A chain runs step by step (:func:`kavi.stages.run_chain.run_chain`); anything else as `kavi run-skill` runs
it. The kinds table says which is which, so no caller branches on a kind.
"""

from __future__ import annotations

import json
from typing import Any

from kavi.artifacts import ArtifactStore
from kavi.errors import KaviError
from kavi.kinds import kind_of
from kavi.ledger import fast
from kavi.stages.run import RunResult, run_skill
from kavi.stages.run_chain import run_chain
from kavi.workspace import Workspace


def is_composite(workspace: Workspace, name: str, version: int | None = None) -> bool:
    """Whether that TRUSTED version of ``name`` (the latest without ``version``) is of a kind that runs other
    versions (a chain). Any doubt (no ledger, no such TRUSTED version) answers False, and `run_skill` then
    gives its own refusal."""
    if not workspace.has_ledger():
        return False
    conn = fast.connect(workspace.ledger_url)
    try:
        row, _ = fast.trusted_version(conn, name, version)
        spec = json.loads(ArtifactStore(workspace.artifacts_dir).get(row["spec_sha256"]))
    except KaviError:
        return False
    finally:
        conn.close()
    return kind_of(spec.get("kind")).composite


def run_trusted(workspace: Workspace, name: str, payload: dict[str, Any], **options: Any) -> RunResult:
    """Run a TRUSTED name whatever its kind: a chain step by step (:func:`run_chain`), anything else as
    `kavi run-skill` runs it. The one dispatch the server, chat and replay share; ``options`` are those of
    :func:`kavi.stages.run.run_skill` (version, parent, raise_on_failure, launch, ...)."""
    if is_composite(workspace, name, options.get("version")):
        return run_chain(workspace, name, payload, **options)
    return run_skill(workspace, name, payload, **options)
