"""The egress proxy is the NETWORK boundary at FULL: a child with no audit hook at all still reaches only the
declared host, by every route we could think of, and each refusal is recorded."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kavi.runtime import relay
from kavi.sandbox import bwrap
from kavi.sandbox.egress import EgressProxy, ProxyRequestError, Target, admit, parse_declared, parse_request
from kavi.sandbox.executor import ExecPolicy, IsolationLevel, run_isolated
from kavi.side_effects import SideEffect

needs_bwrap = pytest.mark.skipif(not bwrap.probe_bwrap().works, reason="bubblewrap cannot run here")


# --- the decision, as a table ---------------------------------------------------------------------


def _resolver(host: str, port: int) -> tuple[str, ...]:
    known = {
        "api.example.io": ("203.0.113.7", "2001:db8::7"),
        "localhost": ("127.0.0.1",),
        "db.example.io": ("2001:db8::5",),
    }
    return known.get(host, ())


DECLARED = parse_declared(["127.0.0.1:8080", "api.example.io:443", "LocalHost:9999", "db.example.io"])


@pytest.mark.parametrize(
    ("host", "port", "addresses"),
    [
        ("127.0.0.1", 8080, ("127.0.0.1",)),  # a declared literal: exactly that
        ("api.example.io", 443, ("203.0.113.7", "2001:db8::7")),  # a declared name: what the proxy resolved
        ("API.example.io.", 443, ("203.0.113.7", "2001:db8::7")),
        ("203.0.113.7", 443, ("203.0.113.7",)),  # an address of a declared name
        ("localhost", 9999, ("127.0.0.1",)),
        ("127.0.0.1", 9999, ("127.0.0.1",)),
        ("db.example.io", 5432, ("2001:db8::5",)),  # declared without a port: any port
        ("db.example.io", 22, ("2001:db8::5",)),
        ("127.0.0.1", 8081, ()),  # undeclared port
        ("api.example.io", 80, ()),
        ("203.0.113.8", 443, ()),
        ("evil.example.io", 443, ()),
        ("127.1", 8080, ()),  # other spellings of a declared address are names, and undeclared
        ("2130706433", 8080, ()),
        ("0x7f000001", 8080, ()),
        ("::ffff:127.0.0.1", 8080, ()),
        ("::1", 8080, ()),
        ("localhost", 8080, ()),  # a name for a declared address is not declared
    ],
)
def test_admission_follows_the_declared_hosts(host: str, port: int, addresses: tuple[str, ...]) -> None:
    from kavi.sandbox.egress import normalize_host

    verdict = admit(Target(normalize_host(host), port), DECLARED, _resolver)
    assert verdict.addresses == addresses
    assert verdict.admitted == bool(addresses)
    if not addresses:
        assert "not a declared host" in verdict.reason or "resolve" in verdict.reason


def test_a_declared_name_that_does_not_resolve_is_refused_not_guessed() -> None:
    def broken(host: str, port: int) -> tuple[str, ...]:
        raise socket.gaierror("no such name")

    verdict = admit(Target("api.example.io", 443), DECLARED, broken)
    assert not verdict.admitted and "does not resolve" in verdict.reason


def test_the_request_target_decides_never_the_host_header() -> None:
    head = b"GET http://127.0.0.1:8080/a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nProxy-Connection: x"
    request = parse_request(head, b"")
    assert request.target == Target("127.0.0.1", 8080)
    lines = request.head.decode().split("\r\n")
    assert lines[0] == "GET /a?b=1 HTTP/1.1"
    assert "Host: 127.0.0.1:8080" in lines and "Host: 127.0.0.1:9" not in lines
    assert "Connection: close" in lines and not any(line.startswith("Proxy-") for line in lines)
    for head, status in [
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9", 400),  # origin-form: no target, the Host header is not one
        (b"GET https://api.example.io/ HTTP/1.1", 400),  # https goes through CONNECT
        (b"GET http://user:pw@127.0.0.1:8080/ HTTP/1.1", 400),
        (b"CONNECT 127.0.0.1 HTTP/1.1", 400),  # CONNECT needs a port
        (b"CONNECT ::1:80 HTTP/1.1", 400),
        (b"CONNECT [::1]x:80 HTTP/1.1", 400),
        (b"CONNECT [::1] HTTP/1.1", 400),
        (b"CONNECT 127.0.0.1:99999 HTTP/1.1", 400),
        (b"SSH-2.0-OpenSSH", 400),
    ]:
        with pytest.raises(ProxyRequestError) as caught:
            parse_request(head, b"")
        assert caught.value.status == status


# --- a real proxy, without a sandbox ---------------------------------------------------------------


@dataclass
class Listener:
    """A TCP listener on the host's loopback that counts the connections it accepts."""

    sock: socket.socket
    accepted: list[bytes] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(0.5)
            try:
                self.accepted.append(conn.recv(1024))
            except OSError:
                self.accepted.append(b"")
            conn.close()


