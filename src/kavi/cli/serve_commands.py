"""serve and mcp: TRUSTED skills over HTTP and MCP (the work lives in kavi.server)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from kavi.cli.app import WorkspaceOption, app


class RunnerKind(StrEnum):
    WARM = "warm"
    COLD = "cold"


RunnerOption = Annotated[
    RunnerKind,
    typer.Option(
        help="warm: each call a child forked from a warm zygote, every isolation layer applied by the child"
        " (NETWORK skills, and hosts where a layer cannot be applied warm, run cold); cold: a fresh isolated"
        " interpreter per call, exactly `kavi run-skill --no-server`.",
    ),
]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="The address to bind; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The TCP port.")] = 8731,
    token: Annotated[
        str | None,
        typer.Option(envvar="KAVI_SERVE_TOKEN", help="Require `Authorization: Bearer TOKEN` on every request."),
    ] = None,
    identity: Annotated[
        str | None,
        typer.Option(envvar="KAVI_SERVE_IDENTITY", help="Who the token's approvals are recorded as."),
    ] = None,
    runner: RunnerOption = RunnerKind.WARM,
    workspace: WorkspaceOption = None,
) -> None:
    """Serve the HTTP API (/api/v1, events as SSE) and the MCP tools (/mcp). Every call is a governed run.

    While it runs, `kavi run-skill` in this workspace is answered by its warm runner through .kavi/run.sock."""
    from kavi.cli.running import answer_request
    from kavi.server.serve import serve_http

    serve_http(
        workspace, host=host, port=port, token=token, identity=identity, runner=str(runner), answer_local=answer_request
    )


@app.command()
def mcp(runner: RunnerOption = RunnerKind.WARM, workspace: WorkspaceOption = None) -> None:
    """Serve every TRUSTED skill as an MCP tool over stdio (for Claude Code, Claude Desktop, any MCP client)."""
    from kavi.server.serve import serve_stdio

    serve_stdio(workspace, runner=str(runner))
