"""Ctrl-C during verify-skill: every gate's child stops at once, exit 130 with one message, ledger unchanged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.workspace import Workspace
from tests.support import WORD_COUNT_ARGS, run_cli

SLEEPING_TEST = (
    "import time\n\n"
    "from word_count import WordCount, WordCountInput\n\n\n"
    "def test_takes_its_time() -> None:\n"
    "    time.sleep(30)\n"
    "    assert WordCount().execute(WordCountInput(text='a b')).count == 2\n"
)


def _descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` now, with its command line (from /proc, so it sees bubblewrap's too)."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = commands.get(pid, "")
                frontier.append(pid)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def built(workspace: Workspace, tmp_path: Path) -> Workspace:
    recording = tmp_path / "recording"
    (recording / "skills").mkdir(parents=True)
    shipped = recording_of("word_count") / "skills" / "word_count.py"
    (recording / "skills" / "word_count.py").write_bytes(shipped.read_bytes())
    (recording / "skills" / "test_word_count.py").write_text(SLEEPING_TEST)
    assert run_cli("propose-skill", *WORD_COUNT_ARGS).code == 0
    assert run_cli("build-skill", "word_count", "--replay-from", str(recording)).code == 0
    return workspace


@pytest.mark.parametrize("json_flag", [True, False], ids=["json", "text"])
def test_sigint_stops_every_gate_at_once_and_records_nothing(built: Workspace, json_flag: bool) -> None:
    argv = [sys.executable, "-m", "kavi", "verify-skill", "word_count", *(["--json"] if json_flag else [])]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    seen: dict[int, str] = {}
    deadline = time.monotonic() + 60
    while not any("pytest" in command for command in seen.values()):
        assert process.poll() is None and time.monotonic() < deadline, "the tests gate never started"
        seen.update(_descendants(process.pid))
        time.sleep(0.05)
    time.sleep(0.3)  # let the other gates start too
    seen.update(_descendants(process.pid))
    signalled = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    elapsed = time.monotonic() - signalled

    assert process.returncode == 130, stderr
    assert elapsed < 1.0, f"exit took {elapsed:.2f} s after SIGINT"
    if json_flag:
        assert stdout.decode().strip() == (
            '{"ok": false, "error": "interrupted", "error_type": "KeyboardInterrupt", "exit_code": 130}'
        )
    else:
        assert stdout == b""
        assert stderr.decode().strip() == "error: interrupted"
    time.sleep(0.2)  # a killed group's members vanish within moments, never after 30 s
    assert [command for pid, command in seen.items() if _alive(pid)] == []
    shown = run_cli("show", "word_count", "--json").json()
    assert shown["verifications"] == []
    assert shown["proposal"]["status"] == "BUILT"
