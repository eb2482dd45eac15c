"""forge applies the lint gate's safe fixes as an attempt of its own before it spends another model call."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kavi.demo import recording_of
from kavi.gates.base import GateResult
from kavi.stages.common import Forge
from kavi.stages.forge import forge_skill
from kavi.stages.propose import propose_skill
from kavi.stages.research import build_trace
from kavi.stages.verify import candidate_files


class _GateLog:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []

    def gate_started(self, gate: str) -> None:
        self.started.append(gate)

    def gate_finished(self, result: GateResult) -> None:
        assert result.gate in self.started  # never a finish before its start
        self.finished.append(result.gate)


def _recording(tmp_path: Path) -> Path:
    """One attempt only: the shipped word_count with an unused import (F401, which ruff fixes safely).
    A second model call would replay the same broken files again."""
    root = tmp_path / "recording"
    shutil.copytree(recording_of("word_count"), root, ignore=shutil.ignore_patterns("__pycache__"))
    skill = root / "skills" / "word_count.py"
    skill.write_text(
        skill.read_text().replace(
            "from __future__ import annotations\n", "from __future__ import annotations\n\nimport os\n"
        )
    )
    return root


def test_fixable_lint_is_fixed_by_ruff_without_a_model_call(forge: Forge, tmp_path: Path) -> None:
    proposal = propose_skill(
        forge,
        name="word_count",
        description="Count words",
        side_effect="READ_ONLY",
        io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
    ).proposal_id
    progress: list[tuple[str, dict[str, object]]] = []
    gates = _GateLog()
    result = forge_skill(
        forge,
        proposal,
        builder_name="replay",
        builder_options={"source": str(_recording(tmp_path))},
        progress=lambda stage, record: progress.append((stage, dict(record))),
        gate_progress=gates,
    )
    assert result.status == "VERIFIED", result.reason
    assert "ruff's safe fixes" in result.reason
    first, second = result.attempts
    assert first["verification"] == "FAILED" and "builder" not in first
    assert second["builder"] == "ruff-fix" and second["verification"] == "PASSED"
    assert [stage for stage, _ in progress].count("building") == 2
    # the gates of both verifications were reported as they started and as they finished
    names = {"ruff", "mypy", "policy", "invariants", "pytest", "examples"}
    assert sorted(gates.started) == sorted([*names, *names]) and sorted(gates.finished) == sorted(gates.started)

    trace = build_trace(forge, str(second["build_id"]))
    assert trace["build"]["builder"] == "ruff-fix"
    call = next(e for e in trace["events"] if e["kind"] == "trace.tool_call")
    command = call["data"]["input"]["command"]
    assert command.startswith("ruff check --fix") and "--select E,F,W,I,B,UP,S,SIM,RUF,ASYNC,BLE,PIE,T10" in command
    fixed = candidate_files(forge, str(trace["build"]["candidate_sha256"]))
    assert b"import os" not in fixed["skills/word_count.py"]
    before = candidate_files(forge, str(build_trace(forge, str(first["build_id"]))["build"]["candidate_sha256"]))
    assert b"import os" in before["skills/word_count.py"]
    assert json.loads(json.dumps(result.attempts))  # the record stays JSON-ready for --json
