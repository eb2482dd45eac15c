"""Test isolation: no test touches the user's home, workspace or ledger."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kavi.__main__ import main
from kavi.demo import recording_of
from kavi.stages.common import Forge
from kavi.workspace import Workspace, init_workspace

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAVI_TESTING", "1")
    monkeypatch.delenv("KAVI_WORKSPACE", raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


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


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    ws, _ = init_workspace(tmp_path / "ws")
    Forge.open(ws).close()  # as `kavi init` does: the ledger exists from the start
    monkeypatch.setenv("KAVI_WORKSPACE", str(ws.root))
    return ws


@pytest.fixture
def forge(workspace: Workspace) -> Iterator[Forge]:
    opened = Forge.open(workspace)
    yield opened
    opened.close()


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
