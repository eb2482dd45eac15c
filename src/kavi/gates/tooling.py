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
    try:
        completed = subprocess.run(
            argv,
            cwd=cwd,
            env=tool_environment(env),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        partial = (exc.stdout or b"") + (exc.stderr or b"")
        return ToolRun(-9, partial.decode("utf-8", "replace"), True)
    output = (completed.stdout + completed.stderr).decode("utf-8", "replace")
    return ToolRun(completed.returncode, output, False)
