"""A TRUSTED chain on `kavi serve`: an MCP tool with the chain's derived schemas, and the same run endpoint as a
skill, each call a governed run of every step; a suspended chain is no longer served and its run is refused."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.server.conftest import Served, start_server, stop_server
from tests.support import run_cli

STEPS = {
    "steps": [
        {"id": "save", "skill": "save_text", "inputs": {"folder": "input.folder", "text": "input.text"}},
        {"id": "count", "skill": "word_count", "inputs": {"text": "input.text"}},
    ],
    "output": {"path": "save.path", "words": "count.count"},
}
EXAMPLES = [{"input": {"folder": "notes", "text": "a b c"}, "output": {"path": "notes/saved.txt", "words": 3}}]


@pytest.fixture(scope="module")
def chain_served(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("served-chain") / "ws"
    shutil.copytree(served_template, root, symlinks=True)
    where = ("--workspace", str(root))
    proposed = run_cli(
        "propose-chain", "--name", "save_and_count", "--steps-json", json.dumps(STEPS),
        "--examples-json", json.dumps(EXAMPLES), *where,
    )  # fmt: skip
    assert proposed.code == 0, proposed.stdout + proposed.stderr
    assert run_cli("verify-chain", "save_and_count", *where).code == 0
    assert run_cli("promote-chain", "save_and_count", "--approver", "alice", *where).code == 0
    server = start_server(root)
    yield server
    stop_server(server)


def test_a_chain_runs_through_the_skills_endpoint(chain_served: Served) -> None:
    with chain_served.client() as client:
        ran = client.post("/api/v1/skills/save_and_count/run", json={"folder": "notes", "text": "one two"})
        refused = client.post("/api/v1/skills/save_and_count/run", json={"text": "no folder"})
    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert body["output"] == {"path": "notes/saved.txt", "words": 2}
    assert [(step["step"], step["side_effect"]) for step in body["steps"]] == [
        ("save", "FILE_WRITE"),
        ("count", "READ_ONLY"),
    ]
    assert (chain_served.workspace.root / "notes" / "saved.txt").read_text() == "one two"
    assert refused.status_code == 422 and refused.json()["error_type"] == "SkillInputError"


async def _call_tool(served: Served) -> None:
    with anyio.fail_after(120):
        async with Client(f"{served.url}/mcp", read_timeout_seconds=60) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            chain = tools["save_and_count"]
            assert chain.input_schema["required"] == ["folder", "text"]
            assert set(chain.output_schema["properties"]) == {"path", "words"}
            called = await client.call_tool("save_and_count", {"folder": "notes", "text": "over mcp now"})
            assert not called.is_error, called.content
            assert called.structured_content == {"path": "notes/saved.txt", "words": 3}


def test_a_chain_is_an_mcp_tool_until_a_member_is_revoked(chain_served: Served) -> None:
    anyio.run(_call_tool, chain_served)
    where = ("--workspace", str(chain_served.workspace.root))
    assert run_cli("revoke", "word_count", "--reason", "test", *where).code == 0
    with chain_served.client() as client:
        refused = client.post("/api/v1/skills/save_and_count/run", json={"folder": "notes", "text": "x"})
    assert refused.status_code == 409, refused.text
    assert "is suspended: its member word_count v1" in refused.json()["detail"]

    async def listed() -> set[str]:
        async with Client(f"{chain_served.url}/mcp", read_timeout_seconds=60) as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    assert "save_and_count" not in anyio.run(listed)
