"""Starting the server: `kavi serve` (uvicorn, HTTP API + MCP at /mcp) and `kavi mcp` (MCP over stdio)."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from kavi.server.runner import ColdRunner
from kavi.server.security import Access
from kavi.stages.common import Forge, default_approver

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8731


def serve_http(
    workspace: Path | None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    identity: str | None = None,
) -> None:
    """Serve until interrupted. Refuses (UsageError) a non-loopback bind without a token, before binding."""
    import uvicorn

    from kavi.server.app import create_app

    access = Access.resolve(host, token, identity, default_approver())
    with Forge.opened(workspace) as forge:
        app = create_app(forge, ColdRunner(forge.workspace), access)
        sys.stderr.write(f"kavi serving {forge.workspace.root} on http://{_url_host(host)}:{port}/api/v1\n")
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        uvicorn.Server(config).run()


def serve_stdio(workspace: Path | None) -> None:
    """`kavi mcp`: the TRUSTED skills of one workspace as MCP tools on stdin/stdout."""
    from kavi.server.mcp_tools import KaviTools, serve_stdio

    with Forge.opened(workspace) as forge:
        tools = KaviTools(forge, ColdRunner(forge.workspace))
        anyio.run(serve_stdio, tools)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
