"""The only way out of a NETWORK sandbox: an HTTP proxy in the parent that admits the declared hosts only.

At FULL a NETWORK child runs in its own network namespace (only ``lo``). Its one path to the world is
a unix socket bound into the sandbox, behind which this proxy runs in kavi's own process. Nothing
the candidate runs can change what the proxy decides, which is the point: the audit hook lives in the
candidate's interpreter and can be lied to (a ``str`` subclass), reached past (native code) or
ignored (a raw socket); the proxy cannot.

It speaks two forms of HTTP proxying, which urllib, httpx and requests use unchanged when
``HTTP_PROXY``/``HTTPS_PROXY`` point at the relay (:mod:`kavi.runtime.relay`):

* ``CONNECT host:port`` for https and any other TCP protocol: a tunnel, bytes copied both ways.
* absolute-form ``GET http://host[:port]/path``: the request is re-sent to the origin in
  origin-form, with ``Host`` taken from the request target (never from the client's ``Host``
  header) and ``Connection: close``.

A request is admitted only when its host and port match a declared entry and the address the proxy
then connects to is one the declared host stands for: exactly the literal for a declared IP address,
one of the addresses the proxy itself resolved for a declared name. A name that is not declared is
refused even when it resolves to a declared address. Everything else gets a clear HTTP error and is
recorded as a blocked effect, in the same shape the audit hook reports, so gates and ``run-skill``
name it.

Bounded: at most ``max_connections`` live connections, a deadline for the request head, an idle
timeout on every tunnel, and :meth:`EgressProxy.close` shuts every socket and joins every thread
when the run ends.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import selectors
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

SOCKET_NAME = "proxy.sock"
MAX_HEAD_BYTES = 16 * 1024
MAX_REPORTS = 20  # as many as the hook prints; a loop of refused connects must not grow without bound
DEFAULT_MAX_CONNECTIONS = 32
DEFAULT_HEAD_TIMEOUT_S = 10.0
DEFAULT_IDLE_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
JOIN_TIMEOUT_S = 2.0
_CHUNK = 65536
_MAX_FOLDER_LENGTH = 90
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "upgrade"}
)

Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True)
class Target:
    """Where a request asks to go: a lower-case name or a normalised IP literal, and a port."""

    host: str
    port: int

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Admission:
    """The proxy's verdict: the addresses it may connect to, or why not."""

    addresses: tuple[str, ...] = ()
    reason: str = ""

    @property
    def admitted(self) -> bool:
        return bool(self.addresses)


