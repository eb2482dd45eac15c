"""The real Claude Code CLI as the MCP client: `claude -p` starts `kavi mcp` from its MCP config, a scripted
stub of the Anthropic API (127.0.0.1) asks for a kavi tool, and the tool's result reaches the model."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.builders.stub_anthropic import Reply, ToolUse, Turn, serve
from tests.server.conftest import KAVI, Served

CLAUDE = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "claude"
TOOL = "mcp__kavi__word_count"


@pytest.fixture
def claude_binary() -> Path:
    if CLAUDE.is_file() and os.access(CLAUDE, os.X_OK):
        return CLAUDE
    reason = f"the Claude Code CLI is not installed at {CLAUDE}: run `npm ci` at the repo root"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the real-CLI tests must run: {reason}")
    pytest.skip(reason)


def test_claude_code_calls_a_kavi_tool_and_the_model_sees_its_output(
    served: Served, claude_binary: Path, tmp_path: Path
) -> None:
    offered: list[list[str]] = []

    def scenario(turn: Turn) -> Reply:
        offered.append([str(tool.get("name")) for tool in turn.body.get("tools", [])])
        if turn.index == 0:
            return Reply(text="Counting.", tool_uses=(ToolUse(TOOL, {"text": "four words right here"}),))
        return Reply(text="There are four words.")

    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "kavi": {"command": KAVI, "args": ["mcp"], "env": {"KAVI_WORKSPACE": str(served.workspace.root)}}
                }
            }
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    with serve(scenario) as stub:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": stub.url,
            "ANTHROPIC_API_KEY": "sk-stub-key",
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "ENABLE_TOOL_SEARCH": "false",  # offer the MCP tools directly, not behind ToolSearch
        }
        completed = subprocess.run(
            [
                str(claude_binary),
                "-p",
                "How many words are in 'four words right here'? Use the kavi tool.",
                "--mcp-config",
                str(config),
                "--strict-mcp-config",
                "--allowedTools",
                TOOL,
                "--output-format",
                "json",
                "--no-session-persistence",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        requests = list(stub.requests)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert any(TOOL in names for names in offered), offered
    results = [
        block
        for body in requests
        for message in body.get("messages", [])
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert results, "the stub never received a tool_result"
    content = results[-1].get("content")
    assert not results[-1].get("is_error"), content
    if isinstance(content, list):  # text blocks, or the bare text
        content = "".join(str(block.get("text", "")) for block in content)
    assert json.loads(str(content)) == {"count": 4}
    with sqlite3.connect(served.workspace.root / ".kavi" / "ledger.db") as conn:
        outputs = [row[0] for row in conn.execute("SELECT output_json FROM executions WHERE name = 'word_count'")]
    assert json.dumps({"count": 4}) in outputs
