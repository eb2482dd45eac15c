"""Starting the server: `kavi serve` (uvicorn, HTTP API + MCP at /mcp) and `kavi mcp` (MCP over stdio)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import anyio

from kavi.server.runner import RUNNERS, WarmRunner
from kavi.server.security import Access
from kavi.stages.common import Forge, default_approver

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8731
# answer_local(request, *, workspace, launch) -> answer: `kavi run-skill` through .kavi/run.sock
LocalAnswer = Callable[..., dict[str, Any]]


def serve_http(
    workspace: Path | None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    identity: str | None = None,
    runner: str = "warm",
    answer_local: LocalAnswer | None = None,
) -> None:
    """Serve until interrupted. Refuses (UsageError) a non-loopback bind without a token, before binding.

    With the warm runner and ``answer_local``, `kavi run-skill` in this workspace is answered through
    ``.kavi/run.sock`` while the server runs (the socket is removed when it stops)."""
    import uvicorn

    from kavi.server.app import create_app
    from kavi.server.local import SOCKET_NAME, LocalSocket

    access = Access.resolve(host, token, identity, default_approver())
    with Forge.opened(workspace) as forge:
        chosen = RUNNERS[runner](forge.workspace)
        local = None
        try:
            if answer_local is not None and isinstance(chosen, WarmRunner):
                local = LocalSocket(
                    str(forge.workspace.state_dir / SOCKET_NAME),
                    partial(answer_local, workspace=forge.workspace.root, launch=chosen.zygote.run),
                )
                refused = local.start()
                if refused:
                    sys.stderr.write(f"kavi: {refused}; run-skill will not use this server\n")
                    local = None
            app = create_app(forge, chosen, access)
            note = chosen.describe().get("unavailable")
            if note:
                sys.stderr.write(f"kavi: every call runs cold: {note}\n")
            sys.stderr.write(f"kavi serving {forge.workspace.root} on http://{_url_host(host)}:{port}/api/v1\n")
            config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
            _exit_cleanly_on(signal.SIGTERM)
            uvicorn.Server(config).run()
        finally:
            if local is not None:
                local.close()
            chosen.close()


def serve_stdio(workspace: Path | None, *, runner: str = "warm") -> None:
    """`kavi mcp`: the TRUSTED skills of one workspace as MCP tools on stdin/stdout."""
    from kavi.server.mcp_tools import KaviTools, serve_stdio

    with Forge.opened(workspace) as forge:
        chosen = RUNNERS[runner](forge.workspace)
        try:
            anyio.run(serve_stdio, KaviTools(forge, chosen))
        finally:
            chosen.close()


def _exit_cleanly_on(signum: int) -> None:
    """uvicorn shuts down on SIGTERM, then raises the signal again with the handler it found: make that one
    end the process through ``finally`` blocks, so the socket is removed and the zygote stopped."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signum, _terminate)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
