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

import contextlib
import json
import os
import socket
import struct
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

SOCKET_NAME = "run.sock"
MAX_REQUEST_BYTES = 256 * 1024 * 1024
_MAX_UNIX_PATH = 100  # sun_path holds 108 bytes; longer paths go through /proc/self/fd/N/NAME


@contextlib.contextmanager
def _addressable(path: str) -> Iterator[str]:
    """``path``, or a short alias of it through an open descriptor of its folder when it is too long for a
    unix socket address."""
    if len(path.encode()) <= _MAX_UNIX_PATH:
        yield path
        return
    folder = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{folder}/{os.path.basename(path)}"
    finally:
        os.close(folder)


# --- the client (kavi run-skill) -----------------------------------------------------------------------


def call(path: str, request: dict[str, Any]) -> dict[str, Any] | None:
    """Send one request to the server at ``path``; None when no server answers there (no socket, a stale
    one). An answer is ``{"code", "stdout", "stderr"}`` or ``{"fallback": why}``."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _addressable(path) as address:
            client.connect(address)
    except OSError:
        client.close()
        return None
    with client:
        client.sendall(json.dumps(request).encode() + b"\n")
        client.shutdown(socket.SHUT_WR)
        data = _read_line(client)
    try:
        answer = json.loads(data) if data else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return {"code": 1, "stdout": "", "stderr": "error: the kavi server closed the connection without an answer\n"}
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
        self._thread = threading.Thread(target=self._accept, name="kavi-run-socket", daemon=True)
        self._thread.start()
        return None

    def close(self) -> None:
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
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps(answer).encode() + b"\n")


def call_alive(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _addressable(path) as address:
            probe.connect(address)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _same_user(connection: socket.socket) -> bool:
    """Only the server's own user (or root) may run skills through it; the mode 0600 says so too."""
    if not sys.platform.startswith("linux"):
        return True
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", credentials)
    return uid in (os.getuid(), 0)
