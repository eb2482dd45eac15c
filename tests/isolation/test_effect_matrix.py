"""Side-effect class x attempted effect -> allowed or denied, at both isolation levels.

Each snippet tries one effect and prints ALLOWED only if it fully succeeded. A denial may come from
the audit hook (a named EffectBlocked, reported on stderr) or from the OS sandbox (a read-only or
hidden file system, no network); either way the effect must not happen.
"""

from __future__ import annotations

import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kavi.runtime.audit import BLOCKED_EXIT_CODE
from kavi.side_effects import SideEffect

from .conftest import RunSnippet

PY_CLASSES = tuple(SideEffect)
TOKEN = "s3cr3t-token-value"

ATTEMPTS = {
    "write_in_root": """
        open({root!r} + "/made.txt", "w").write("x")
    """,
    "write_outside_root": """
        open({outside!r} + "/made.txt", "w").write("x")
    """,
    "symlink_escape": """
        open({root!r} + "/escape/made.txt", "w").write("x")
    """,
    "read_ssh_key": """
        data = open({home!r} + "/.ssh/id_rsa").read()
        assert "FAKE-PRIVATE-KEY" in data
        print(data)
    """,
    "read_undeclared_secret": """
        import os
        found = os.environ.get("KAVI_TEST_TOKEN", "")
        try:
            found += open(f"/proc/{{os.getppid()}}/environ", "rb").read().decode()
        except FileNotFoundError:
            pass
        assert {token!r} in found
    """,
    "connect_localhost": """
        import socket
        socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
    """,
    "resolve_host": """
        import socket
        assert socket.getaddrinfo("localhost", {port})
    """,
    "spawn_process": """
        import subprocess
        subprocess.run(["true"], check=True)
    """,
    "load_c_library": """
        import ctypes
        ctypes.CDLL("libc.so.6").getpid()
    """,
}

ALLOWED = {
    ("write_in_root", SideEffect.FILE_WRITE),
    ("connect_localhost", SideEffect.NETWORK),
    ("resolve_host", SideEffect.NETWORK),
    ("spawn_process", SideEffect.SUBPROCESS),
    ("load_c_library", SideEffect.GPU_KERNEL),
}


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP listener on the host's loopback that a child may or may not reach."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _wrap(body: str) -> str:
    return (
        f"try:\n{body}\n    print('ALLOWED')\n"
        "except BaseException as exc:\n    print('DENIED', type(exc).__name__, exc)\n"
    )


@pytest.mark.parametrize("side_effect", PY_CLASSES, ids=str)
@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
def test_effect_is_allowed_only_for_its_class(
    attempt: str,
    side_effect: SideEffect,
    level: object,
    sandbox: Path,
    run_snippet: RunSnippet,
    listener: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAVI_TEST_TOKEN", TOKEN)
    root, outside = sandbox / "out", sandbox.parent / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    body = ATTEMPTS[attempt].format(
        root=str(root), outside=str(outside), home=os.environ["HOME"], token=TOKEN, port=listener
    )
    indented = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    declared = {
        SideEffect.FILE_WRITE: {"write_roots": (root,)},
        SideEffect.NETWORK: {"allow_hosts": (f"127.0.0.1:{listener}", "localhost")},
        SideEffect.SUBPROCESS: {"executables": ("true",)},
        SideEffect.SECRET_READ: {"secrets": {"OTHER_SECRET": "other"}},
    }.get(side_effect, {})
    result = run_snippet(_wrap(indented), side_effect, **declared)

    expected_allowed = (attempt, side_effect) in ALLOWED
    assert result.isolation == level
    assert ("ALLOWED" in result.stdout) == expected_allowed, (result.stdout, result.stderr[-2000:])
    if expected_allowed:
        assert result.ok, result.stderr[-2000:]
    else:
        assert "DENIED" in result.stdout, result.stderr[-2000:]
        # The hook names the refusal even though the snippet caught it, and the run still fails.
        assert result.blocked, result.stderr[-2000:]
        assert result.blocked[0]["side_effect"] == str(side_effect)
        assert result.returncode == BLOCKED_EXIT_CODE
        assert not result.ok
        assert "FAKE-PRIVATE-KEY" not in result.stdout
        assert TOKEN not in result.stdout
    assert not list(outside.iterdir()), "a write escaped the write roots"
    if (attempt, side_effect) != ("write_in_root", SideEffect.FILE_WRITE):
        assert not (root / "made.txt").exists()
