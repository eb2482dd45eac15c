"""The crash hook: silent without the harness, logs every point with KAVI_CRASH_LOG, and SIGKILLs at the
requested hit of a label."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

CODE = "from kavi.crash import crashpoint\nfor label in ['a', 'b', 'a', 'c']:\n    crashpoint(label)\nprint('done')\n"


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAVI_CRASH")}
    return subprocess.run(
        [sys.executable, "-c", CODE], env={**clean, **env}, capture_output=True, text=True, check=False
    )


def test_unarmed_crash_points_do_nothing() -> None:
    result = _run()
    assert result.returncode == 0 and result.stdout == "done\n"


def test_the_log_lists_every_point_in_order(tmp_path: Path) -> None:
    log = tmp_path / "points"
    assert _run(KAVI_CRASH_LOG=str(log)).returncode == 0
    assert log.read_text().split() == ["a", "b", "a", "c"]


def test_the_nth_hit_of_a_label_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "points"
    result = _run(KAVI_CRASH_AT="a:2", KAVI_CRASH_LOG=str(log))
    assert result.returncode == -signal.SIGKILL and result.stdout == ""
    assert log.read_text().split() == ["a", "b", "a"]
    assert _run(KAVI_CRASH_AT="a:3").returncode == 0
    assert _run(KAVI_CRASH_AT="nonsense").returncode == 0
