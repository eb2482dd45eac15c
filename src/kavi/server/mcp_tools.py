"""TRUSTED skills as MCP tools, served with the official MCP SDK over stdio (`kavi mcp`) or streamable HTTP
(``/mcp`` on `kavi serve`).

A tool call is a governed run through the :class:`~kavi.server.runner.Runner` seam; a refusal (a blocked
effect, a refused hash, bad input) is a tool result with ``isError`` and kavi's message, never a protocol
error or a crash. When what is TRUSTED changes (promote, revoke, reject: from this server, another one or the
CLI, since the watcher reads the ledger) every client is sent ``notifications/tools/list_changed``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged

from kavi import __version__
from kavi.errors import KaviError
from kavi.server.runner import Runner
from kavi.server.tools import ToolEntry, trusted_tool, trusted_tools
from kavi.server.views import events_after, last_sequence
from kavi.stages.common import Forge

logger = logging.getLogger(__name__)

# The ledger events after which the set of tools may differ.
TOOLS_CHANGE_EVENTS = frozenset({"promotion.trusted", "promotion.revoked", "proposal.rejected"})
WATCH_INTERVAL_S = 0.5
MAX_SESSIONS = 256


class KaviTools:
    """The MCP server of one workspace: tools from the ledger, calls through the runner."""

    def __init__(self, forge: Forge, runner: Runner) -> None:
        self.forge = forge
        self.runner = runner
        self.bus = InMemorySubscriptionBus()
        # Handshake-era sessions that asked for tools, newest last; a session that cannot be reached is dropped.
        self._sessions: dict[int, Any] = {}
        self.server: Server[Any] = Server(
            "kavi",
            version=__version__,
            instructions="TRUSTED kavi skills. Every call is a governed run recorded in the workspace's ledger.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=ListenHandler(self.bus),
        )

    def initialization_options(self) -> Any:
        return self.server.create_initialization_options(NotificationOptions(tools_changed=True))

    def tools(self) -> dict[str, ToolEntry]:
        return {tool.name: tool for tool in trusted_tools(self.forge)}

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        self._remember(ctx)
        tools = await anyio.to_thread.run_sync(self.tools)
        return types.ListToolsResult(tools=[as_mcp_tool(tool) for tool in tools.values()])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        self._remember(ctx)
        arguments = dict(params.arguments or {})
        try:
            served = await anyio.to_thread.run_sync(trusted_tool, self.forge, params.name)
            if served is None:
                return tool_error(f"no TRUSTED skill named {params.name!r} is served here")
            result = await anyio.to_thread.run_sync(self.runner.run, params.name, arguments)
        except KaviError as exc:
            return tool_error(str(exc))
        output = result.output or {}
        return types.CallToolResult(
            content=[types.TextContent(text=json.dumps(output, sort_keys=True))],
            structured_content=output,
            _meta={"kavi/execution_id": result.execution_id, "kavi/version": result.version},
        )

    def _remember(self, ctx: ServerRequestContext[Any]) -> None:
        session = getattr(ctx, "session", None)
        if session is not None:
            self._sessions[id(session)] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))

    async def notify_tools_changed(self) -> None:
        """Tell every client the tool list changed: listen streams (2026-07-28) and handshake sessions."""
        await self.bus.publish(ToolsListChanged())
        for key, session in list(self._sessions.items()):
            try:
                await session.send_tool_list_changed()
            except Exception:  # a closed client must not stop the others from hearing
                logger.debug("could not notify a client session", exc_info=True)
                self._sessions.pop(key, None)

    async def watch_ledger(self, interval_s: float = WATCH_INTERVAL_S) -> None:
        """Send list_changed whenever the ledger records a promotion, a revocation or a rejection."""
        last = await anyio.to_thread.run_sync(last_sequence, self.forge)
        while True:
            await anyio.sleep(interval_s)
            fresh = await anyio.to_thread.run_sync(events_after, self.forge, last, 500)
            if not fresh:
                continue
            last = fresh[-1]["seq"]
            if any(event["kind"] in TOOLS_CHANGE_EVENTS for event in fresh):
                await self.notify_tools_changed()


def as_mcp_tool(tool: ToolEntry) -> types.Tool:
    definition = tool.definition
    return types.Tool(
        name=definition["name"],
        description=definition["description"],
        input_schema=definition["inputSchema"],
        output_schema=definition["outputSchema"],
        _meta={"kavi/tool_sha256": tool.sha256, "kavi/version": tool.version},
    )


def tool_error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


async def serve_stdio(tools: KaviTools) -> None:
    """`kavi mcp`: one client on stdin/stdout, with the ledger watcher beside it."""
    from mcp.server.stdio import stdio_server

    async with anyio.create_task_group() as group:
        group.start_soon(tools.watch_ledger)
        async with stdio_server() as (read_stream, write_stream):
            await tools.server.run(read_stream, write_stream, tools.initialization_options())
        group.cancel_scope.cancel()
