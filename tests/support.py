"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kavi.__main__ import main
from kavi.demo import recording_of
from kavi.ledger.connection import connect
from kavi.ledger.copy import copy_ledger
from kavi.workspace import CONFIG_FILE, DEFAULT_LEDGER_LINE, Workspace

REPO = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str) -> CliResult:
    """Run the real entry point in-process (the same error handler users get)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return CliResult(code, out.getvalue(), err.getvalue())


WORD_COUNT_ARGS = (
    "--name",
    "word_count",
    "--desc",
    "Count words",
    "--side-effect",
    "READ_ONLY",
    "--io-schema-json",
    '{"input": {"text": "str"}, "output": {"count": "int"}}',
    "--examples-json",
    '[{"input": {"text": "a b"}, "output": {"count": 2}}]',
)


def recording(name: str, tmp_path: Path) -> Path:
    """A writable copy of a shipped recording, for tests that alter it."""
    target = tmp_path / f"rec-{name}"
    shutil.copytree(recording_of(name), target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


# Parametrize a test or a module (``pytestmark = BOTH_BACKENDS``) over both ledger backends: the
# ``workspace`` and ``trusted`` fixtures then hold their ledger in SQLite, then in a real Postgres database.
BOTH_BACKENDS = pytest.mark.parametrize("ledger_backend", ["sqlite", "postgres"], indirect=True)

_APPEND_ONLY_TRIGGERS = ("events_append_only_update", "events_append_only_delete", "events_append_only_truncate")


def ledger_rows(workspace: Workspace, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query on the workspace's ledger, whichever backend holds it."""
    with connect(workspace.ledger_url) as conn:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]


def tamper_ledger(workspace: Workspace, *statements: str) -> None:
    """Run statements as an attacker with write access to the database would: triggers dropped first."""
    with connect(workspace.ledger_url) as conn, conn.writing():
        for trigger in _APPEND_ONLY_TRIGGERS:
            on = " ON events" if conn.backend == "postgresql" else ""
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}{on}")
        for statement in statements:
            conn.execute(statement)


def move_ledger_to(root: Path, url: str) -> None:
    """Copy a workspace's SQLite ledger into the empty database at ``url``, point kavi.toml at it and remove
    the SQLite file (nothing may read the old one by mistake)."""
    workspace = Workspace(root)
    old = workspace.ledger_path
    copy_ledger(workspace.ledger_url, url)
    config = root / CONFIG_FILE
    text = config.read_text(encoding="utf-8")
    assert DEFAULT_LEDGER_LINE in text
    config.write_text(text.replace(DEFAULT_LEDGER_LINE, f"url = {json.dumps(url)}"), encoding="utf-8")
    assert old is not None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{old}{suffix}").unlink(missing_ok=True)


def forge_trusted(forge: Any, spec: dict[str, Any], recording: Path) -> str:
    """Propose, build (replay), verify and promote one skill through the real stages; its proposal id."""
    from kavi.stages.build import build_skill
    from kavi.stages.promote import promote_skill
    from kavi.stages.propose import propose_skill
    from kavi.stages.verify import verify_skill

    proposed = propose_skill(forge, **spec)
    built = build_skill(forge, proposed.proposal_id, builder_name="replay", builder_options={"source": str(recording)})
    assert built.status == "SUCCEEDED", built.reason
    verified = verify_skill(forge, proposed.proposal_id)
    assert verified.passed, verified.gates
    promote_skill(forge, proposed.proposal_id, approver="alice")
    return str(proposed.proposal_id)
