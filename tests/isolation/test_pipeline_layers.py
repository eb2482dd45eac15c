"""The kernel layers through the real pipeline: a READ_ONLY candidate's test that gets past the hook
(a subinterpreter has none) and tries a remount and host writes changes nothing on the host during
`verify-skill`; every gate, verification and run records the layers it had."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.sandbox import bwrap
from kavi.workspace import Workspace
from tests.support import WORD_COUNT_ARGS, recording, run_cli

ATTACK_TEST = '''
import word_count


def test_counts() -> None:
    assert word_count.WordCount.name == "word_count"


def test_escape() -> None:
    payload = {payload!r}
    try:
        interpreters = __import__("_xxsub" + "interpreters")
        interp = interpreters.create()
        interpreters.run_string(interp, payload)
    except Exception:
        pass
    try:
        exec(payload)
    except Exception:
        pass
'''

PAYLOAD = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.umount2(b"/tmp", 2)
libc.mount(b"none", b"/", None, 32 | 4096, None)
os.system("umount -l /tmp; mount -o remount,rw,bind /; touch {marker}; echo owned > {victim}")
folder = os.open({folder!r}, os.O_RDONLY)
fd = os.open("marker-dirfd", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=folder)
os.write(fd, b"owned")
"""


@pytest.mark.parametrize("level", ["full", "fallback"])
def test_verify_skill_of_a_hostile_read_only_candidate_leaves_the_host_alone(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    if level == "full" and not bwrap.probe_bwrap().works:
        pytest.skip("bubblewrap does not work on this machine")
    monkeypatch.setenv("KAVI_ISOLATION", level)
    outside = tmp_path / "host"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("original")
    marker = outside / "MARKER"
    payload = PAYLOAD.format(marker=marker, victim=victim, folder=str(outside))
    rec = recording("word_count", tmp_path)
    (rec / "skills" / "test_word_count.py").write_text(ATTACK_TEST.format(payload=payload))
    proposal = run_cli("propose-skill", *WORD_COUNT_ARGS, "--json").json()["proposal_id"]
    run_cli("build-skill", proposal, "--replay-from", str(rec))
    verified = run_cli("verify-skill", proposal, "--json")
    assert sorted(path.name for path in outside.iterdir()) == ["victim.txt"]
    assert victim.read_text() == "original"
    gates = {gate["gate"]: gate for gate in verified.json()["gates"]}
    pytest_layers = set(gates["pytest"]["layers"])
    assert {"caps", "seccomp", "landlock", "rlimits"} <= pytest_layers
    if level == "full":
        assert {"userns", "pidns", "netns"} <= pytest_layers
    with sqlite3.connect(workspace.root / ".kavi" / "ledger.db") as conn:
        recorded = dict(conn.execute("SELECT gate, layers FROM verification_gates").fetchall())
        (overall,) = conn.execute("SELECT layers FROM verifications").fetchone()
    assert set(recorded["pytest"].split(",")) == pytest_layers
    assert set(overall.split(",")) <= pytest_layers and "landlock" in overall


def test_run_skill_records_the_layers_of_its_child(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    proposal = run_cli("propose-skill", *WORD_COUNT_ARGS, "--json").json()["proposal_id"]
    run_cli("build-skill", proposal, "--replay-from", str(recording_of("word_count")))
    assert run_cli("verify-skill", proposal).code == 0
    assert run_cli("promote-skill", proposal).code == 0
    monkeypatch.setenv("KAVI_ISOLATION", "fallback")
    ran = run_cli("run-skill", "word_count", "--json", '{"text": "a b"}').json()
    assert ran["output"] == {"count": 2}
    assert {"caps", "seccomp", "landlock", "rlimits", "hook"} <= set(ran["layers"])
    with sqlite3.connect(workspace.root / ".kavi" / "ledger.db") as conn:
        (layers,) = conn.execute("SELECT layers FROM executions").fetchone()
        (event,) = conn.execute("SELECT payload FROM events WHERE kind = 'run.finished'").fetchone()
    assert layers.split(",") == ran["layers"]
    assert json.loads(event)["layers"] == layers
