"""One workspace with TRUSTED skills (built once per session through the real stages) and one real
`kavi serve` subprocess per test module, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from kavi.demo import recording_of
from kavi.stages.common import Forge
from kavi.workspace import Workspace, init_workspace
from tests.support import forge_trusted

RECORDINGS = Path(__file__).parent / "recordings"
collect_ignore = ["recordings"]  # builder recordings: their tests run inside the verify gate, not here
KAVI = str(Path(sys.executable).parent / "kavi")

WORD_COUNT = {
    "name": "word_count",
    "description": "Count the words in a text",
    "side_effect": "READ_ONLY",
    "io_schema": {"input": {"text": "str"}, "output": {"count": "int"}},
    "examples": [{"input": {"text": "a b"}, "output": {"count": 2}}],
}
SAVE_TEXT = {
    "name": "save_text",
    "description": "Save a text as saved.txt under a folder",
    "side_effect": "FILE_WRITE",
    "io_schema": {"input": {"folder": "str", "text": "str"}, "output": {"path": "str"}},
    "examples": [{"input": {"folder": "notes", "text": "hi"}, "output": {"path": "notes/saved.txt"}}],
    "write_roots": ("notes",),
}


@pytest.fixture(scope="session")
def served_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("serve-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        patch.delenv("KAVI_WORKSPACE", raising=False)
        root = tmp_path_factory.mktemp("serve-template") / "ws"
        workspace, _ = init_workspace(root)
        with Forge.opened(workspace) as forge:
            forge_trusted(forge, WORD_COUNT, recording_of("word_count"))
            forge_trusted(forge, SAVE_TEXT, RECORDINGS / "save_text")
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    workspace: Workspace
    url: str
    process: subprocess.Popen[bytes]

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def start_server(
    workspace: Path, *extra: str, token: str | None = None, environ: dict[str, str] | None = None
) -> Served:
    port = free_port()
    env = {**os.environ, "KAVI_WORKSPACE": str(workspace), **(environ or {})}
    env.pop("KAVI_SERVE_TOKEN", None)
    if token:
        env["KAVI_SERVE_TOKEN"] = token
    process = subprocess.Popen(
        [KAVI, "serve", "--port", str(port), *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"kavi serve exited {process.returncode}: {process.stderr.read().decode()}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return Served(Workspace(workspace), url, process)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("kavi serve did not answer within 30 s")


def stop_server(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()


@pytest.fixture(scope="module")
def served(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A private copy of the template workspace and a real `kavi serve` on it, for one test module."""
    root = tmp_path_factory.mktemp("served") / "ws"
    shutil.copytree(served_template, root, symlinks=True)
    server = start_server(root)
    yield server
    stop_server(server)
