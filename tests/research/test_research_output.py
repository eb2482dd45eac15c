"""research-skill speaks plainly: one prefix, no raw JSON, whole messages, and a concrete fix per failure kind.

One candidate fails every way at once (a fixable and an unfixable lint finding, a type error, a failing
assertion, a file write a READ_ONLY skill may not do), verified by the real gates.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kavi.workspace import Workspace
from tests.support import WORD_COUNT_ARGS, run_cli

SKILL = '''\
"""Count words."""

from __future__ import annotations

import os
from pathlib import Path

from kavi.skill import SideEffect, Skill
from pydantic import BaseModel


class WordCountInput(BaseModel):
    text: str


class WordCountOutput(BaseModel):
    count: int


class WordCount(Skill[WordCountInput, WordCountOutput]):
    name = "word_count"
    side_effect = SideEffect.READ_ONLY
    input_model = WordCountInput
    output_model = WordCountOutput

    def execute(self, data: WordCountInput) -> WordCountOutput:
        unused: int = "x"
        if data.text == "write":
            Path("leak.txt").write_text(data.text)
        return WordCountOutput(count=len(data.text.split()))
'''

TESTS = """\
from word_count import WordCount, WordCountInput


def test_counts_two_words_as_three() -> None:
    assert WordCount().execute(WordCountInput(text="a b")).count == 3


def test_writes() -> None:
    assert WordCount().execute(WordCountInput(text="write")).count == 1
"""


@pytest.fixture
def failed_build(workspace: Workspace, tmp_path: Path) -> str:
    recording = tmp_path / "recording" / "skills"
    recording.mkdir(parents=True)
    (recording / "word_count.py").write_text(SKILL)
    (recording / "test_word_count.py").write_text(TESTS)
    assert run_cli("propose-skill", *WORD_COUNT_ARGS).code == 0
    built = run_cli("build-skill", "word_count", "--replay-from", str(recording.parent), "--json").json()
    assert run_cli("verify-skill", "word_count").code == 1
    return str(built["build_id"])


def test_research_output_names_each_problem_and_its_fix(failed_build: str, tmp_path: Path) -> None:
    result = run_cli("research-skill", failed_build)
    text = result.stdout
    assert result.code == 0, result.stderr
    first = text.splitlines()[0]
    assert first.startswith("VERIFY_POLICY failing gate(s)") and first.count("VERIFY_POLICY") == 1
    assert '{"' not in text and "..." not in text  # no raw JSON, nothing cut
    # fixable lint: the exact invocation, with the gate's own settings
    command = next(line.split("`")[1] for line in text.splitlines() if "fix: run `ruff check --fix" in line)
    assert "--select E,F,W,I,B,UP,S,SIM,RUF,ASYNC,BLE,PIE,T10" in command
    assert "lint.isort.known-third-party" in command and "skills/word_count.py" in command
    assert "F841 Local variable `unused` is assigned to but never used" in text  # unfixable: by hand
    # a mypy error: its code and line
    assert "skills/word_count.py:27" in text and "[assignment] Incompatible types in assignment" in text
    # a failing test: the assertion and the values
    assert "skills/test_word_count.py:5 test_counts_two_words_as_three" in text
    assert "assert 2 == 3" in text and "saw 2 where it expected == 3" in text
    # a blocked effect: the declared class and the effect, the sandbox path gone
    assert "file write blocked; the skill is declared READ_ONLY" in text and "kavi-verify-" not in text
    assert "FILE_WRITE (--write-root FOLDER)" in text

    # the printed command really applies the safe fix, with nothing but the gate's settings
    copy = tmp_path / "copy"
    (copy / "skills").mkdir(parents=True)
    (copy / "skills" / "word_count.py").write_text(SKILL)
    (copy / "skills" / "test_word_count.py").write_text(TESTS)
    argv = shlex.split(command)
    assert argv[0] == "ruff"
    subprocess.run([sys.executable, "-m", *argv], cwd=copy, capture_output=True, check=False)
    fixed = (copy / "skills" / "word_count.py").read_text()
    assert "import os\n" not in fixed and "unused: int" in fixed
