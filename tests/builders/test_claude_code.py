"""The claude-code builder without the real CLI (a fake `claude` script stands in).

Covers the environment scrub, the process-group kill, stream parsing, binary discovery and options.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from kavi.builders.base import BuildPacket, BuildStatus
from kavi.builders.claude_code import (
    ALLOWED_ENV_KEYS,
    BINARY_ENV,
    ClaudeCodeBuilder,
    ClaudeCodeOptions,
    find_claude_binary,
    parse_stream,
)
from kavi.errors import BuilderUnavailableError, ConfigError

RESULT_LINE = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "num_turns": 1,
    "result": "ok",
    "total_cost_usd": 0.01,
    "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2},
    "permission_denials": [],
}


def _fake_claude(folder: Path, body: str) -> Path:
    """A stand-in `claude`: a Python script with the given body, executable."""
    script = folder / "fake-claude"
    script.write_text(f"#!{sys.executable}\nimport json, os, sys, subprocess, time\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_only_allowed_variables_reach_the_cli(
    tmp_path: Path, packet: BuildPacket, sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "env.json"
    fake = _fake_claude(
        tmp_path,
        f"json.dump(dict(os.environ), open({str(dump)!r}, 'w'))\nsys.stdin.read()\nprint(json.dumps({RESULT_LINE!r}))",
    )
    monkeypatch.setenv("KAVI_CANARY_SECRET", "xyz")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://parent.invalid")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-parent")
    monkeypatch.setenv("MY_KEY", "sk-chosen")
    options = ClaudeCodeOptions(binary=str(fake), api_key_env="MY_KEY")
    outcome = ClaudeCodeBuilder(options).build(packet, sandbox)

    assert outcome.status is BuildStatus.SUCCEEDED, outcome.reason
    seen = json.loads(dump.read_text())
    assert set(seen) <= ALLOWED_ENV_KEYS
    assert "KAVI_CANARY_SECRET" not in seen and "xyz" not in json.dumps(seen)
    assert "also-secret" not in json.dumps(seen)
    assert seen["ANTHROPIC_API_KEY"] == "sk-chosen"
    assert "ANTHROPIC_BASE_URL" not in seen  # only the option sets it, never the parent's
    assert seen["HOME"] != os.environ.get("HOME")
    assert not Path(seen["HOME"]).exists()  # the private home is removed afterwards
    assert seen["DISABLE_TELEMETRY"] == seen["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert outcome.usage.input_tokens == 12 and outcome.cost_usd == 0.01


def test_prompt_goes_on_stdin_and_flags_confine_tools(
    tmp_path: Path, packet: BuildPacket, sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "call.json"
    fake = _fake_claude(
        tmp_path,
        f"json.dump({{'argv': sys.argv[1:], 'stdin': sys.stdin.read(), 'cwd': os.getcwd()}}, "
        f"open({str(dump)!r}, 'w'))\nprint(json.dumps({RESULT_LINE!r}))",
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    options = ClaudeCodeOptions(binary=str(fake), model="claude-x", max_turns=7)
    ClaudeCodeBuilder(options).build(packet, sandbox)

    call = json.loads(dump.read_text())
    argv = call["argv"]
    assert argv[argv.index("--tools") + 1] == "Read,Write,Edit,Glob,Grep"
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
    assert argv[argv.index("--max-turns") + 1] == "7"
    assert argv[argv.index("--model") + 1] == "claude-x"
    assert "-p" in argv and "stream-json" in argv and "--verbose" in argv
    assert "Bash" not in " ".join(argv)
    assert "# Build packet: word_count" in call["stdin"]
    assert Path(call["cwd"]).resolve() == sandbox.resolve()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_timeout_kills_the_whole_process_group(
    tmp_path: Path, packet: BuildPacket, sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    fake = _fake_claude(
        tmp_path,
        "child = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"  # a stubborn CLI
        "time.sleep(300)",
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    start = time.monotonic()
    outcome = ClaudeCodeBuilder(ClaudeCodeOptions(binary=str(fake), timeout_s=1)).build(packet, sandbox)
    assert time.monotonic() - start < 10
    assert outcome.status is BuildStatus.FAILED and outcome.failure_kind == "TIMEOUT"
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_crash_without_result_is_a_build_error(
    tmp_path: Path, packet: BuildPacket, sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_claude(tmp_path, "sys.stderr.write('boom: no config\\n'); sys.exit(3)")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    outcome = ClaudeCodeBuilder(ClaudeCodeOptions(binary=str(fake))).build(packet, sandbox)
    assert outcome.status is BuildStatus.FAILED and outcome.failure_kind == "BUILD_ERROR"
    assert "code 3" in (outcome.reason or "") and "boom" in (outcome.reason or "")


# --- availability and discovery ----------------------------------------------------------------


def test_missing_binary_is_unavailable_with_install_hint(
    tmp_path: Path, packet: BuildPacket, sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    environ = {"PATH": str(tmp_path), "ANTHROPIC_API_KEY": "k"}
    builder = ClaudeCodeBuilder(ClaudeCodeOptions(), environ=environ)
    ok, reason = builder.available()
    assert not ok and "npm install @anthropic-ai/claude-code" in reason
    with pytest.raises(BuilderUnavailableError, match="npm install"):
        builder.build(packet, sandbox)


def test_binary_that_cannot_start_is_unavailable(tmp_path: Path, packet: BuildPacket, sandbox: Path) -> None:
    broken = tmp_path / "claude"
    broken.write_bytes(b"\x7fELF not really")
    broken.chmod(0o755)
    builder = ClaudeCodeBuilder(ClaudeCodeOptions(binary=str(broken)), environ={"PATH": "", "ANTHROPIC_API_KEY": "k"})
    with pytest.raises(BuilderUnavailableError, match="cannot start"):
        builder.build(packet, sandbox)


def test_missing_key_is_unavailable_naming_the_variable(tmp_path: Path) -> None:
    fake = _fake_claude(tmp_path, "")
    builder = ClaudeCodeBuilder(ClaudeCodeOptions(binary=str(fake), api_key_env="TEAM_KEY"), environ={"PATH": ""})
    ok, reason = builder.available()
    assert not ok and reason.startswith("TEAM_KEY is not set")


def test_binary_discovery_order(tmp_path: Path) -> None:
    option = _fake_claude(tmp_path, "")
    from_env = tmp_path / "env" / "claude"
    from_env.parent.mkdir()
    from_env.write_text("#!/bin/sh\n")
    from_env.chmod(0o755)
    on_path = tmp_path / "bin" / "claude"
    on_path.parent.mkdir()
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    project = tmp_path / "project" / "deep" / "er"
    project.mkdir(parents=True)
    local = tmp_path / "project" / "node_modules" / ".bin" / "claude"
    local.parent.mkdir(parents=True)
    local.write_text("#!/bin/sh\n")
    local.chmod(0o755)

    env = {BINARY_ENV: str(from_env), "PATH": str(on_path.parent)}
    assert find_claude_binary(str(option), env, project) == option.resolve()
    assert find_claude_binary(None, env, project) == from_env.resolve()
    assert find_claude_binary(None, {"PATH": str(on_path.parent)}, project) == on_path.resolve()
    assert find_claude_binary(None, {"PATH": ""}, project) == local
    assert find_claude_binary(str(tmp_path / "nope"), env, project) is None


def test_env_overrides_options_and_bad_values_name_the_variable() -> None:
    environ = {"KAVI_CLAUDE_MAX_TURNS": "5", "KAVI_CLAUDE_MODEL": "m", "KAVI_CLAUDE_BIN": "x"}
    builder = ClaudeCodeBuilder.from_config({"max_turns": 9, "timeout_s": 30}, environ=environ)
    assert builder.options.max_turns == 5 and builder.options.model == "m"
    assert builder.options.timeout_s == 30
    with pytest.raises(ConfigError, match="KAVI_CLAUDE_TIMEOUT_S"):
        ClaudeCodeBuilder.from_config({}, environ={"KAVI_CLAUDE_TIMEOUT_S": "soon"})
    with pytest.raises(ConfigError, match="turns"):
        ClaudeCodeBuilder.from_config({"turns": 3}, environ={})


# --- stream parsing ------------------------------------------------------------------------------


def _assistant(block: dict[str, object]) -> str:
    usage = {"input_tokens": 3, "output_tokens": 4}
    return json.dumps({"type": "assistant", "message": {"id": "m1", "content": [block], "usage": usage}})


def test_parse_stream_builds_trace_events() -> None:
    tool_result = {"type": "tool_result", "tool_use_id": "t1", "content": "ok", "is_error": False}
    lines = [
        json.dumps({"type": "system", "subtype": "init", "cwd": "/s", "tools": ["Read"]}),
        "not json at all",
        # the CLI writes one line per content block, each repeating the message's usage
        _assistant({"type": "text", "text": "hello"}),
        _assistant({"type": "tool_use", "id": "t1", "name": "Write", "input": {"a": 1}}),
        json.dumps({"type": "user", "message": {"content": [tool_result]}}),
        json.dumps({**RESULT_LINE, "permission_denials": [{"tool_name": "Write", "tool_input": {}}]}),
    ]
    summary = parse_stream(lines)
    kinds = [event.kind for event in summary.events]
    assert kinds == [
        "init",
        "assistant_message",
        "usage",
        "tool_call",
        "tool_result",
        "result",
        "usage",
        "cost",
    ]
    assert summary.unparsed_lines == 1
    assert summary.denials == [{"tool_name": "Write", "tool_input": {}}]
    assert summary.events[3].data == {"id": "t1", "name": "Write", "input": {"a": 1}}
    round_trip = json.loads(json.dumps([asdict(e) for e in summary.events]))
    assert round_trip[4]["data"]["content"] == "ok"


def test_parse_stream_cuts_huge_texts() -> None:
    line = {"type": "assistant", "message": {"content": [{"type": "text", "text": "x" * 50_000}]}}
    event = parse_stream([json.dumps(line)]).events[0]
    assert len(event.data["text"]) < 21_000 and "cut" in event.data["text"]
