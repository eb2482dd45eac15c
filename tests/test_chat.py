"""`kavi chat` against a scripted OpenAI-compatible stub on 127.0.0.1, through the real `openai` SDK: the tools
are the TRUSTED skills, every call is a governed run under the chat's execution, and a call that is not
READ_ONLY waits for a person at a real terminal (a pty): declined once (nothing runs), accepted once."""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.builders.stub_openai import Call, Reply, Turn, serve
from tests.stages.trees import adopt_repository_skills, ledger_rows
from tests.support import run_cli

KAVI = str(Path(sys.executable).parent / "kavi")

SCRIPT = {
    0: Reply(calls=(Call("word_count", {"text": "a b c"}),)),
    1: Reply(calls=(Call("write_note", {"title": "first", "body": "one"}),)),
    2: Reply(text="You declined the note."),
    3: Reply(calls=(Call("write_note", {"title": "second", "body": "two"}),)),
    4: Reply(text="Saved the note."),
}


def _scripted(turn: Turn) -> Reply:
    return SCRIPT[turn.index]


@pytest.fixture
def adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = adopt_repository_skills(tmp_path / "ws")
    monkeypatch.setenv("KAVI_WORKSPACE", str(root))
    return root


def _read_until(master: int, marker: str, timeout: float = 90) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} in: {seen.decode(errors='replace')}"
        if select.select([master], [], [], remaining)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"the terminal closed before {marker!r}: {seen.decode(errors='replace')}"
            seen += chunk
    return seen.decode(errors="replace")


def test_a_chat_asks_before_a_call_that_changes_something(adopted: Path) -> None:
    with serve(_scripted) as stub:
        env = {**os.environ, "KAVI_OPENAI_BASE_URL": stub.url, "KAVI_OPENAI_MODEL": "stub-model"}
        master, terminal = os.openpty()
        chat = subprocess.Popen([KAVI, "chat"], stdin=terminal, stdout=terminal, stderr=terminal, env=env)
        os.close(terminal)
        try:
            opening = _read_until(master, "you> ")
            os.write(master, b"count a b c, then save a note\n")
            first = _read_until(master, "run write_note? [y/N] ")
            os.write(master, b"n\n")
            declined = _read_until(master, "you> ")
            os.write(master, b"then save the other one\n")
            _read_until(master, "run write_note? [y/N] ")
            os.write(master, b"y\n")
            accepted = _read_until(master, "you> ")
            os.write(master, b"/exit\n")
            closing = _read_until(master, "show-execution")
            assert chat.wait(timeout=30) == 0, closing
        finally:
            if chat.poll() is None:
                chat.kill()
            os.close(master)

    assert "word_count, write_note" in opening
    assert 'word_count v1 -> {"count": 3}' in first
    assert "write_note v1 is FILE_WRITE: it may write under notes" in first
    assert "declined: write_note did not run" in declined and "model> You declined the note." in declined
    assert "model> Saved the note." in accepted
    assert not (adopted / "notes" / "first.md").exists()
    assert (adopted / "notes" / "second.md").read_text(encoding="utf-8").strip().endswith("two")

    tools = {tool["function"]["name"]: tool["function"] for tool in stub.requests[0]["tools"]}
    assert tools["word_count"]["parameters"]["properties"] == {"text": {"type": "string"}}
    assert stub.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_1_0", "content": '{"count": 3}'}
    assert stub.requests[2]["messages"][-1]["content"] == "the person declined this call: nothing ran"
    assert json.loads(stub.requests[4]["messages"][-1]["content"]) == {"path": "notes/second.md"}

    [(chat_id, status)] = ledger_rows(adopted, "SELECT id, status FROM execution_nodes WHERE kind = 'chat'")
    assert status == "OK"
    tree = run_cli("show-execution", chat_id, "--json").json()["execution"]
    assert [(child["kind"], child["name"], child["status"]) for child in tree["children"]] == [
        ("skill", "word_count", "OK"),
        ("declined", "write_note", "DECLINED"),
        ("skill", "write_note", "OK"),
    ]
    assert tree["children"][1]["input"]["value"] == {"title": "first", "body": "one"}
    assert tree["output"]["value"] == {"turns": 2, "calls": 3}
    decisions = [
        (kind, json.loads(payload)["confirmed_by"], json.loads(payload)["chat_id"])
        for kind, payload in ledger_rows(adopted, "SELECT kind, payload FROM events WHERE kind LIKE 'chat.%'")
    ]
    assert decisions == [("chat.call.declined", None, chat_id), ("chat.call.confirmed", "person", chat_id)]
    assert run_cli("audit").code == 0


