"""The unix socket through which `kavi run-skill` reaches a running `kavi serve` of the same workspace.

``.kavi/run.sock``, created by the server with mode 0600 (and a peer-credential check: only the server's own
user, or root, is answered), removed when it stops. One request per connection: one JSON line in (the
command's arguments and the input's text), one JSON line out (the exit code and the exact stdout and stderr
the cold command would have printed), or ``{"fallback": why}`` when the call must run in the caller's own
process (a SECRET_READ skill: its secrets come from the caller's environment, not the server's). A socket
file nobody answers on is stale: the client runs cold, and the next server replaces it.

Standard library only at import time: the client half runs in every `kavi run-skill`.
"""

# string paths on purpose: pathlib costs start-up time on the client's path.
# ruff: noqa: PTH101, PTH108, PTH116, PTH119, PTH120

from __future__ import annotations

import json
import os
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from typing import Any

SOCKET_NAME = "run.sock"
MAX_REQUEST_BYTES = 256 * 1024 * 1024
_MAX_UNIX_PATH = 100  # sun_path holds 108 bytes; longer paths go through /proc/self/fd/N/NAME


class _addressable:
    """``path``, or a short alias of it through an open descriptor of its folder when it is too long for a
    unix socket address."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.folder = -1

    def __enter__(self) -> str:
        if len(self.path.encode()) <= _MAX_UNIX_PATH:
            return self.path
        self.folder = os.open(os.path.dirname(self.path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"/proc/self/fd/{self.folder}/{os.path.basename(self.path)}"

    def __exit__(self, *exc: object) -> None:
        if self.folder >= 0:
            os.close(self.folder)


# --- the client (kavi run-skill, kavi.cli.through_server) ----------------------------------------------


def connect(path: str) -> socket.socket | None:
    """A connection to the server at ``path``; None when none answers (no socket file, a stale one)."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _addressable(path) as address:
            client.connect(address)
    except OSError:
        client.close()
        return None
    return client


def exchange(connection: socket.socket, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request, return the one answer: ``{"code", "stdout", "stderr"}`` or ``{"fallback": why}``."""
    connection.sendall(json.dumps(request).encode() + b"\n")
    connection.shutdown(socket.SHUT_WR)
    data = _read_line(connection)
    try:
        answer = json.loads(data) if data else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        message = "the kavi server closed the connection without answering; the run may or may not be recorded"
        return {"code": 1, "stdout": "", "stderr": f"error: {message}\n"}
    return answer


def _read_line(connection: socket.socket) -> bytes:
    chunks = bytearray()
    while True:
        chunk = connection.recv(1 << 16)
        if not chunk:
            return bytes(chunks)
        chunks += chunk
        if len(chunks) > MAX_REQUEST_BYTES:
            return b""
        if chunks.endswith(b"\n"):
            return bytes(chunks)


# --- the server ----------------------------------------------------------------------------------------


class LocalSocket:
    """Serve ``handler(request) -> answer`` on ``path`` in threads of its own until :meth:`close`."""

    def __init__(self, path: str, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.path = path
        self.handler = handler
        self._listener: socket.socket | None = None
        self._identity: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str | None:
        """Listen; None when listening, else why not (another server answers there: it keeps its socket)."""
        if os.path.lexists(self.path):
            if call_alive(self.path):
                return f"another kavi server already answers on {self.path}"
            os.unlink(self.path)  # stale: its server is gone
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # the socket is born 0600: no moment where another user may connect
        try:
            with _addressable(self.path) as address:
                listener.bind(address)
        finally:
            os.umask(previous)
        os.chmod(self.path, 0o600)
        listener.listen(64)
        stat = os.stat(self.path)
        self._identity = (stat.st_dev, stat.st_ino)
        self._listener = listener
        import threading

        self._thread = threading.Thread(target=self._accept, name="kavi-run-socket", daemon=True)
        self._thread.start()
        return None

    def close(self) -> None:
        import contextlib

        listener, self._listener = self._listener, None
        if listener is None:
            return
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        with contextlib.suppress(OSError):
            stat = os.stat(self.path)
            if (stat.st_dev, stat.st_ino) == self._identity:  # never remove a later server's socket
                os.unlink(self.path)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _accept(self) -> None:
        while (listener := self._listener) is not None:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            import threading

            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            if not _same_user(connection):
                return
            data = _read_line(connection)
            try:
                request = json.loads(data)
            except ValueError:
                return
            if not isinstance(request, dict):
                return
            try:
                answer = self.handler(request)
            except Exception as exc:  # the handler reports every failure itself; this is a last resort
                answer = {"code": 3, "stdout": "", "stderr": f"error: kavi hit a bug in the server: {exc}\n"}
            try:
                connection.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:
                return  # the caller went away (Ctrl-C); the run is recorded all the same


def call_alive(path: str) -> bool:
    connection = connect(path)
    if connection is None:
        return False
    connection.close()
    return True


def _same_user(connection: socket.socket) -> bool:
    """Only the server's own user (or root) may run skills through it; the mode 0600 says so too."""
    if not sys.platform.startswith("linux"):
        return True
    import struct

    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", credentials)
    return uid in (os.getuid(), 0)
