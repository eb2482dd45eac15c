"""TRUSTED skills as MCP tools, through the official SDK's real client over stdio (`kavi mcp` as a subprocess)
and over streamable HTTP (`/mcp` on `kavi serve`)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.server.conftest import KAVI, Served


def _stdio(served: Served) -> Client:
    env = {**os.environ, "KAVI_WORKSPACE": str(served.workspace.root)}
    return Client(StdioServerParameters(command=KAVI, args=["mcp"], env=env), read_timeout_seconds=60)


def _http(served: Served) -> Client:
    return Client(f"{served.url}/mcp", read_timeout_seconds=60)


def _spec(served: Served, name: str) -> dict[str, Any]:
    with served.client() as client:
        return dict(client.get(f"/api/v1/skills/{name}").json()["spec"])


def _tool_sha256(served: Served, name: str) -> str:
    with served.client() as client:
        return str(client.get(f"/api/v1/skills/{name}").json()["tool"]["sha256"])


def _execution(served: Served, execution_id: str) -> tuple[str, str | None] | None:
    with sqlite3.connect(served.workspace.root / ".kavi" / "ledger.db") as conn:
        row = conn.execute("SELECT name, output_json FROM executions WHERE id = ?", (execution_id,)).fetchone()
    return None if row is None else (row[0], row[1])


async def _exercise(client: Client, served: Served, outside: Path) -> None:
    with anyio.fail_after(120):
        await _calls(client, served, outside)


async def _calls(client: Client, served: Served, outside: Path) -> None:
    async with client:
        listed = await client.list_tools()
        tools = {tool.name: tool for tool in listed.tools}
        assert set(tools) == {"word_count", "save_text"}
        for name, tool in tools.items():
            spec = _spec(served, name)
            assert tool.input_schema == spec["input_schema"] and tool.output_schema == spec["output_schema"]
            assert tool.description == spec["description"]
            assert tool.meta["kavi/tool_sha256"] == _tool_sha256(served, name)  # type: ignore[index]

        called = await client.call_tool("word_count", {"text": "tools over mcp"})
        assert not called.is_error, called.content
        assert called.structured_content == {"count": 3}
        execution_id = called.meta["kavi/execution_id"]  # type: ignore[index]
        assert _execution(served, execution_id) == ("word_count", json.dumps({"count": 3}))

        blocked = await client.call_tool("save_text", {"folder": str(outside), "text": "escape"})
        assert blocked.is_error
        message = blocked.content[0].text  # type: ignore[union-attr]
        assert "SideEffectViolation" in message and "save_text v1 failed" in message
        assert list(outside.iterdir()) == []

        bad_input = await client.call_tool("word_count", {"words": 1})
        assert bad_input.is_error
        unknown = await client.call_tool("not_a_skill", {})
        assert unknown.is_error and "no TRUSTED skill" in unknown.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("transport", [_stdio, _http], ids=["stdio", "streamable-http"])
def test_tools_list_call_and_blocked_effect(served: Served, tmp_path: Path, transport: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    anyio.run(_exercise, transport(served), served, outside)


def _propose_and_reject(served: Served, name: str) -> None:
    with served.client() as client:
        proposed = client.post(
            "/api/v1/proposals",
            json={
                "name": name,
                "description": "A proposal made only to be rejected",
                "side_effect": "READ_ONLY",
                "io_schema": {"input": {"text": "str"}, "output": {"count": "int"}},
            },
        )
        assert proposed.status_code == 202, proposed.text
        rejected = client.post(f"/api/v1/proposals/{proposed.json()['proposal_id']}/rejection", json={"reason": "x"})
        assert rejected.status_code == 200, rejected.text


async def _listen_over_http(served: Served) -> None:
    with anyio.fail_after(60):
        async with _http(served) as client, client.listen(tools_list_changed=True) as subscription:
            await anyio.to_thread.run_sync(_propose_and_reject, served, "rejected_over_http")
            async for event in subscription:
                assert type(event).__name__ == "ToolsListChanged"
                return


def test_a_rejection_through_the_server_sends_tools_list_changed_over_http(served: Served) -> None:
    anyio.run(_listen_over_http, served)


async def _notified_over_stdio(served: Served) -> None:
    heard = anyio.Event()

    async def on_message(message: Any) -> None:
        if "notifications/tools/list_changed" in repr(message):
            heard.set()

    env = {**os.environ, "KAVI_WORKSPACE": str(served.workspace.root)}
    client = Client(
        StdioServerParameters(command=KAVI, args=["mcp"], env=env),
        mode="legacy",
        message_handler=on_message,
        read_timeout_seconds=60,
    )
    with anyio.fail_after(60):
        async with client:
            await client.list_tools()
            await anyio.to_thread.run_sync(_propose_and_reject, served, "rejected_over_stdio")
            await heard.wait()


def test_a_ledger_change_reaches_a_stdio_client_as_tools_list_changed(served: Served) -> None:
    anyio.run(_notified_over_stdio, served)


async def _refused_hash(served: Served) -> None:
    with anyio.fail_after(60):
        async with _http(served) as client:
            refused = await client.call_tool("word_count", {"text": "tampered"})
    assert refused.is_error
    assert "IntegrityError" not in refused.content[0].text  # kavi's message, not a traceback  # type: ignore[union-attr]
    assert "skills/word_count.py" in refused.content[0].text  # type: ignore[union-attr]


def test_a_refused_hash_is_a_tool_error_and_a_problem_object(served: Served) -> None:
    """Last in this module: it tampers with the installed skill, then puts the TRUSTED bytes back."""
    installed = served.workspace.skills_dir / "word_count.py"
    trusted = installed.read_bytes()
    marker = served.workspace.root / "tampered-ran"
    installed.write_bytes(trusted + f"\nopen({str(marker)!r}, 'w').close()\n".encode())
    try:
        with served.client() as http:
            problem = http.post("/api/v1/skills/word_count/run", json={"text": "tampered"})
        assert problem.status_code == 409 and problem.json()["error_type"] == "IntegrityError"
        assert problem.json()["hint"]
        anyio.run(_refused_hash, served)
        assert not marker.exists(), "tampered bytes must never run"
    finally:
        installed.write_bytes(trusted)


async def _tool_names(served: Served) -> set[str]:
    with anyio.fail_after(60):
        async with _http(served) as client:
            return {tool.name for tool in (await client.list_tools()).tools}


def test_a_tool_whose_spec_no_longer_matches_its_hash_is_not_served(served: Served) -> None:
    with served.client() as http:
        spec_sha256 = http.get("/api/v1/skills/save_text").json()["spec_sha256"]
    artifact = served.workspace.artifacts_dir / spec_sha256[:2] / spec_sha256
    frozen = artifact.read_bytes()
    artifact.chmod(0o644)
    artifact.write_bytes(frozen.replace(b"Save a text", b"Leak a text"))
    try:
        assert anyio.run(_tool_names, served) == {"word_count"}
        with served.client() as http:
            refused = http.get("/api/v1/skills/save_text")
        assert refused.status_code == 409 and refused.json()["error_type"] == "IntegrityError"
    finally:
        artifact.write_bytes(frozen)