def test_yes_lets_calls_through_and_the_ledger_says_so(adopted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = {0: Reply(calls=(Call("write_note", {"title": "quick", "body": "no questions"}),)), 1: Reply(text="Done.")}
    with serve(lambda turn: script[turn.index]) as stub:
        monkeypatch.setenv("KAVI_OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("KAVI_OPENAI_MODEL", "stub-model")
        monkeypatch.setattr(sys, "stdin", io.StringIO("write it\n"))
        chatted = run_cli("chat", "--yes")
    assert chatted.code == 0, chatted.stdout + chatted.stderr
    assert "[y/N]" not in chatted.stdout and "model> Done." in chatted.stdout
    assert (adopted / "notes" / "quick.md").is_file()
    [(payload,)] = ledger_rows(adopted, "SELECT payload FROM events WHERE kind = 'chat.call.confirmed'")
    assert json.loads(payload)["confirmed_by"] == "--yes" and json.loads(payload)["side_effect"] == "FILE_WRITE"
    [(chat_input,)] = ledger_rows(adopted, "SELECT input_json FROM execution_nodes WHERE kind = 'chat'")
    assert json.loads(chat_input)["assume_yes"] is True


def test_a_model_server_that_is_not_there_is_named_before_anything_is_recorded(
    adopted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVI_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("KAVI_OPENAI_MODEL", "stub-model")
    refused = run_cli("chat")
    assert refused.code == 1 and "not reachable" in refused.stderr and "KAVI_OPENAI_BASE_URL" in refused.stderr
    assert ledger_rows(adopted, "SELECT COUNT(*) FROM execution_nodes") == [(0,)]


def test_a_model_server_that_fails_mid_chat_ends_it_failed(adopted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(lambda _turn: Reply(status=500)) as stub:
        monkeypatch.setenv("KAVI_OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("KAVI_OPENAI_MODEL", "stub-model")
        monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
        failed = run_cli("chat")
    assert failed.code == 1 and "InternalServerError" in failed.stderr, failed.stderr
    assert ledger_rows(adopted, "SELECT status FROM execution_nodes WHERE kind = 'chat'") == [("FAILED",)]


def test_a_chain_asks_first_unless_every_member_is_read_only() -> None:
    """A chain declares no class of its own: it may do what any member may, so it asks unless all are READ_ONLY."""
    from kavi.chat import _tool_of
    from kavi.server.tools import ToolEntry

    entry = ToolEntry("c", 1, "p_1", "0" * 64, {"name": "c", "description": "d", "inputSchema": {}}, "0" * 64)
    steps = [{"skill": "word_count", "version": 1}, {"skill": "save_text", "version": 2}]
    writes = _tool_of(entry, {"kind": "chain", "side_effects": ["READ_ONLY", "FILE_WRITE"], "steps": steps})
    assert (writes.read_only, writes.side_effect) == (False, "READ_ONLY+FILE_WRITE")
    assert "word_count v1, save_text v2" in writes.grants
    reads = _tool_of(entry, {"kind": "chain", "side_effects": ["READ_ONLY"], "steps": steps[:1]})
    assert reads.read_only
    skill = _tool_of(entry, {"side_effect": "FILE_WRITE", "write_roots": ["notes"]})
    assert (skill.read_only, skill.grants) == (False, "write under notes")
