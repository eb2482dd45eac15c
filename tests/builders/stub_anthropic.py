"""A stub of the Anthropic Messages API that scripts a build, for driving the real Claude Code CLI.

The CLI checks reachability with ``HEAD /`` and then streams ``POST /v1/messages``. Each request
carries the whole conversation so far, so the stub answers by *turn*: the number of assistant
messages already in the request. A scenario maps a :class:`Turn` to a :class:`Reply` (text, tool
calls, or a stall). A request without tools is a side request of the CLI (a title, a summary) and is
answered "ok", unless the stub serves a tool-less caller (``serve(..., toolless=True)``: kavi's planner
runs the CLI with no tools at all).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_WORKDIR = re.compile(r"Primary working directory: (\S+)")


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    text: str = ""
    tool_uses: tuple[ToolUse, ...] = ()
    stall: bool = False


@dataclass(frozen=True)
class Turn:
    index: int
    workdir: str
    body: dict[str, Any]

    def tool_results(self) -> list[dict[str, Any]]:
        """The tool_result blocks of the last user message (what the CLI sent back)."""
        last = self.body.get("messages", [])[-1]
        content = last.get("content")
        if not isinstance(content, list):
            return []
        return [block for block in content if block.get("type") == "tool_result"]


Scenario = Callable[[Turn], Reply]


@dataclass
class StubAnthropic:
    scenario: Scenario
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    toolless: bool = False  # the scenario answers requests without tools too


def _system_text(body: dict[str, Any]) -> str:
    system = body.get("system", "")
    if isinstance(system, list):
        system = "\n".join(block.get("text", "") for block in system if isinstance(block, dict))
    texts = [str(system)]
    for message in body.get("messages", []):
        if message.get("role") == "system":
            texts.append(_content_text(message.get("content")))
    return "\n".join(texts)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _turn_of(body: dict[str, Any]) -> Turn:
    messages = [m for m in body.get("messages", []) if m.get("role") in ("user", "assistant")]
    index = sum(1 for m in messages if m.get("role") == "assistant")
    match = _WORKDIR.search(_system_text(body))
    return Turn(index=index, workdir=match.group(1) if match else "", body=body)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _events(reply: Reply, model: str, serial: int) -> Iterator[bytes]:
    usage = {"input_tokens": 120, "output_tokens": 0}
    yield _sse(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": f"msg_stub_{serial}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
        },
    )
    index = 0
    if reply.text:
        yield _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
        )
        yield _sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": reply.text},
            },
        )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        index += 1
    for number, tool in enumerate(reply.tool_uses):
        block = {
            "type": "tool_use",
            "id": f"toolu_stub_{serial}_{number}",
            "name": tool.name,
            "input": {},
        }
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        delta = {"type": "input_json_delta", "partial_json": json.dumps(tool.input)}
        yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        index += 1
    stop_reason = "tool_use" if reply.tool_uses else "end_turn"
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 40},
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


def _handler(stub: StubAnthropic) -> type[BaseHTTPRequestHandler]:
    serial = iter(range(1, 1_000_000))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
            return

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            stub.requests.append(body)
            stub.headers.append(dict(self.headers.items()))
            if not self.path.startswith("/v1/messages") or self.path.startswith("/v1/messages/count"):
                self._json({"input_tokens": 100})
                return
            # a request without tools is a side request (a title, a summary): answer and move on
            scripted = body.get("tools") or stub.toolless
            reply = stub.scenario(_turn_of(body)) if scripted else Reply(text="ok")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            model = str(body.get("model", "claude-stub"))
            number = next(serial)
            if reply.stall:
                self.wfile.write(next(_events(reply, model, number)))
                self.wfile.flush()
                stub.release.wait(120)
                return
            for chunk in _events(reply, model, number):
                self.wfile.write(chunk)
            self.wfile.flush()
            self.close_connection = True

        def _json(self, data: dict[str, Any]) -> None:
            payload = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def serve(scenario: Scenario, *, toolless: bool = False) -> Iterator[StubAnthropic]:
    """Run the stub on 127.0.0.1 at a random port for the duration of the block."""
    stub = StubAnthropic(scenario=scenario, toolless=toolless)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.release.set()
        server.shutdown()
        server.server_close()
