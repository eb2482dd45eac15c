"""Read-only commands never create a ledger: looking at a workspace must not change what it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.workspace import Workspace, init_workspace
from tests.support import run_cli

READ_ONLY = [
    ("status",),
    ("list-skills",),
    ("show", "word_count"),
    ("trace", "b_abcdef"),
    ("verify-lock",),
    ("audit",),
    ("doctor",),
    ("builders",),
    ("attest", "word_count"),
    ("run-skill", "word_count"),
]


@pytest.mark.parametrize("command", READ_ONLY, ids=[c[0] for c in READ_ONLY])
def test_a_read_only_command_creates_no_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    workspace: Workspace = init_workspace(tmp_path / "ws")[0]
    monkeypatch.setenv("KAVI_WORKSPACE", str(workspace.root))
    assert not (workspace.state_dir / "ledger.db").exists()
    result = run_cli(*command)
    assert result.code in (0, 1), (command, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "bug" not in result.stderr
    assert not (workspace.state_dir / "ledger.db").exists(), command
    if command[0] in ("status", "list-skills"):
        assert result.code == 0 and "kavi init" in result.stdout, result.stdout
