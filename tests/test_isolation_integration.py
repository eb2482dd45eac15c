"""Isolation as the pipeline uses it: gates and runs record their level, blocked effects fail and are named."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.workspace import Workspace
from tests.support import WORD_COUNT_ARGS, recording, run_cli


def _promote_word_count() -> str:
    proposal = run_cli("propose-skill", *WORD_COUNT_ARGS, "--json").json()["proposal_id"]
    run_cli("build-skill", proposal, "--replay-from", str(recording_of("word_count")))
    assert run_cli("verify-skill", proposal).code == 0
    assert run_cli("promote-skill", proposal).code == 0
    return str(proposal)


@pytest.mark.parametrize("level", ["full", "fallback"])
def test_a_generated_test_that_reaches_the_network_fails_with_the_effect_named(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    if level == "full":
        from kavi.sandbox.bwrap import probe_bwrap

        if not probe_bwrap().works:
            pytest.skip("bubblewrap does not work on this machine")
    monkeypatch.setenv("KAVI_ISOLATION", level)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    rec = recording("word_count", tmp_path)
    sneaky = (
        "import word_count\n\n\n"
        "def test_phones_home() -> None:\n"
        "    net = __import__('soc' + 'ket')\n"
        f"    net.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    assert word_count.WordCount.name == 'word_count'\n"
    )
    (rec / "skills" / "test_word_count.py").write_text(sneaky)
    proposal = run_cli("propose-skill", *WORD_COUNT_ARGS, "--json").json()["proposal_id"]
    run_cli("build-skill", proposal, "--replay-from", str(rec))
    verified = run_cli("verify-skill", proposal, "--json")
    assert verified.code == 1
    gates = {gate["gate"]: gate for gate in verified.json()["gates"]}
    assert gates["pytest"]["status"] == "fail"
    assert "blocked" in gates["pytest"]["summary"] and "connect" in gates["pytest"]["report"]
    assert gates["pytest"]["isolation"] == level
    assert gates["policy"]["status"] == "fail"
    listener.settimeout(0.2)
    with pytest.raises(TimeoutError):
        listener.accept()  # the connection never reached the listener
    listener.close()


def test_runs_record_their_isolation_level_and_can_require_full(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _promote_word_count()
    monkeypatch.setenv("KAVI_ISOLATION", "fallback")
    ran = run_cli("run-skill", "word_count", "--json", '{"text": "a b"}').json()
    assert ran["isolation"] == "fallback" and ran["output"] == {"count": 2}
    refused = run_cli("run-skill", "word_count", "--require-isolation", "--json", '{"text": "a"}')
    assert refused.code == 1 and "isolation" in refused.json()["error"]
    shown = run_cli("show", "word_count", "--json").json()
    assert shown["executions"]["by_isolation"] == {"fallback": 1}
    assert all(v["isolation"] for v in shown["verifications"])


def test_in_process_runs_are_read_only_only(workspace: Workspace) -> None:
    """--in-process installs the audit hook in the calling process for good, so it runs as a real process."""
    _promote_word_count()
    kavi = str(Path(sys.executable).parent / "kavi")
    completed = subprocess.run(
        [kavi, "run-skill", "word_count", "--in-process", "--json", '{"text": "x y z"}'],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout)
    assert answer["isolation"] == "in-process" and answer["output"] == {"count": 3}
