"""Fixtures of the builder tests: a packet, a sandbox, the real Claude Code CLI when installed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kavi.builders.base import BuildPacket

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_CLAUDE = REPO_ROOT / "node_modules" / ".bin" / "claude"


def real_claude() -> Path:
    """The CLI installed by `npm ci`; the test is skipped without it, except under CI where it must be there."""
    if LOCAL_CLAUDE.is_file() and os.access(LOCAL_CLAUDE, os.X_OK):
        return LOCAL_CLAUDE
    reason = f"the Claude Code CLI is not installed at {LOCAL_CLAUDE}: run `npm ci` at the repo root"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the real-CLI tests must run: {reason}")
    pytest.skip(reason)


@pytest.fixture
def claude_binary() -> Path:
    return real_claude()


@pytest.fixture
def packet() -> BuildPacket:
    spec = {
        "name": "word_count",
        "description": "Count the words of a text.",
        "side_effect": "READ_ONLY",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        "output_schema": {"type": "object", "properties": {"count": {"type": "integer"}}},
        "examples": [{"input": {"text": "a b"}, "output": {"count": 2}}],
        "write_roots": [],
        "allow_hosts": [],
        "secrets": [],
        "executables": [],
    }
    return BuildPacket(
        proposal_id="prop-1",
        attempt=1,
        spec=spec,
        allowed_paths=("skills/word_count.py", "skills/test_word_count.py"),
        rules=("Subclass kavi.skill.Skill.", "No network, no subprocess."),
    )


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    folder = tmp_path / "sandbox"
    (folder / "skills").mkdir(parents=True)
    (folder / "kavi.toml").write_text("[workspace]\n", encoding="utf-8")
    return folder


SKILL_SOURCE = """\
from kavi.skill import Skill


class WordCount(Skill):
    def execute(self, text: str) -> dict[str, int]:
        return {"count": len(text.split())}
"""

TEST_SOURCE = """\
from skills.word_count import WordCount


def test_counts_words() -> None:
    assert WordCount().execute("a b") == {"count": 2}
"""
