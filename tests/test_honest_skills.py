"""Honest skills that the gates used to refuse go from propose to a successful run through the CLI.

Each case is one row of :data:`CASES`: propose-skill, build-skill with the manual builder
(``--resume --from DIR``), verify-skill (every gate must pass), promote-skill and run-skill. The
NETWORK cases run for real against a loopback HTTP server started by this module: its port is in
the spec's ``--allow-host``, the examples gate and run-skill connect to it, and the server counts
the requests it answered. Their own pytest files replace ``socket.socket`` / ``httpx.get`` with
fakes through ``monkeypatch`` (the pattern the urllib skills use), so the builder's tests stay
hermetic.
"""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kavi.workspace import Workspace
from tests.support import run_cli

pytestmark = pytest.mark.slow


class _Handler(BaseHTTPRequestHandler):
    answered: list[str] = []  # noqa: RUF012 - shared on purpose: the test reads what was served

    def do_GET(self) -> None:
        _Handler.answered.append(self.path)
        body = b'{"status": "up"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def loopback() -> Iterator[int]:
    """A loopback HTTP server; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Case:
    """One honest skill: its spec (``{port}`` is the loopback port), files, and a run."""

    name: str
    side_effect: str
    io_schema: dict[str, dict[str, str]]
    skill: str
    tests: str
    run_input: dict[str, object]
    expected: dict[str, object]
    examples: list[dict[str, object]] = field(default_factory=list)
    extra: tuple[str, ...] = ()
    network: bool = False


HEADER = '"""{doc}"""\n\nfrom __future__ import annotations\n\n'

CASES = [
    Case(
        name="git_version",
        side_effect="SUBPROCESS",
        io_schema={"input": {"prefix": "str"}, "output": {"matches": "bool"}},
        extra=("--allow-exec", "git"),
        skill=HEADER.format(doc="Whether the installed git's version line starts with a prefix.")
        + textwrap.dedent(
            """\
            import subprocess

            from kavi.skill import SideEffect, Skill
            from pydantic import BaseModel


            class GitVersionInput(BaseModel):
                prefix: str


            class GitVersionOutput(BaseModel):
                matches: bool


            class GitVersion(Skill[GitVersionInput, GitVersionOutput]):
                name = "git_version"
                side_effect = SideEffect.SUBPROCESS
                input_model = GitVersionInput
                output_model = GitVersionOutput

                def execute(self, data: GitVersionInput) -> GitVersionOutput:
                    result = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True)
                    return GitVersionOutput(matches=result.stdout.startswith(data.prefix))
            """
        ),
        tests=textwrap.dedent(
            """\
            from git_version import GitVersion, GitVersionInput


            def test_git_reports_its_version() -> None:
                assert GitVersion().execute(GitVersionInput(prefix="git version")).matches


            def test_another_prefix_does_not_match() -> None:
                assert not GitVersion().execute(GitVersionInput(prefix="svn")).matches
            """
        ),
        examples=[{"input": {"prefix": "git version"}, "output": {"matches": True}}],
        run_input={"prefix": "git"},
        expected={"matches": True},
    ),
    Case(
        name="contact_card",
        side_effect="READ_ONLY",
        io_schema={"input": {"name": "str"}, "output": {"email": "str", "host": "str"}},
        skill=HEADER.format(doc="A contact card: strings that look like module paths are text.")
        + textwrap.dedent(
            """\
            from kavi.skill import SideEffect, Skill
            from pydantic import BaseModel

            EMAIL = "a@b.io"
            HOST = "api.example.io"


            class ContactCardInput(BaseModel):
                name: str


            class ContactCardOutput(BaseModel):
                email: str
                host: str


            class ContactCard(Skill[ContactCardInput, ContactCardOutput]):
                name = "contact_card"
                side_effect = SideEffect.READ_ONLY
                input_model = ContactCardInput
                output_model = ContactCardOutput

                def execute(self, data: ContactCardInput) -> ContactCardOutput:
                    local = data.name.lower() or EMAIL.split("@")[0]
                    return ContactCardOutput(email=f"{local}@b.io", host=HOST)
            """
        ),
        tests=textwrap.dedent(
            """\
            from contact_card import ContactCard, ContactCardInput


            def test_card_uses_the_name() -> None:
                card = ContactCard().execute(ContactCardInput(name="Ada"))
                assert card.email == "ada@b.io" and card.host == "api.example.io"


            def test_empty_name_falls_back() -> None:
                assert ContactCard().execute(ContactCardInput(name="")).email == "a@b.io"
            """
        ),
        examples=[{"input": {"name": "x"}, "output": {"email": "x@b.io", "host": "api.example.io"}}],
        run_input={"name": "Bo"},
        expected={"email": "bo@b.io", "host": "api.example.io"},
    ),
    Case(
        name="word_spans",
        side_effect="READ_ONLY",
        io_schema={"input": {"text": "str"}, "output": {"words": "int", "folder": "str"}},
        skill=HEADER.format(doc="Word spans: module constants made by pure calls and a dataclass helper.")
        + textwrap.dedent(
            """\
            import re
            from dataclasses import dataclass
            from pathlib import Path

            from kavi.skill import SideEffect, Skill
            from pydantic import BaseModel

            WORD = re.compile(r"[a-z]+")
            NOTES = Path("notes")


            @dataclass(frozen=True)
            class Span:
                start: int
                end: int


            def spans(text: str) -> list[Span]:
                return [Span(match.start(), match.end()) for match in WORD.finditer(text.lower())]


            class WordSpansInput(BaseModel):
                text: str


            class WordSpansOutput(BaseModel):
                words: int
                folder: str


            class WordSpans(Skill[WordSpansInput, WordSpansOutput]):
                name = "word_spans"
                side_effect = SideEffect.READ_ONLY
                input_model = WordSpansInput
                output_model = WordSpansOutput

                def execute(self, data: WordSpansInput) -> WordSpansOutput:
                    return WordSpansOutput(words=len(spans(data.text)), folder=NOTES.name)
            """
        ),
        tests=textwrap.dedent(
            """\
            from word_spans import Span, WordSpans, WordSpansInput, spans


            def test_spans_cover_each_word() -> None:
                assert spans("Hi you") == [Span(0, 2), Span(3, 6)]


            def test_counts_words() -> None:
                assert WordSpans().execute(WordSpansInput(text="a b, c")).words == 3
            """
        ),
        examples=[{"input": {"text": "one two"}, "output": {"words": 2, "folder": "notes"}}],
        run_input={"text": "x y z"},
        expected={"words": 3, "folder": "notes"},
    ),
    Case(
        name="socket_status",
        side_effect="NETWORK",
        network=True,
        io_schema={"input": {"port": "int"}, "output": {"status": "int"}},
        extra=("--allow-host", "127.0.0.1:{port}"),
        skill=HEADER.format(doc="The HTTP status a local server answers, over a plain socket.")
        + textwrap.dedent(
            """\
            import socket

            from kavi.skill import SideEffect, Skill
            from pydantic import BaseModel


            class SocketStatusInput(BaseModel):
                port: int


            class SocketStatusOutput(BaseModel):
                status: int


            class SocketStatus(Skill[SocketStatusInput, SocketStatusOutput]):
                name = "socket_status"
                side_effect = SideEffect.NETWORK
                input_model = SocketStatusInput
                output_model = SocketStatusOutput

                def execute(self, data: SocketStatusInput) -> SocketStatusOutput:
                    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                        sock.settimeout(5)
                        sock.connect(("127.0.0.1", data.port))
                        sock.sendall(b"GET /socket HTTP/1.0\\r\\n\\r\\n")
                        head = sock.recv(64).decode("ascii", "replace")
                    return SocketStatusOutput(status=int(head.split()[1]))
            """
        ),
        tests=textwrap.dedent(
            """\
            import socket

            import pytest

            from socket_status import SocketStatus, SocketStatusInput


            class FakeSocket:
                def __init__(self, family: int, kind: int) -> None:
                    self.sent = b""

                def __enter__(self) -> "FakeSocket":
                    return self

                def __exit__(self, *exc: object) -> None:
                    pass

                def settimeout(self, timeout: float) -> None:
                    pass

                def connect(self, address: tuple[str, int]) -> None:
                    assert address == ("127.0.0.1", 8080)

                def sendall(self, data: bytes) -> None:
                    self.sent += data

                def recv(self, size: int) -> bytes:
                    return b"HTTP/1.0 204 No Content\\r\\n"


            def test_reads_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
                monkeypatch.setattr(socket, "socket", FakeSocket)
                assert SocketStatus().execute(SocketStatusInput(port=8080)).status == 204
            """
        ),
        examples=[{"input": {"port": "{port}"}, "output": {"status": 200}}],
        run_input={"port": "{port}"},
        expected={"status": 200},
    ),
    Case(
        name="httpx_status",
        side_effect="NETWORK",
        network=True,
        io_schema={"input": {"port": "int"}, "output": {"status": "str"}},
        extra=("--allow-host", "127.0.0.1:{port}"),
        skill=HEADER.format(doc="The status a local JSON endpoint reports, fetched with httpx.")
        + textwrap.dedent(
            """\
            import httpx
            from kavi.skill import SideEffect, Skill
            from pydantic import BaseModel


            class HttpxStatusInput(BaseModel):
                port: int


            class HttpxStatusOutput(BaseModel):
                status: str


            class HttpxStatus(Skill[HttpxStatusInput, HttpxStatusOutput]):
                name = "httpx_status"
                side_effect = SideEffect.NETWORK
                input_model = HttpxStatusInput
                output_model = HttpxStatusOutput

                def execute(self, data: HttpxStatusInput) -> HttpxStatusOutput:
                    response = httpx.get(f"http://127.0.0.1:{data.port}/httpx", timeout=5)
                    response.raise_for_status()
                    return HttpxStatusOutput(status=str(response.json()["status"]))
            """
        ),
        tests=textwrap.dedent(
            """\
            import httpx
            import pytest

            from httpx_status import HttpxStatus, HttpxStatusInput


            def fake_get(url: str, timeout: float) -> httpx.Response:
                return httpx.Response(200, json={"status": "fine"}, request=httpx.Request("GET", url))


            def test_reads_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
                monkeypatch.setattr(httpx, "get", fake_get)
                assert HttpxStatus().execute(HttpxStatusInput(port=8080)).status == "fine"
            """
        ),
        examples=[{"input": {"port": "{port}"}, "output": {"status": "up"}}],
        run_input={"port": "{port}"},
        expected={"status": "up"},
    ),
]


def _fill(value: object, port: int) -> object:
    """``"{port}"`` anywhere in a JSON value becomes the loopback port (an int where it is alone)."""
    if value == "{port}":
        return port
    if isinstance(value, str):
        return value.replace("{port}", str(port))
    if isinstance(value, dict):
        return {key: _fill(item, port) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, port) for item in value]
    return value


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_honest_skill_goes_from_propose_to_run(case: Case, workspace: Workspace, tmp_path: Path, loopback: int) -> None:
    port = loopback
    proposed = run_cli(
        "propose-skill",
        "--name",
        case.name,
        "--desc",
        f"honest {case.side_effect} skill",
        "--side-effect",
        case.side_effect,
        "--io-schema-json",
        json.dumps(case.io_schema),
        "--examples-json",
        json.dumps(_fill(case.examples, port)),
        *[str(_fill(arg, port)) for arg in case.extra],
        "--json",
    )
    assert proposed.code == 0, proposed.stdout + proposed.stderr
    proposal = str(proposed.json()["proposal_id"])

    files = tmp_path / "built" / "skills"
    files.mkdir(parents=True)
    (files / f"{case.name}.py").write_text(case.skill, encoding="utf-8")
    (files / f"test_{case.name}.py").write_text(case.tests, encoding="utf-8")
    assert run_cli("build-skill", proposal, "--builder", "manual", "--json").code == 0
    built = run_cli("build-skill", proposal, "--resume", "--from", str(files.parent), "--json")
    assert built.code == 0, built.stdout + built.stderr

    served_before = len(_Handler.answered)
    verified = run_cli("verify-skill", proposal, "--json")
    gates = {gate["gate"]: gate for gate in verified.json()["gates"]}
    failed = {name: (gate["summary"], gate.get("report", "")[:2000]) for name, gate in gates.items()}
    assert all(gate["status"] == "pass" for gate in gates.values()), failed
    assert verified.code == 0

    promoted = run_cli("promote-skill", proposal, "--approver", "alice", "--json")
    assert promoted.code == 0, promoted.stdout + promoted.stderr
    ran = run_cli("run-skill", case.name, "--json", json.dumps(_fill(case.run_input, port)))
    assert ran.code == 0, ran.stdout + ran.stderr
    assert ran.json()["output"] == case.expected
    if case.network:  # the examples gate and the run reached the declared loopback server
        assert len(_Handler.answered) >= served_before + 2
