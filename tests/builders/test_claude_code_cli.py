"""The claude-code builder driving the real Claude Code CLI against a stub Anthropic server."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from kavi.builders.base import BuildPacket, BuildStatus
from kavi.builders.claude_code import ClaudeCodeBuilder, ClaudeCodeOptions
from kavi.errors import BuildError
from tests.builders.conftest import SKILL_SOURCE, TEST_SOURCE
from tests.builders.stub_anthropic import Reply, ToolUse, Turn, serve


def _builder(binary: Path, url: str, **options: object) -> ClaudeCodeBuilder:
    environ = {"PATH": os.environ.get("PATH", ""), "ANTHROPIC_API_KEY": "sk-stub-key"}
    return ClaudeCodeBuilder(
        ClaudeCodeOptions(binary=str(binary), base_url=url, **options),  # type: ignore[arg-type]
        environ=environ,
    )


def _write(turn: Turn, relative: str, content: str) -> ToolUse:
    return ToolUse("Write", {"file_path": f"{turn.workdir}/{relative}", "content": content})


def _tool_calls(outcome_trace: tuple[object, ...]) -> list[dict[str, object]]:
    return [e.data for e in outcome_trace if getattr(e, "kind", None) == "tool_call"]  # type: ignore[attr-defined]


def _processes_in(folder: Path) -> list[int]:
    """Pids whose working directory is inside ``folder`` (a CLI left running would show here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == folder or folder in cwd.parents:
            found.append(int(entry.name))
    return found


def test_good_build_writes_skill_and_test(claude_binary: Path, packet: BuildPacket, sandbox: Path) -> None:
    def scenario(turn: Turn) -> Reply:
        if turn.index == 0:
            return Reply(
                text="Writing the skill and its test.",
                tool_uses=(
                    _write(turn, "skills/word_count.py", SKILL_SOURCE),
                    _write(turn, "skills/test_word_count.py", TEST_SOURCE),
                ),
            )
        assert all(not r.get("is_error") for r in turn.tool_results())
        return Reply(text="Done: wrote the skill and its test.")

    with serve(scenario) as stub:
        outcome = _builder(claude_binary, stub.url).build(packet, sandbox)

    assert outcome.status is BuildStatus.SUCCEEDED, outcome.reason
    assert (sandbox / "skills/word_count.py").read_text() == SKILL_SOURCE
    assert (sandbox / "skills/test_word_count.py").read_text() == TEST_SOURCE
    kinds = [event.kind for event in outcome.trace]
    assert kinds[0] == "prompt" and "init" in kinds and "result" in kinds
    assert [c["name"] for c in _tool_calls(outcome.trace)] == ["Write", "Write"]
    changed = next(e.data for e in outcome.trace if e.kind == "files_changed")
    assert changed["created"] == ["skills/test_word_count.py", "skills/word_count.py"]
    assert outcome.usage.input_tokens > 0 and outcome.usage.output_tokens > 0
    assert outcome.cost_usd is not None
    # the packet went to the model on stdin, with the key we gave and no other
    first_user = json.dumps(stub.requests[0]["messages"])
    assert "Build packet: word_count" in first_user
    assert {h.get("x-api-key") or h.get("X-Api-Key") for h in stub.headers} == {"sk-stub-key"}
    json.dumps([asdict(event) for event in outcome.trace])  # storable as ledger events


def test_write_outside_allowlist_is_reported_in_trace(claude_binary: Path, packet: BuildPacket, sandbox: Path) -> None:
    def scenario(turn: Turn) -> Reply:
        if turn.index == 0:
            return Reply(tool_uses=(_write(turn, "notes/extra.txt", "not allowed\n"),))
        return Reply(text="done")

    with serve(scenario) as stub:
        outcome = _builder(claude_binary, stub.url).build(packet, sandbox)

    # the builder does not judge the allowlist (the build stage does); it reports what was written
    assert outcome.status is BuildStatus.SUCCEEDED
    paths = [str(c["input"]["file_path"]) for c in _tool_calls(outcome.trace)]  # type: ignore[index]
    assert paths and paths[0].endswith("/notes/extra.txt")
    changed = next(e.data for e in outcome.trace if e.kind == "files_changed")
    assert changed["created"] == ["notes/extra.txt"]


def test_permission_denial_fails_the_build(
    claude_binary: Path, packet: BuildPacket, sandbox: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"

    def scenario(turn: Turn) -> Reply:
        if turn.index == 0:
            return Reply(tool_uses=(ToolUse("Write", {"file_path": str(outside), "content": "x"}),))
        return Reply(text="done")

    with serve(scenario) as stub:
        outcome = _builder(claude_binary, stub.url).build(packet, sandbox)

    assert outcome.status is BuildStatus.FAILED
    assert outcome.failure_kind == "GATE_VIOLATION"
    assert "refused 1 tool call" in (outcome.reason or "")
    assert not outside.exists()
    assert any(e.kind == "permission_denied" for e in outcome.trace)


def test_workspace_settings_cannot_widen_permissions(
    claude_binary: Path, packet: BuildPacket, sandbox: Path, tmp_path: Path
) -> None:
    """A sandbox is a copy of the user's workspace: its .claude/ settings must grant nothing."""
    outside = tmp_path / "escaped.txt"
    (sandbox / ".claude").mkdir()
    settings = {
        "permissions": {
            "allow": ["Write", "Write(//**)"],
            "additionalDirectories": [str(tmp_path)],
        },
        "hooks": {
            "PreToolUse": [
                {
                    "matcher": "*",
                    "hooks": [{"type": "command", "command": "touch " + str(tmp_path / "hooked")}],
                }
            ]
        },
    }
    (sandbox / ".claude" / "settings.json").write_text(json.dumps(settings))

    def scenario(turn: Turn) -> Reply:
        if turn.index == 0:
            return Reply(tool_uses=(ToolUse("Write", {"file_path": str(outside), "content": "x"}),))
        return Reply(text="done")

    with serve(scenario) as stub:
        outcome = _builder(claude_binary, stub.url).build(packet, sandbox)

    assert outcome.failure_kind == "GATE_VIOLATION"
    assert not outside.exists()
    assert not (tmp_path / "hooked").exists()


def test_stalled_stream_times_out_and_kills_the_cli(claude_binary: Path, packet: BuildPacket, sandbox: Path) -> None:
    with serve(lambda turn: Reply(stall=True)) as stub:
        start = time.monotonic()
        outcome = _builder(claude_binary, stub.url, timeout_s=3).build(packet, sandbox)
        elapsed = time.monotonic() - start

    assert outcome.status is BuildStatus.FAILED
    assert outcome.failure_kind == "TIMEOUT"
    assert "within 3s" in (outcome.reason or "")
    assert elapsed < 15
    assert _processes_in(sandbox) == []


def test_max_turns_stop_fails_the_build(claude_binary: Path, packet: BuildPacket, sandbox: Path) -> None:
    def scenario(turn: Turn) -> Reply:
        return Reply(tool_uses=(ToolUse("Glob", {"pattern": "*.py"}),))

    with serve(scenario) as stub:
        outcome = _builder(claude_binary, stub.url, max_turns=1).build(packet, sandbox)

    assert outcome.status is BuildStatus.FAILED
    assert outcome.failure_kind == "BUILD_ERROR"
    assert "max_turns=1" in (outcome.reason or "")


def test_server_down_is_backend_unavailable(
    claude_binary: Path, packet: BuildPacket, sandbox: Path, closed_port_url: str
) -> None:
    outcome = _builder(claude_binary, closed_port_url, max_retries=0).build(packet, sandbox)

    assert outcome.status is BuildStatus.FAILED
    assert outcome.failure_kind == "BACKEND_UNAVAILABLE"
    assert "ECONNREFUSED" in (outcome.reason or "") or "onnection" in (outcome.reason or "")


@pytest.fixture
def closed_port_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_ask_answers_text_with_no_tools_in_a_private_folder(claude_binary: Path, tmp_path: Path) -> None:
    """The planner's call: one turn, no tool offered, the planner's own system prompt, the answer's cost."""
    seen: list[str] = []

    def scenario(turn: Turn) -> Reply:
        seen.append(turn.workdir)
        return Reply(text='{"skills": []}')

    with serve(scenario, toolless=True) as stub:
        answer = _builder(claude_binary, stub.url).ask("You are a planner.", "Goal: count words")
    assert answer.text == '{"skills": []}'
    assert answer.cost_usd is not None and answer.cost_usd > 0 and answer.usage.output_tokens > 0
    [asked] = [body for body in stub.requests if "messages" in body]
    assert not asked.get("tools") and "You are a planner." in json.dumps(asked["system"])
    assert "Goal: count words" in json.dumps(asked["messages"][0])
    [workdir] = seen
    assert Path(workdir).name == "work" and not Path(workdir).exists()  # private, and removed afterwards
    assert str(tmp_path) not in workdir and str(Path.cwd()) not in workdir


def test_ask_cannot_act_even_when_the_model_tries(claude_binary: Path, tmp_path: Path) -> None:
    """No tool exists for the planner: a Write the model asks for is never carried out, and the run fails."""
    target = tmp_path / "planted.txt"

    def scenario(turn: Turn) -> Reply:
        if turn.index == 0:
            return Reply(tool_uses=(ToolUse("Write", {"file_path": str(target), "content": "x"}),))
        return Reply(text="done")

    with serve(scenario, toolless=True) as stub, pytest.raises(BuildError, match="did not answer in its one turn"):
        _builder(claude_binary, stub.url).ask("You are a planner.", "Goal")
    assert not target.exists()