class ProxyRequestError(ValueError):
    """A request the proxy cannot read; carries the HTTP status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_declared(entries: Iterable[str]) -> tuple[tuple[str, int | None], ...]:
    """``host`` or ``host:port`` entries of a spec, as (normalised host, port or None)."""
    parsed: list[tuple[str, int | None]] = []
    for entry in entries:
        text = entry.strip()
        host, port = text, None
        if text.count(":") == 1:
            host, _, digits = text.partition(":")
            port = int(digits) if digits.isdigit() else None
        parsed.append((normalize_host(host), port))
    return tuple(parsed)


def normalize_host(host: str) -> str:
    """Lower case, no brackets, no trailing dot; an IP literal in its canonical form."""
    text = host.strip().strip("[]").rstrip(".").lower()
    literal = _ip_literal(text)
    return str(literal) if literal is not None else text


def _ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_authority(text: str, *, default_port: int | None = None) -> Target:
    """``host:port``, ``[v6]:port`` (or a bare host when ``default_port`` is given) as a :class:`Target`."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ProxyRequestError(400, f"not an authority: {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise ProxyRequestError(400, f"an IPv6 address must be in brackets: {text!r}")
    else:
        host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise ProxyRequestError(400, f"no port in {text!r}")
        port = default_port
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise ProxyRequestError(400, f"not a port: {port_text!r}")
    if not host or any(char.isspace() or char in "/@?#" for char in host):
        raise ProxyRequestError(400, f"not a host: {host!r}")
    return Target(normalize_host(host), port)


def admit(target: Target, declared: Sequence[tuple[str, int | None]], resolve: Resolver) -> Admission:
    """Decide one request against the declared hosts; ``resolve`` is only called for a declared name.

    A declared IP literal admits exactly that address. A declared name admits a request for that
    name (connected to the addresses the proxy resolved) or for one of those addresses. A name that
    is not declared is refused without being resolved.
    """
    requested = _ip_literal(target.host)
    for host, port in declared:
        if port is not None and port != target.port:
            continue
        declared_literal = _ip_literal(host)
        if declared_literal is not None:
            if requested is not None and requested == declared_literal:
                return Admission((str(requested),))
            continue
        if requested is None and target.host != host:
            continue
        try:
            addresses = tuple(normalize_host(address) for address in resolve(host, target.port))
        except OSError as exc:
            return Admission(reason=f"{target.authority}: the declared host {host} does not resolve ({exc})")
        if requested is None:
            if addresses:
                return Admission(addresses)
            return Admission(reason=f"{target.authority}: the declared host {host} resolves to no address")
        if str(requested) in addresses:
            return Admission((str(requested),))
    return Admission(reason=f"{target.authority} is not a declared host")


def resolve_stream(host: str, port: int) -> tuple[str, ...]:
    """The TCP addresses of ``host``, in the resolver's order, without duplicates."""
    found: list[str] = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return tuple(found)


@dataclass(frozen=True)
class _Request:
    method: str
    target: Target
    head: bytes  # what to send to the origin first ("" for CONNECT)
    rest: bytes  # bytes the client sent after its request head


class EgressProxy:
    """A proxy on a fresh unix socket for one run; use it as a context manager around the run.

    ``blocked`` collects every refusal as ``{"effect", "detail", "side_effect"}`` (the audit hook's
    shape), the first :data:`MAX_REPORTS` of them; ``refusals`` counts them all.
    """

    def __init__(
        self,
        allow_hosts: Sequence[str],
        *,
        side_effect: str = "NETWORK",
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        resolver: Resolver = resolve_stream,
    ) -> None:
        self.declared = parse_declared(allow_hosts)
        self.side_effect = side_effect
        self.max_connections = max_connections
        self.head_timeout_s = head_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._resolver = resolver
        self._resolved: dict[tuple[str, int], tuple[str, ...]] = {}
        self.blocked: list[dict[str, str]] = []
        self.refusals = 0
        self.admitted = 0
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._closing = threading.Event()
        self._folder = ""
        self.socket_path = ""
        self._listener: socket.socket | None = None
        self._wake_read, self._wake_write = socket.socketpair()
        self._acceptor: threading.Thread | None = None

    # --- life cycle ---
    def __enter__(self) -> EgressProxy:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Bind the socket (in a folder only this user can enter) and start accepting."""
        self._folder = tempfile.mkdtemp(prefix="kavi-egress-")
        if len(self._folder) > _MAX_FOLDER_LENGTH:  # a unix socket path has room for about 108 bytes
            os.rmdir(self._folder)  # noqa: PTH106
            self._folder = tempfile.mkdtemp(prefix="kavi-egress-", dir="/tmp")
        self.socket_path = os.path.join(self._folder, SOCKET_NAME)  # noqa: PTH118 - a plain str for bind
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        # The folder keeps other users of this machine out; the socket itself must be connectable by
        # whatever uid the sandbox maps its child to.
        os.chmod(self.socket_path, 0o666)  # noqa: PTH101, S103
        listener.listen(self.max_connections)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept_loop, name="kavi-egress-accept", daemon=True)
        self._acceptor.start()

    def close(self) -> None:
        """Stop accepting, cut every live connection, join every thread, remove the socket."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        if self._acceptor is not None:
            self._acceptor.join(JOIN_TIMEOUT_S)
        with self._lock:
            live, threads = list(self._live), list(self._threads)
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(JOIN_TIMEOUT_S)
        if self._listener is not None:
            self._listener.close()
        self._wake_read.close()
        self._wake_write.close()
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)

    def thread_count(self) -> int:
        """Handler threads still alive (0 after :meth:`close`, unless one is stuck in a DNS lookup)."""
        with self._lock:
            return sum(1 for thread in self._threads if thread.is_alive())

    # --- accepting ---
    def _accept_loop(self) -> None:
        assert self._listener is not None
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake_read, selectors.EVENT_READ)
        try:
            while not self._closing.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_read or self._closing.is_set():
                        return
                    try:
                        client, _ = self._listener.accept()
                    except OSError:
                        continue
                    self._dispatch(client)
        finally:
            selector.close()

    def _dispatch(self, client: socket.socket) -> None:
        with self._lock:
            self._threads = {thread for thread in self._threads if thread.is_alive()}
            full = len(self._threads) >= self.max_connections
            if not full:
                thread = threading.Thread(target=self._serve, args=(client,), name="kavi-egress", daemon=True)
                self._threads.add(thread)
                self._live.add(client)
        if full:
            with contextlib.suppress(OSError):
                client.settimeout(1.0)
                client.sendall(_response(503, f"more than {self.max_connections} connections at once"))
            client.close()
            return
        thread.start()

    # --- one connection ---
    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            try:
                request = self._read_request(client)
            except ProxyRequestError as exc:
                self._refuse(client, exc.status, str(exc))
                return
            if request is None:
                return  # closed before saying anything
            admission = admit(request.target, self.declared, self._resolve)
            if not admission.admitted:
                self._refuse(client, 403, f"{request.method} {admission.reason}")
                return
            upstream = self._connect(request.target, admission.addresses)
            if upstream is None:
                client.sendall(_response(502, f"could not connect to {request.target.authority}"))
                return
            with self._lock:
                self.admitted += 1
            if request.method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(request.head)
            if request.rest:
                upstream.sendall(request.rest)
            self._pump(client, upstream)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with self._lock:
                        self._live.discard(sock)
                    sock.close()

    def _read_request(self, client: socket.socket) -> _Request | None:
        deadline = time.monotonic() + self.head_timeout_s  # for the whole head: a byte at a time gains nothing
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                client.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = client.recv(_CHUNK)
            except TimeoutError:
                raise ProxyRequestError(408, "no complete request head in time") from None
            if not chunk:
                if data:
                    raise ProxyRequestError(400, "the connection closed inside the request head")
                return None
            data += chunk
            if len(data) > MAX_HEAD_BYTES:
                raise ProxyRequestError(431, "request head too large")
        head, _, rest = data.partition(b"\r\n\r\n")
        return parse_request(head, rest)

    def _resolve(self, host: str, port: int) -> tuple[str, ...]:
        """Each declared name is resolved once per run, by the proxy: every connection of the run goes to
        the same addresses, whatever a resolver answers later."""
        key = (host, port)
        if key not in self._resolved:
            self._resolved[key] = tuple(self._resolver(host, port))
        return self._resolved[key]

    def _connect(self, target: Target, addresses: Sequence[str]) -> socket.socket | None:
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            upstream = socket.socket(family, socket.SOCK_STREAM)
            with self._lock:
                self._live.add(upstream)
            upstream.settimeout(self.connect_timeout_s)
            try:
                upstream.connect((address, target.port))
            except OSError:
                with self._lock:
                    self._live.discard(upstream)
                upstream.close()
                continue
            return upstream
        return None

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy both ways until both sides are done or nothing moves for ``idle_timeout_s``."""
        peers = {client: upstream, upstream: client}
        open_reads = {client, upstream}
        for sock in peers:
            sock.setblocking(False)
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            while open_reads and not self._closing.is_set():
                events = selector.select(self.idle_timeout_s)
                if not events:
                    return  # idle: nothing moved in either direction
                for key, _ in events:
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        chunk = source.recv(_CHUNK)
                    except BlockingIOError:
                        continue
                    sink = peers[source]
                    if not chunk:
                        selector.unregister(source)
                        open_reads.discard(source)
                        with contextlib.suppress(OSError):
                            sink.shutdown(socket.SHUT_WR)
                        continue
                    sink.settimeout(self.idle_timeout_s)
                    sink.sendall(chunk)
                    sink.setblocking(False)

    def _refuse(self, client: socket.socket, status: int, message: str) -> None:
        self._record(message)
        with contextlib.suppress(OSError):
            client.sendall(_response(status, message))

    def _record(self, message: str) -> None:
        with self._lock:
            self.refusals += 1
            if len(self.blocked) < MAX_REPORTS:
                self.blocked.append(
                    {
                        "effect": "network",
                        "detail": f"egress proxy refused {message}"[:300],
                        "side_effect": self.side_effect,
                    }
                )


def parse_request(head: bytes, rest: bytes) -> _Request:
    """Read a proxy request head: CONNECT (authority-form) or absolute-form ``http://``; anything else is a
    :class:`ProxyRequestError`."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise ProxyRequestError(400, "unreadable request head") from None
    line, *header_lines = text.split("\r\n")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProxyRequestError(400, f"not an HTTP/1.x request line: {line[:100]!r}")
    method, target_text, version = parts
    if method == "CONNECT":
        return _Request(method, parse_authority(target_text), b"", rest)
    if not target_text.lower().startswith("http://"):
        raise ProxyRequestError(
            400, f"{method} {target_text[:100]} names no host: use an absolute http:// URL, or CONNECT for https"
        )
    after_scheme = target_text[len("http://") :]
    slash = min((after_scheme.find(char) for char in "/?#" if char in after_scheme), default=len(after_scheme))
    authority, path = after_scheme[:slash], after_scheme[slash:] or "/"
    if "@" in authority:
        raise ProxyRequestError(400, "credentials in the request target are refused")
    if not path.startswith("/"):
        path = "/" + path
    target = parse_authority(authority, default_port=80)
    headers = [
        header
        for header in header_lines
        if header and header.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP | {"host"}
    ]
    host_header = target.host if target.port == 80 else target.authority
    if ":" in target.host and target.port == 80:
        host_header = f"[{target.host}]"
    lines = [f"{method} {path} {version}", f"Host: {host_header}", *headers, "Connection: close", "", ""]
    return _Request(method, target, "\r\n".join(lines).encode("latin-1"), rest)


def _response(status: int, message: str) -> bytes:
    reasons = {
        400: "Bad Request",
        403: "Forbidden",
        408: "Request Timeout",
        431: "Request Header Fields Too Large",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }
    body = f"kavi egress proxy: {message}\n".encode("utf-8", "replace")
    head = (
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
