"""The scoped hook of `kavi.api.load_skill`: inside a skill's code the READ_ONLY policy holds for the calling
thread; outside it the caller's own program is not confined. The hook only, never a boundary."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

CANARY = "kavi-canary-scoped-91c"

SCRIPT = """
import os, socket, threading
from kavi.runtime.hook import install_scoped

enter, leave = install_scoped({"side_effect": "READ_ONLY", "private_tmp": False})
open("before.txt", "w").write("caller")
attempts = {
    "environ": lambda: open("/proc/self/environ", "rb").read().decode("latin-1"),
    "thread_environ": lambda: open("/proc/thread-self/environ", "rb").read().decode("latin-1"),
    "mem": lambda: open("/proc/self/mem", "rb"),
    "dir_fd_environ": lambda: os.read(
        os.open("environ", os.O_RDONLY, dir_fd=os.open("/proc/self", os.O_RDONLY)), 65536
    ).decode("latin-1"),
    "write": lambda: open("inside.txt", "w").write("x"),
    "thread": lambda: threading.Thread(target=lambda: open("thread.txt", "w").write("x")).start(),
    "subinterpreter": lambda: __import__("_xxsubinterpreters").create(),
    "raw_socket": lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
    "program": lambda: os.system("touch program.txt"),
}
for name, attempt in attempts.items():
    enter()
    try:
        got = attempt()
        print("EFFECT", name, str(got)[:20000])
    except Exception as exc:
        print("REFUSED", name, type(exc).__name__, "EffectBlocked" in str(exc))
    finally:
        leave()
open("after.txt", "w").write("caller")
"""


def test_the_scoped_hook_refuses_inside_and_leaves_the_caller_alone(tmp_path: Path) -> None:
    env = {**os.environ, "KAVI_SCOPED_SECRET_TOKEN": CANARY}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert CANARY not in done.stdout + done.stderr
    assert "EFFECT" not in done.stdout, done.stdout + done.stderr
    refused = [line for line in done.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(refused) == 9 and all(line.endswith("True") for line in refused), done.stdout + done.stderr
    assert (tmp_path / "before.txt").exists() and (tmp_path / "after.txt").exists()
    for made in ("inside.txt", "thread.txt", "program.txt"):
        assert not (tmp_path / made).exists()
    assert done.returncode == 0  # no exit code is forced on the caller's process
