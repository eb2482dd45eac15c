"""Inside a NETWORK sandbox: relay ``127.0.0.1:PORT`` to the parent's egress proxy, then run the command.

At FULL a NETWORK child has its own network namespace; the only way out is the unix socket of
:class:`kavi.sandbox.egress.EgressProxy`, bound into the sandbox. The executor starts the sandbox as

    python -I -S -B .../kavi/runtime/relay.py --listen PORT --unix SOCKET -- COMMAND...

This file, run as a script, binds ``127.0.0.1:PORT`` in the sandbox's own namespace, spawns
``COMMAND``, copies each accepted connection to a fresh connection on the unix socket, and exits
with the command's status as soon as the command ends — so the relay is listening before the first
byte of the command runs, and it is gone (not merely doomed) when bubblewrap returns. The relay is
trusted code but not a boundary: it judges nothing. Whatever the candidate does to it (or to the unix
socket directly) reaches the proxy, which judges every request.

Imported as a module (by the guard and the run-skill child, before the audit hook is installed),
:func:`prepare` adds the relay's address to the hook's host list and installs a convenience shim so a
plain ``socket.create_connection((host, port))`` to a declared host goes through ``CONNECT``.

Standard library only, and cheap: it runs on the start-up path of every NETWORK child. The launcher
uses the C modules (``_socket``, ``_thread``, ``select``) so it costs an interpreter start and little
more; ``socket`` (with ``enum`` and ``selectors``) is imported only by the shim, in a child that
imports it anyway.
"""

from __future__ import annotations

import _socket
import _thread
import os
import select
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Sequence
    from typing import Any

RELAY_ENV = "KAVI_EGRESS_RELAY"  # host:port of the relay, set by the executor at FULL for NETWORK only
RELAY_HOST = "127.0.0.1"
DEFAULT_PORT = 3128
MAX_CONNECTIONS = 32
IDLE_TIMEOUT_S = 60.0
_CHUNK = 65536
_MAX_RESPONSE_HEAD = 8192


def relay_port(declared_hosts: Sequence[str]) -> int:
    """A port for the relay that no declared host uses (the relay must not stand in for one)."""
    used = {entry.rpartition(":")[2] for entry in declared_hosts if entry.count(":") == 1}
    port = DEFAULT_PORT
    while str(port) in used:
        port += 1
    return port


def proxy_environment(port: int) -> dict[str, str]:
    """The variables that make urllib, httpx and requests use the relay, and tell :func:`prepare` where it
    is."""
    url = f"http://{RELAY_HOST}:{port}"
    env = {RELAY_ENV: f"{RELAY_HOST}:{port}"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = url
    env["NO_PROXY"] = env["no_proxy"] = ""
    return env


# --- the child's side: policy and shim ------------------------------------------------------------


def prepare(policy: dict[str, Any]) -> dict[str, Any]:
    """The hook policy for this sandbox: the relay's address first among the allowed hosts.

    Only where the executor started a relay (``KAVI_EGRESS_RELAY`` set, which it does only at FULL,
    in a network namespace of the sandbox's own), so the address never admits anything on the host's
    loopback at FALLBACK. Installs :func:`install_shim` too.
    """
    relay = os.environ.get(RELAY_ENV, "")
    if not relay or policy.get("side_effect") != "NETWORK":
        return policy
    host, _, port = relay.partition(":")
    install_shim(host, int(port))
    return {**policy, "allow_hosts": (relay, *policy.get("allow_hosts", ()))}


def install_shim(relay_host: str, relay_port: int) -> None:
    """Route a blocking TCP ``connect`` to anything but the relay through ``CONNECT host:port``.

    Convenience, not a boundary: in the network namespace a direct connection reaches nothing
    anyway. The shim raises the same ``socket.connect`` audit event the real call would, so the hook
    still judges the address first; the proxy judges it again, from the parent.
    """
    import socket

    relay = (relay_host, relay_port)
    original_connect = socket.socket.connect
    original_create = socket.create_connection

    def tunnel(sock: socket.socket, address: Any) -> None:
        sys.audit("socket.connect", sock, address)
        original_connect(sock, relay)
        host, port = address[0], address[1]
        authority = f"[{host}]:{port}" if ":" in f"{host}" else f"{host}:{port}"
        sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        head = b""
        while not head.endswith(b"\r\n\r\n") and len(head) < _MAX_RESPONSE_HEAD:
            byte = sock.recv(1)  # one at a time: what follows the head belongs to the caller
            if not byte:
                break
            head += byte
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        if status_line.split(" ")[1:2] != ["200"]:
            raise ConnectionRefusedError(111, f"kavi egress proxy: {status_line or 'no answer'} for {authority}")

    def rerouted(sock: socket.socket, address: Any) -> bool:
        return (
            sock.family == socket.AF_INET  # the relay listens on IPv4; IPv6 reaches nothing
            and sock.type == socket.SOCK_STREAM
            and isinstance(address, tuple)
            and len(address) >= 2
            and (address[0], address[1]) != relay
            and sock.gettimeout() != 0.0  # a non-blocking connect cannot do the handshake here
        )

    def connect(self: socket.socket, address: Any) -> None:
        if rerouted(self, address):
            tunnel(self, address)
        else:
            original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        try:
            connect(self, address)
        except OSError as exc:
            return exc.errno or 111
        return 0

    default_timeout = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]

    def create_connection(address: Any, timeout: Any = default_timeout, *args: Any, **kwargs: Any) -> Any:
        host, port = address[0], address[1]
        source = args[0] if args else kwargs.get("source_address")
        if (host, port) == relay or source:
            return original_create(address, timeout, *args, **kwargs)
        # A name is not resolved here (there is no DNS in the sandbox): the proxy resolves it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if timeout is not default_timeout:
            sock.settimeout(timeout)
        try:
            tunnel(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return sock

    socket.socket.connect = connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign, assignment]
    socket.create_connection = create_connection


