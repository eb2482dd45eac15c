"""Workspaces for the execution-tree, replay and chat tests: this repository's TRUSTED skills adopted from its
lock, and a real skill forged, verified and promoted from files written here (no recording folder to
collect)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from kavi.stages.build import build_skill
from kavi.stages.common import Forge
from kavi.stages.promote import promote_skill
from kavi.stages.propose import propose_skill
from kavi.stages.verify import verify_skill
from tests.support import REPO, run_cli

SHUFFLE_WORDS = '''"""Shuffle the words of a text: a different order on each call (a non-deterministic skill)."""

from __future__ import annotations

import random

from kavi.skill import SideEffect, Skill
from pydantic import BaseModel


class ShuffleWordsInput(BaseModel):
    text: str


class ShuffleWordsOutput(BaseModel):
    text: str


class ShuffleWords(Skill[ShuffleWordsInput, ShuffleWordsOutput]):
    name = "shuffle_words"
    side_effect = SideEffect.READ_ONLY
    input_model = ShuffleWordsInput
    output_model = ShuffleWordsOutput

    def execute(self, data: ShuffleWordsInput) -> ShuffleWordsOutput:
        words = data.text.split()
        random.shuffle(words)
        return ShuffleWordsOutput(text=" ".join(words))
'''
SHUFFLE_WORDS_TEST = """from shuffle_words import ShuffleWords, ShuffleWordsInput


def test_keeps_every_word() -> None:
    result = ShuffleWords().execute(ShuffleWordsInput(text="a b c d"))
    assert sorted(result.text.split()) == ["a", "b", "c", "d"]


def test_one_word_stays() -> None:
    assert ShuffleWords().execute(ShuffleWordsInput(text="solo")).text == "solo"
"""
SHUFFLE_SPEC: dict[str, Any] = {
    "name": "shuffle_words",
    "description": "Shuffle the words of a text",
    "side_effect": "READ_ONLY",
    "io_schema": {"input": {"text": "str"}, "output": {"text": "str"}},
    "examples": [{"input": {"text": "solo"}, "output": {"text": "solo"}}],
}
SAVE_TEXT: dict[str, Any] = {  # the server tests' skill that writes under a folder its caller names
    "name": "save_text",
    "description": "Save a text as saved.txt under a folder",
    "side_effect": "FILE_WRITE",
    "io_schema": {"input": {"folder": "str", "text": "str"}, "output": {"path": "str"}},
    "examples": [{"input": {"folder": "notes", "text": "hi"}, "output": {"path": "notes/saved.txt"}}],
    "write_roots": ("notes",),
}


def adopt_repository_skills(root: Path) -> Path:
    """A workspace at ``root`` holding this repository's TRUSTED skills, adopted from its lock."""
    root.mkdir(parents=True)
    for name in ("kavi.toml", "kavi.lock"):
        shutil.copy2(REPO / name, root / name)
    for folder in ("skills", "kernels"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "references"))
    result = run_cli("init", str(root), "--json")
    assert result.code == 0, result.stdout + result.stderr
    return root


def promote_recorded(root: Path, spec: dict[str, Any], files: dict[str, str], tmp_path: Path) -> str:
    """Propose, build (the replay builder over ``files``), verify and promote one skill; its proposal id."""
    recording = tmp_path / f"recording-{spec['name']}"
    for relative, content in files.items():
        (recording / relative).parent.mkdir(parents=True, exist_ok=True)
        (recording / relative).write_text(content, encoding="utf-8")
    with Forge.opened(root) as forge:
        proposed = propose_skill(forge, **spec)
        built = build_skill(
            forge, proposed.proposal_id, builder_name="replay", builder_options={"source": str(recording)}
        )
        assert built.status == "SUCCEEDED", built.reason
        verified = verify_skill(forge, proposed.proposal_id)
        assert verified.passed, verified.gates
        promote_skill(forge, proposed.proposal_id, approver="alice")
    return proposed.proposal_id


def promote_shuffle_words(root: Path, tmp_path: Path) -> str:
    return promote_recorded(
        root,
        SHUFFLE_SPEC,
        {"skills/shuffle_words.py": SHUFFLE_WORDS, "skills/test_shuffle_words.py": SHUFFLE_WORDS_TEST},
        tmp_path,
    )


def ledger_rows(root: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / ".kavi" / "ledger.db") as conn:
        return list(conn.execute(sql, params))
