"""Fixtures for attacks on the audit hook from inside a child: the levels and snippet runner of the isolation
suite, plus a host-side scene whose state each attack must leave untouched."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kavi.sandbox import bwrap
from kavi.sandbox.executor import IsolationLevel
from tests.isolation.conftest import run_snippet, sandbox

__all__ = ["Scene", "level", "run_snippet", "sandbox", "scene"]


@pytest.fixture(params=("full", "fallback", "process"))
def level(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> IsolationLevel:
    """FULL and FALLBACK (the kernel layers in force, so the kernel may refuse before the hook does), and
    PROCESS: the hook alone, which must then name every refusal itself."""
    if request.param == "full" and not bwrap.probe_bwrap().works:
        pytest.skip(f"bubblewrap cannot run here: {bwrap.probe_bwrap().error}")
    monkeypatch.setenv("KAVI_ISOLATION", request.param)
    return IsolationLevel(request.param)

CANARY = "kavi-canary-7f3a"


@dataclass
class Scene:
    """What lives on the host: a write root, a folder outside it, a victim process holding a canary in its
    environment, and a TCP and a UDP listener on loopback."""

    root: Path
    outside: Path
    victim: subprocess.Popen[bytes]
    tcp: socket.socket
    udp: socket.socket

    @property
    def tcp_port(self) -> int:
        return int(self.tcp.getsockname()[1])

    @property
    def udp_port(self) -> int:
        return int(self.udp.getsockname()[1])

    def format(self, body: str) -> str:
        return body.format(
            root=str(self.root),
            outside=str(self.outside),
            victim=self.victim.pid,
            tcp=self.tcp_port,
            udp=self.udp_port,
        )

    def assert_untouched(self, stdout: str) -> None:
        assert not list(self.outside.iterdir()), f"something was made outside: {list(self.outside.iterdir())}"
        assert self.victim.poll() is None, "the victim process was signalled"
        assert CANARY not in stdout, "the victim's environment leaked"
        self.tcp.setblocking(False)
        with pytest.raises(BlockingIOError):
            self.tcp.accept()
        self.udp.setblocking(False)
        with pytest.raises(BlockingIOError):
            self.udp.recv(4096)


@pytest.fixture
def scene(sandbox: Path) -> Iterator[Scene]:
    root, outside = sandbox / "root", sandbox.parent / "outside"
    root.mkdir()
    outside.mkdir()
    victim = subprocess.Popen(["sleep", "60"], env={**os.environ, "KAVI_VICTIM_SECRET": CANARY})
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        yield Scene(root, outside, victim, tcp, udp)
    finally:
        victim.kill()
        victim.wait()
        tcp.close()
        udp.close()
