"""Running kavi's own trusted tools (ruff, mypy) over candidate files.

These tools read the candidate but never execute it, so they run as plain child processes with a scrubbed
environment and a timeout; code that *executes* the candidate goes through the isolated executor instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ToolRun:
    returncode: int
    output: str
    timed_out: bool


def tool_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "HOME": os.environ.get("HOME", "/nonexistent"),
    }
    env.update(extra or {})
    return env


def run_tool(argv: list[str], *, cwd: Path, timeout_s: float, env: dict[str, str] | None = None) -> ToolRun:
    """Run a trusted tool in a session of its own, so a timeout or Ctrl-C stops it with all it started."""
    from kavi.sandbox.executor import kill_group, tracked

    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=tool_environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with tracked(process):
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(process)
            stdout, stderr = process.communicate()
            return ToolRun(-9, (stdout + stderr).decode("utf-8", "replace"), True)
    return ToolRun(process.returncode, (stdout + stderr).decode("utf-8", "replace"), False)
