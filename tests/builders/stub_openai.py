"""A stub OpenAI-compatible server (``POST /v1/chat/completions``) that scripts a build.

It answers streamed (SSE chunks) or whole, as the request asks. The turn is the number of assistant
messages already in the request; a scenario maps it to a :class:`Reply`, which can also be a stall,
an HTTP error status or bytes that are not a chat completion at all.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any] | str  # a str is sent as is (to script malformed arguments)


@dataclass(frozen=True)
class Reply:
    text: str = ""
    calls: tuple[Call, ...] = ()
    stall: bool = False
    status: int = 200
    raw: bytes | None = None  # sent verbatim with 200 and a JSON content type


@dataclass(frozen=True)
class Turn:
    index: int
    body: dict[str, Any]

    def tool_messages(self) -> list[dict[str, Any]]:
        """The tool results the builder sent since the model's last answer."""
        found = []
        for message in reversed(self.body.get("messages", [])):
            if message.get("role") != "tool":
                break
            found.append(message)
        return list(reversed(found))


Scenario = Callable[[Turn], Reply]


@dataclass
class StubOpenAI:
    scenario: Scenario
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""


def _arguments(call: Call) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def completion(reply: Reply, model: str, serial: int) -> dict[str, Any]:
    tool_calls = [
        {
            "id": f"call_{serial}_{n}",
            "type": "function",
            "function": {"name": c.name, "arguments": _arguments(c)},
        }
        for n, c in enumerate(reply.calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-{serial}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


def chunks(reply: Reply, model: str, serial: int) -> Iterator[dict[str, Any]]:
    base = {
        "id": f"chatcmpl-{serial}",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for part in (reply.text[i : i + 7] for i in range(0, len(reply.text), 7)):
        yield chunk({"content": part})
    for n, call in enumerate(reply.calls):
        arguments = _arguments(call)
        head = {"index": n, "id": f"call_{serial}_{n}", "type": "function"}
        yield chunk({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]})
        for i in range(0, len(arguments), 11):  # arguments arrive in pieces
            piece = {"index": n, "function": {"arguments": arguments[i : i + 11]}}
            yield chunk({"tool_calls": [piece]})
    yield chunk({}, "tool_calls" if reply.calls else "stop")
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    yield {**base, "choices": [], "usage": usage}


def _handler(stub: StubOpenAI) -> type[BaseHTTPRequestHandler]:
    serial = iter(range(1, 1_000_000))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            stub.headers.append({k.lower(): v for k, v in self.headers.items()})
            if self.path.endswith("/models"):  # what `kavi builders` and `kavi doctor` probe
                self._send(200, json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]}).encode())
            else:
                self._send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            stub.requests.append(body)
            stub.headers.append({k.lower(): v for k, v in self.headers.items()})
            if not self.path.endswith("/chat/completions"):
                self._send(404, b'{"error": {"message": "not found"}}')
                return
            index = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
            reply = stub.scenario(Turn(index=index, body=body))
            number = next(serial)
            model = str(body.get("model", "stub"))
            if reply.raw is not None:
                self._send(200, reply.raw)
            elif reply.status != 200:
                error = {"error": {"message": f"stub status {reply.status}", "type": "stub"}}
                self._send(reply.status, json.dumps(error).encode())
            elif reply.stall:
                stub.release.wait(60)
                self._send(200, json.dumps(completion(Reply(text="late"), model, number)).encode())
            elif body.get("stream"):
                self._stream(reply, model, number)
            else:
                self._send(200, json.dumps(completion(reply, model, number)).encode())

        def _send(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, reply: Reply, model: str, number: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for data in chunks(reply, model, number):
                self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


@contextmanager
def serve(scenario: Scenario) -> Iterator[StubOpenAI]:
    """Run the stub on 127.0.0.1 at a random port; ``url`` ends in /v1."""
    stub = StubOpenAI(scenario=scenario)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.release.set()
        server.shutdown()
        server.server_close()
