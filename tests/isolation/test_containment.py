"""Runaway children are stopped and reported with a reason; the parent is unharmed."""

from __future__ import annotations

import os
import resource
import sys
import uuid
from pathlib import Path

import pytest

from kavi.sandbox.executor import ExecPolicy, IsolationLevel, run_isolated
from kavi.side_effects import SideEffect

from .conftest import RunSnippet


def _leftovers(marker: str) -> list[int]:
    """Processes whose command line still carries ``marker`` (a group kill must leave none)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


def test_infinite_loop_is_killed_by_the_wall_clock(level: IsolationLevel, sandbox: Path) -> None:
    marker = f"kavi-loop-{uuid.uuid4().hex}"
    code = f"import subprocess, sys\nsubprocess.Popen(['sleep', '30', '{marker}'])\nwhile True: pass"
    policy = ExecPolicy(side_effect=SideEffect.SUBPROCESS, timeout_s=1.5, cpu_s=None, executables=("sleep",))
    result = run_isolated([sys.executable, "-c", code], cwd=sandbox, policy=policy)
    assert result.killed_reason == "timeout" and result.timed_out
    assert result.isolation == level
    assert not result.ok
    assert 1.4 < result.duration_s < 5
    assert _leftovers(marker) == [], "the whole process group must die with the child"


def test_a_child_that_closes_its_pipes_still_gets_its_time(level: IsolationLevel, sandbox: Path) -> None:
    code = "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(1.2)\nraise SystemExit(7)"
    result = run_isolated([sys.executable, "-c", code], cwd=sandbox, policy=ExecPolicy(timeout_s=5))
    assert result.returncode == 7 and result.killed_reason is None
    code = "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(30)"
    result = run_isolated([sys.executable, "-c", code], cwd=sandbox, policy=ExecPolicy(timeout_s=1))
    assert result.killed_reason == "timeout" and result.duration_s < 3


def test_cpu_limit_stops_a_busy_loop_before_the_timeout(level: IsolationLevel, sandbox: Path) -> None:
    policy = ExecPolicy(timeout_s=20, cpu_s=1)
    result = run_isolated([sys.executable, "-c", "while True: pass"], cwd=sandbox, policy=policy)
    assert result.killed_reason == "cpu"
    assert not result.timed_out
    assert result.duration_s < 5


@pytest.mark.parametrize("code", ["x = bytearray(8 * 2**30)", "l = []\nwhile True: l.append(bytearray(2**24))"])
def test_memory_hog_fails_with_memory_reason(level: IsolationLevel, sandbox: Path, code: str) -> None:
    policy = ExecPolicy(timeout_s=10, memory_bytes=512 * 2**20)
    result = run_isolated([sys.executable, "-c", code], cwd=sandbox, policy=policy)
    assert result.killed_reason == "memory", result.stderr[-500:]
    assert result.returncode != 0
    assert result.duration_s < 5


def test_output_flood_is_capped_and_stopped(level: IsolationLevel, sandbox: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = "import sys\nchunk = b'x' * 2**20\nfor _ in range(200): sys.stdout.buffer.write(chunk)"
    policy = ExecPolicy(timeout_s=10, max_output_bytes=100_000)
    result = run_isolated([sys.executable, "-c", code], cwd=sandbox, policy=policy)
    assert result.killed_reason == "output"
    assert result.truncated
    assert len(result.stdout) == 100_000
    assert result.duration_s < 5
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50_000, "the parent must stream output, never hold 200 MB of it"


def test_stderr_flood_is_capped_too(level: IsolationLevel, sandbox: Path) -> None:
    code = "import sys\nwhile True: sys.stderr.write('e' * 65536)"
    result = run_isolated([sys.executable, "-c", code], cwd=sandbox, policy=ExecPolicy(max_output_bytes=50_000))
    assert result.killed_reason == "output"
    assert len(result.stderr) == 50_000


def test_fork_bomb_in_a_skill_is_refused_and_stopped(level: IsolationLevel, run_snippet: RunSnippet) -> None:
    code = """
        import os
        while True:
            try:
                os.fork()
            except Exception:
                pass
    """
    result = run_snippet(code, SideEffect.READ_ONLY, timeout_s=2)
    assert result.killed_reason == "timeout"
    assert result.blocked and result.blocked[0]["effect"] == "process"
    assert result.duration_s < 5


@pytest.mark.skipif(os.geteuid() == 0, reason="RLIMIT_NPROC does not bind root (the hook and PID namespace do)")
def test_process_limit_bounds_a_declared_subprocess_skill(level: IsolationLevel, run_snippet: RunSnippet) -> None:
    code = """
        import subprocess
        children = []
        try:
            for _ in range(200):
                children.append(subprocess.Popen(["sleep", "5"]))
        except OSError as exc:
            print("LIMITED", len(children), exc)
        for child in children:
            child.kill()
    """
    result = run_snippet(code, SideEffect.SUBPROCESS, executables=("sleep",), max_procs=20)
    assert "LIMITED" in result.stdout, result.stderr[-500:]


def test_file_size_limit(level: IsolationLevel, sandbox: Path) -> None:
    out = sandbox / "out"
    code = f"open({str(out / 'big')!r}, 'wb').write(b'x' * 2_000_000)"
    policy = ExecPolicy(side_effect=SideEffect.FILE_WRITE, write_roots=(out,), max_file_bytes=1_000_000)
    result = run_isolated([sys.executable, "-c", code], cwd=sandbox, policy=policy)
    assert result.returncode != 0
    assert "File too large" in result.stderr
    assert (out / "big").stat().st_size <= 1_000_000