# --- the sandbox's side: the relay launcher -------------------------------------------------------


class _Slots:
    """How many connections the relay carries at once (``threading`` would cost its import)."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self.lock = _thread.allocate_lock()

    def take(self) -> bool:
        with self.lock:
            if self.free <= 0:
                return False
            self.free -= 1
            return True

    def give(self) -> None:
        with self.lock:
            self.free += 1


def _relay_one(client: _socket.socket, unix_path: str, slots: _Slots) -> None:
    upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        upstream.connect(unix_path)
        open_reads = [client, upstream]
        peers = {client: upstream, upstream: client}
        while open_reads:
            ready, _, _ = select.select(open_reads, [], [], IDLE_TIMEOUT_S)
            if not ready:
                return
            for source in ready:
                chunk = source.recv(_CHUNK)
                if chunk:
                    peers[source].sendall(chunk)
                    continue
                open_reads.remove(source)
                try:  # noqa: SIM105 - contextlib costs start-up time
                    peers[source].shutdown(_socket.SHUT_WR)
                except OSError:
                    pass
    except OSError:
        pass
    finally:
        client.close()
        upstream.close()
        slots.give()


def _serve(listener: _socket.socket, unix_path: str) -> None:
    slots = _Slots(MAX_CONNECTIONS)
    while True:
        fd, _ = listener._accept()  # type: ignore[attr-defined]  # the C accept: a descriptor
        client = _socket.socket(fileno=fd)
        if not slots.take():
            client.close()  # over the limit: the proxy never sees it
            continue
        _thread.start_new_thread(_relay_one, (client, unix_path, slots))


def launch(argv: Sequence[str]) -> int:
    """``--listen PORT --unix PATH -- COMMAND...``: listen, start the command, relay until it exits, exit with
    its status (128 + N for a signal, as bubblewrap reports one)."""
    args = list(argv)
    if len(args) < 6 or args[0] != "--listen" or args[2] != "--unix" or args[4] != "--":
        sys.stderr.write("usage: relay.py --listen PORT --unix PATH -- COMMAND...\n")
        return 2
    port, unix_path, command = int(args[1]), args[3], args[5:]
    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    listener.bind((RELAY_HOST, port))
    listener.listen(MAX_CONNECTIONS)
    try:  # posix_spawn (vfork and exec) is cheaper than fork for an interpreter
        pid = os.posix_spawnp(command[0], command, os.environ)
    except OSError as exc:
        sys.stderr.write(f"relay: cannot run {command[0]}: {exc}\n")
        return 127
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the run's pipes belong to the command: they close when it is done
        os.dup2(null, fd)
    _thread.start_new_thread(_serve, (listener, unix_path))
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
