"""Test isolation: no test touches the user's home, workspace or ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kavi.stages.common import Forge
from kavi.workspace import Workspace, init_workspace


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAVI_TESTING", "1")
    monkeypatch.delenv("KAVI_WORKSPACE", raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


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