@pytest.fixture
def forbidden() -> Iterator[Listener]:
    """Port B: undeclared; it must never see a connection."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    listener = Listener(sock)
    threading.Thread(target=listener.serve, daemon=True).start()
    yield listener
    sock.close()


class _Hello(http.server.BaseHTTPRequestHandler):
    hosts: list[str] = []  # noqa: RUF012 - the Host headers the server saw, shared with the test

    def do_GET(self) -> None:
        self.hosts.append(self.headers.get("Host", ""))
        body = f"hello from A {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def declared_server() -> Iterator[int]:
    """Port A: a declared HTTP server."""
    _Hello.hosts = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _ask(path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data


def test_the_proxy_forwards_the_declared_host_and_refuses_the_rest(declared_server: int, forbidden: Listener) -> None:
    a, b = declared_server, forbidden.port
    with EgressProxy([f"127.0.0.1:{a}"]) as proxy:
        answer = _ask(proxy.socket_path, f"GET http://127.0.0.1:{a}/x HTTP/1.1\r\nHost: 127.0.0.1:{b}\r\n\r\n".encode())
        refused = _ask(proxy.socket_path, f"CONNECT 127.0.0.1:{b} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"hello from A /x")
    assert _Hello.hosts == [f"127.0.0.1:{a}"]
    assert refused.startswith(b"HTTP/1.1 403") and f"127.0.0.1:{b} is not a declared host".encode() in refused
    assert proxy.blocked == [
        {
            "effect": "network",
            "detail": f"egress proxy refused CONNECT 127.0.0.1:{b} is not a declared host",
            "side_effect": "NETWORK",
        }
    ]
    assert forbidden.accepted == []


def test_a_tunnel_carries_early_data_and_half_closes() -> None:
    """A client may send its first bytes (a TLS ClientHello) with the CONNECT head, and end its side first."""
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(1)

    def serve() -> None:
        conn, _ = echo.accept()
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        conn.sendall(data.upper())
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    port = echo.getsockname()[1]
    with EgressProxy([f"127.0.0.1:{port}"]) as proxy, socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(proxy.socket_path)
        sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nearly ".encode())
        sock.sendall(b"and late")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data == b"HTTP/1.1 200 Connection established\r\n\r\nEARLY AND LATE"
    assert proxy.blocked == [] and proxy.admitted == 1
    echo.close()


def test_the_proxy_is_bounded_and_leaves_nothing_behind(forbidden: Listener) -> None:
    """Connections beyond the cap get 503; idle tunnels close; close() cuts and joins everything."""
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(8)
    port = echo.getsockname()[1]
    held: list[socket.socket] = []
    with EgressProxy([f"127.0.0.1:{port}"], max_connections=2, idle_timeout_s=2.0) as proxy:
        folder = Path(proxy.socket_path).parent
        for _ in range(2):
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(5)
            sock.connect(proxy.socket_path)
            sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
            held.append(sock)
        time.sleep(0.1)
        with socket.socket(socket.AF_UNIX) as third:
            third.settimeout(5)
            third.connect(proxy.socket_path)
            assert third.recv(100).startswith(b"HTTP/1.1 503")  # answered before it says anything
        assert held[0].recv(100) == b"", "an idle tunnel is closed after idle_timeout_s"
        stuck = socket.socket(socket.AF_UNIX)
        stuck.connect(proxy.socket_path)  # says nothing: close() must not wait for its head deadline
        time.sleep(0.1)
    assert proxy.thread_count() == 0
    assert not folder.exists()
    for sock in [*held, stuck]:
        sock.close()
    echo.close()


def test_a_long_temporary_folder_does_not_overflow_the_socket_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr("tempfile.tempdir", str(deep))
    with EgressProxy(["127.0.0.1:9"]) as proxy:
        assert len(proxy.socket_path) < 108 and Path(proxy.socket_path).is_socket()
    assert list(deep.iterdir()) == []


def test_a_slow_request_head_has_one_deadline_for_all_of_it() -> None:
    with EgressProxy(["127.0.0.1:9"], head_timeout_s=0.6) as proxy, socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(proxy.socket_path)
        started = time.monotonic()
        answer = b""
        for byte in b"CONNECT 127.0.0.1:9 HTTP/1.1\r\n":
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
            if time.monotonic() - started > 3:
                break
        answer = sock.recv(100)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 3
    assert proxy.blocked[0]["detail"] == "egress proxy refused no complete request head in time"


# --- through run_isolated: a child with NO audit hook ----------------------------------------------

ATTACKS = r"""
import glob, os, socket, struct, urllib.request

