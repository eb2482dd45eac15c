"""Fixtures for the integrity tests: one workspace with TRUSTED skills, built once per session and copied.

Verification costs seconds, so the template is built once (word_count v1 and v2, through the real stages)
and every test gets its own copy of the whole folder (the ledger path in kavi.toml is relative).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.stages.build import build_skill
from kavi.stages.common import Forge
from kavi.stages.promote import promote_skill
from kavi.stages.propose import propose_skill
from kavi.stages.verify import verify_skill
from kavi.workspace import Workspace, init_workspace
from tests.support import move_ledger_to

WORD_COUNT = {
    "name": "word_count",
    "description": "Count words",
    "side_effect": "READ_ONLY",
    "io_schema": {"input": {"text": "str"}, "output": {"count": "int"}},
    "examples": [{"input": {"text": "a b"}, "output": {"count": 2}}],
}


def build_template(root: Path) -> Workspace:
    """word_count v1 (the shipped recording) and v2 (the same plus a comment), both TRUSTED."""
    workspace, _ = init_workspace(root)
    forge = Forge.open(workspace)
    try:
        proposed = propose_skill(forge, **WORD_COUNT)  # type: ignore[arg-type]
        v2 = root.parent / "rec-v2"
        shutil.copytree(recording_of("word_count"), v2, ignore=shutil.ignore_patterns("__pycache__"))
        skill = v2 / "skills" / "word_count.py"
        skill.write_text(skill.read_text() + "# v2\n")
        for source in (recording_of("word_count"), v2):
            built = build_skill(
                forge, proposed.proposal_id, builder_name="replay", builder_options={"source": str(source)}
            )
            assert built.status == "SUCCEEDED", built.reason
            verified = verify_skill(forge, proposed.proposal_id)
            assert verified.passed, verified.gates
            promote_skill(forge, proposed.proposal_id, approver="alice")
    finally:
        forge.close()
    return workspace


@pytest.fixture(scope="session")
def trusted_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("template-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        patch.delenv("KAVI_WORKSPACE", raising=False)
        root = tmp_path_factory.mktemp("template") / "ws"
        build_template(root)
    return root


@pytest.fixture
def trusted(
    trusted_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_ledger_url: str | None
) -> Workspace:
    """A private copy of the template workspace, named by KAVI_WORKSPACE; on the Postgres backend its ledger
    is copied into a fresh database (`kavi ledger migrate`'s copy) and kavi.toml points there."""
    root = tmp_path / "ws"
    shutil.copytree(trusted_template, root, symlinks=True)
    if server_ledger_url is not None:
        move_ledger_to(root, server_ledger_url)
    monkeypatch.setenv("KAVI_WORKSPACE", str(root))
    return Workspace(root)
