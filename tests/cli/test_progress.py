"""Progress of a verification: live gate rows on a terminal; nothing extra under --json (or on a pipe)."""

from __future__ import annotations

import json
import re

import pytest

from kavi.demo import recording_of
from kavi.workspace import Workspace
from tests.support import WORD_COUNT_ARGS, run_cli

CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def built(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    assert run_cli("propose-skill", *WORD_COUNT_ARGS).code == 0
    assert run_cli("build-skill", "word_count", "--replay-from", str(recording_of("word_count"))).code == 0
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich treats the captured output as a terminal
    monkeypatch.setenv("COLUMNS", "120")
    return workspace


def test_a_terminal_sees_each_gate_run_and_finish(built: Workspace) -> None:
    result = run_cli("verify-skill", "word_count")
    assert result.code == 0, result.stderr
    frames = CONTROL.sub("", result.stdout)
    assert "verifying word_count" in frames
    for gate in ("ruff", "mypy", "policy", "invariants", "pytest", "examples"):
        assert re.search(rf"{gate}\s+running", frames), f"{gate} never showed as running"
        assert re.search(rf"pass\s+{gate}\s+\d+\.\d\d s", frames), f"{gate} never showed as finished"


def test_json_on_a_terminal_prints_only_the_json(built: Workspace) -> None:
    result = run_cli("verify-skill", "word_count", "--json")
    assert result.code == 0
    assert json.loads(result.stdout)["status"] == "PASSED"
    assert "\x1b" not in result.stdout and "running" not in result.stdout