A, B, U = {a}, {b}, {u}
RELAY = ("127.0.0.1", int(os.environ["KAVI_EGRESS_RELAY"].rpartition(":")[2]))

def ask(request, target=RELAY, family=socket.AF_INET):
    with socket.socket(family) as sock:
        sock.settimeout(5)
        sock.connect(target)
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data.split(b"\r\n")[0].decode()

def raw_udp():
    payload = b"RAW-UDP"
    header = struct.pack("!HHHH", 40000, U, 8 + len(payload), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP) as sock:
        sock.sendto(header + payload, ("127.0.0.1", 0))
    return "sent"

def raw_syn():
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP) as sock:
        sock.sendto(struct.pack("!HHIIBBHHH", 40001, B, 1, 0, 5 << 4, 2, 1024, 0, 0), ("127.0.0.1", 0))
    return "sent"

def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"PLAIN-UDP", ("127.0.0.1", U))
    return "sent"

proxy_socket = glob.glob(os.getcwd() + "/kavi-egress-*/proxy.sock")  # the test puts the proxy's folder here
attempts = {{
    "get_declared": lambda: urllib.request.urlopen(f"http://127.0.0.1:{{A}}/ok", timeout=5).read().decode(),
    "direct_socket": lambda: socket.create_connection(("127.0.0.1", B), timeout=2) and "connected",
    "direct_ipv6": lambda: socket.create_connection(("::1", B), timeout=2) and "connected",
    "urllib_to_b": lambda: urllib.request.urlopen(f"http://127.0.0.1:{{B}}/", timeout=5).read().decode(),
    "connect_b": lambda: ask(f"CONNECT 127.0.0.1:{{B}} HTTP/1.1\r\n\r\n".encode()),
    "absolute_b": lambda: ask(f"GET http://127.0.0.1:{{B}}/ HTTP/1.1\r\n\r\n".encode()),
    "host_header": lambda: ask(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{{B}}\r\n\r\n".encode()),
    "name_for_b": lambda: ask(f"CONNECT localhost:{{B}} HTTP/1.1\r\n\r\n".encode()),
    "name_for_a": lambda: ask(f"CONNECT localhost:{{A}} HTTP/1.1\r\n\r\n".encode()),
    "ipv6_b": lambda: ask(f"CONNECT [::1]:{{B}} HTTP/1.1\r\n\r\n".encode()),
    "mapped_b": lambda: ask(f"CONNECT [::ffff:127.0.0.1]:{{B}} HTTP/1.1\r\n\r\n".encode()),
    "short_ip_b": lambda: ask(f"CONNECT 127.1:{{B}} HTTP/1.1\r\n\r\n".encode()),
    "unix_socket_b": lambda: ask(f"CONNECT 127.0.0.1:{{B}} HTTP/1.1\r\n\r\n".encode(), proxy_socket[0], socket.AF_UNIX),
    "raw_udp": raw_udp,
    "raw_syn": raw_syn,
    "plain_udp": udp,
}}
for name, attempt in attempts.items():
    try:
        outcome = attempt()
    except Exception as exc:
        outcome = f"{{type(exc).__name__}}: {{exc}}"
    print(f"{{name}} => {{outcome}}", flush=True)
"""


@needs_bwrap
def test_an_unhooked_child_reaches_only_the_declared_host(
    declared_server: int, forbidden: Listener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVI_ISOLATION", "full")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.3)
    code = ATTACKS.format(a=declared_server, b=forbidden.port, u=udp.getsockname()[1])
    policy = ExecPolicy(side_effect=SideEffect.NETWORK, allow_hosts=(f"127.0.0.1:{declared_server}",), timeout_s=30)
    # The proxy's folder inside the child's working folder, which Landlock lets it list (a short path: a unix
    # socket's path has a length limit), so the attack can find the socket and talk to the proxy directly.
    work = Path(tempfile.mkdtemp(prefix="e", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    try:
        result = run_isolated([sys.executable, "-I", "-c", code], cwd=work, policy=policy)
    finally:
        monkeypatch.setattr(tempfile, "tempdir", None)
        shutil.rmtree(work, ignore_errors=True)

    outcomes = dict(line.split(" => ", 1) for line in result.stdout.splitlines() if " => " in line)
    assert result.isolation == IsolationLevel.FULL
    assert len(outcomes) == 16, result.stdout + result.stderr
    assert outcomes.pop("get_declared") == "hello from A /ok"
    for name in ("connect_b", "absolute_b", "name_for_b", "name_for_a", "ipv6_b", "mapped_b", "short_ip_b"):
        assert outcomes.pop(name) == "HTTP/1.1 403 Forbidden", name
    assert outcomes.pop("unix_socket_b") == "HTTP/1.1 403 Forbidden"  # the relay is no boundary; the proxy is
    assert outcomes.pop("host_header") == "HTTP/1.1 400 Bad Request"
    assert outcomes.pop("urllib_to_b").startswith("HTTPError: HTTP Error 403")
    for name in ("direct_socket", "direct_ipv6"):
        assert "Connection refused" in outcomes.pop(name) or "unreachable" in outcomes[name], name
    assert set(outcomes) == {"raw_udp", "raw_syn", "plain_udp"}  # sent or refused: either way, nowhere below
    with pytest.raises(TimeoutError):
        udp.recvfrom(100)  # neither the plain nor the raw datagram left the sandbox
    udp.close()
    assert forbidden.accepted == [], "the undeclared listener saw a connection"
    refusals = [block["detail"] for block in result.blocked]
    assert all(block["effect"] == "network" and block["side_effect"] == "NETWORK" for block in result.blocked)
    assert any(f"CONNECT 127.0.0.1:{forbidden.port} is not a declared host" in detail for detail in refusals)
    assert any(f"GET 127.0.0.1:{forbidden.port} is not a declared host" in detail for detail in refusals)
    assert any("names no host" in detail for detail in refusals)
    assert not result.ok


@needs_bwrap
def test_the_relay_and_the_proxy_end_with_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVI_ISOLATION", "full")
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("kavi-egress-*"))
    threads = threading.active_count()
    policy = ExecPolicy(side_effect=SideEffect.NETWORK, allow_hosts=("127.0.0.1:9",), timeout_s=30)
    result = run_isolated([sys.executable, "-c", "print('done')"], cwd=tmp_path, policy=policy)
    assert result.stdout == "done\n" and result.ok
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("kavi-egress-*")) == before
    assert threading.active_count() == threads
    relays = [
        entry
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _cmdline(entry).count(relay.__file__.encode())
    ]
    assert relays == [], "a relay outlived its sandbox"


@needs_bwrap
def test_a_network_child_that_runs_too_long_is_stopped_with_its_relay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVI_ISOLATION", "full")
    policy = ExecPolicy(side_effect=SideEffect.NETWORK, allow_hosts=("127.0.0.1:9",), timeout_s=1.5)
    result = run_isolated([sys.executable, "-c", "while True: pass"], cwd=tmp_path, policy=policy)
    assert result.killed_reason == "timeout"
    time.sleep(0.2)  # the kill reaches the sandbox's PID namespace asynchronously
    assert not [entry for entry in Path("/proc").iterdir() if entry.name.isdigit() and _is_relay(entry)]


def _is_relay(entry: Path) -> bool:
    return relay.__file__.encode() in _cmdline(entry)


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.parametrize(("level", "side_effect"), [("fallback", SideEffect.NETWORK), ("full", SideEffect.READ_ONLY)])
def test_no_proxy_where_there_is_no_network_namespace_or_no_network(
    level: str, side_effect: SideEffect, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FALLBACK has no namespace, so no relay: the hook is the only guard there (docs/isolation.md). Other
    classes at FULL have no network at all and pay nothing for the proxy."""
    if level == "full" and not bwrap.probe_bwrap().works:
        pytest.skip("bubblewrap cannot run here")
    monkeypatch.setenv("KAVI_ISOLATION", level)
    code = "import os; print(sorted(k for k in os.environ if 'PROXY' in k.upper()))"
    policy = ExecPolicy(
        side_effect=side_effect,
        allow_hosts=("127.0.0.1:9",) if side_effect == "NETWORK" else (),
        env={relay.RELAY_ENV: "127.0.0.1:3128"},  # a caller cannot make the hook admit the host's port 3128
    )
    result = run_isolated([sys.executable, "-c", code], cwd=tmp_path, policy=policy)
    assert result.stdout.strip() == "[]", result.stderr
    if level == "fallback":  # and `kavi doctor` says the hook is all there is
        from kavi.sandbox.executor import probe_isolation

        assert any("NETWORK" in note and "audit hook" in note for note in probe_isolation().notes)
    assert relay.prepare({"side_effect": "NETWORK", "allow_hosts": ("a:1",)})["allow_hosts"] == ("a:1",)


def test_prepare_admits_the_relay_only_where_the_executor_started_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket as socket_module

    connect, create = socket_module.socket.connect, socket_module.create_connection
    monkeypatch.setattr(socket_module.socket, "connect", connect)
    monkeypatch.setattr(socket_module, "create_connection", create)  # undone after the test
    monkeypatch.setenv(relay.RELAY_ENV, "127.0.0.1:3129")
    assert relay.prepare({"side_effect": "READ_ONLY"}) == {"side_effect": "READ_ONLY"}
    prepared = relay.prepare({"side_effect": "NETWORK", "allow_hosts": ("127.0.0.1:3128",)})
    assert prepared["allow_hosts"] == ("127.0.0.1:3129", "127.0.0.1:3128")
    assert relay.relay_port(["127.0.0.1:3128", "x:3129", "y"]) == 3130
    from kavi.runtime import guard

    assert guard.RELAY_ENV == relay.RELAY_ENV  # the guard keeps its own copy to skip an import
    env = relay.proxy_environment(3130)
    assert env["HTTPS_PROXY"] == env["http_proxy"] == "http://127.0.0.1:3130" and env["NO_PROXY"] == ""


def test_the_shim_turns_a_plain_connect_into_a_connect_request(declared_server: int, forbidden: Listener) -> None:
    """In a fresh interpreter (the shim patches the socket module for good): a declared host works through the
    proxy, an undeclared one is refused by it. Convenience only: the proxy is what decides."""
    a, b = declared_server, forbidden.port
    with EgressProxy([f"127.0.0.1:{a}"]) as proxy:
        code = textwrap.dedent(
            f"""
            import socket, sys, threading
            sys.path[:0] = {sys.path!r}
            from kavi.runtime import relay
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            port = listener.getsockname()[1]
            def serve():
                while True:
                    client, _ = listener.accept()
                    threading.Thread(target=relay._relay_one, args=(client, {proxy.socket_path!r},
                                     threading.Semaphore(4)), daemon=True).start()
            threading.Thread(target=serve, daemon=True).start()
            relay.install_shim("127.0.0.1", port)
            sock = socket.create_connection(("127.0.0.1", {a}), timeout=5)
            sock.sendall(b"GET /shim HTTP/1.0\\r\\n\\r\\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            print(data.decode().splitlines()[-1])
            try:
                socket.socket().connect(("127.0.0.1", {b}))
            except ConnectionRefusedError as exc:
                print("refused:", exc)
            """
        )
        import subprocess

        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert done.stdout.splitlines() == [
        "hello from A /shim",
        f"refused: [Errno 111] kavi egress proxy: HTTP/1.1 403 Forbidden for 127.0.0.1:{b}",
    ], done.stderr
    assert forbidden.accepted == []
