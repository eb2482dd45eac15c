"""Run untrusted code in a child process with no more power than it declared.

Every gate that executes candidate code and every `run-skill` goes through :func:`run_isolated`.
This module owns the environment scrub, the wall-clock timeout that kills the whole process group and the
output caps; OS-level isolation (bubblewrap, rlimits, the audit hook) plugs in here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from kavi.side_effects import SideEffect

DEFAULT_MAX_OUTPUT = 1_000_000


class IsolationLevel(StrEnum):
    """How strongly a child was confined; recorded with every verification and execution."""

    FULL = "full"  # bubblewrap namespaces + rlimits + scrubbed env + audit hook
    FALLBACK = "fallback"  # rlimits + scrubbed env + audit hook, no namespaces
    PROCESS = "process"  # scrubbed env + timeout only


@dataclass(frozen=True)
class ExecPolicy:
    """The power a child gets. Paths are absolute; ``env`` is the whole environment it will see."""

    side_effect: SideEffect = SideEffect.READ_ONLY
    timeout_s: float = 60.0
    env: Mapping[str, str] = field(default_factory=dict)
    write_roots: tuple[Path, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    max_output_bytes: int = DEFAULT_MAX_OUTPUT
    require_isolation: bool = False


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    isolation: IsolationLevel
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def base_environment() -> dict[str, str]:
    """The minimal environment every child starts from: nothing of the user's but a safe PATH."""
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "NO_COLOR": "1",
    }


def run_isolated(
    argv: Sequence[str],
    *,
    cwd: Path,
    policy: ExecPolicy,
    stdin: bytes | None = None,
) -> ExecResult:
    """Run ``argv`` in ``cwd`` under ``policy``; never raises for what the child does."""
    env = {**base_environment(), **policy.env, "HOME": str(cwd)}
    start = time.perf_counter()
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = process.communicate(stdin, timeout=policy.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process)
        out, err = process.communicate()
    finally:
        _kill_group(process)
    cap = policy.max_output_bytes
    truncated = len(out) > cap or len(err) > cap
    return ExecResult(
        returncode=process.returncode if not timed_out else -signal.SIGKILL,
        stdout=out[:cap].decode("utf-8", "replace"),
        stderr=err[:cap].decode("utf-8", "replace"),
        duration_s=time.perf_counter() - start,
        timed_out=timed_out,
        isolation=IsolationLevel.PROCESS,
        truncated=truncated,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
