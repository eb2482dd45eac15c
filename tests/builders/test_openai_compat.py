"""The openai builder with the real `openai` SDK against a stub OpenAI-compatible server."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from kavi.builders.base import BuildOutcome, BuildPacket, BuildStatus
from kavi.builders.openai_compat import OpenAIBuilder, OpenAIOptions
from kavi.errors import BuilderUnavailableError
from kavi.workspace import Workspace
from tests.builders.conftest import SKILL_SOURCE, TEST_SOURCE
from tests.builders.stub_openai import Call, Reply, Turn, serve
from tests.support import run_cli

STREAM = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])


def _builder(url: str, **options: Any) -> tuple[OpenAIBuilder, list[float]]:
    waits: list[float] = []
    options = {"model": "stub-model", "base_url": url, "retry_backoff_s": 0.01, **options}
    builder = OpenAIBuilder(OpenAIOptions(**options), environ={}, sleep=waits.append)
    return builder, waits


def _events(outcome: BuildOutcome, kind: str) -> list[dict[str, Any]]:
    return [event.data for event in outcome.trace if event.kind == kind]


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@STREAM
def test_good_build_writes_skill_and_test(stream: bool, packet: BuildPacket, sandbox: Path) -> None:
    def scenario(turn: Turn) -> Reply:
        if turn.index == 0:
            return Reply(text="Looking around.", calls=(Call("list_files", {"path": "."}),))
        if turn.index == 1:
            assert "kavi.toml" in turn.tool_messages()[0]["content"]
            return Reply(
                calls=(
                    Call("write_file", {"path": "skills/word_count.py", "content": SKILL_SOURCE}),
                    Call("write_file", {"path": "skills/test_word_count.py", "content": TEST_SOURCE}),
                )
            )
        return Reply(text="Wrote the skill and its test.")

    with serve(scenario) as stub:
        builder, _ = _builder(stub.url, stream=stream)
        outcome = builder.build(packet, sandbox)

    assert outcome.status is BuildStatus.SUCCEEDED, outcome.reason
    assert (sandbox / "skills/word_count.py").read_text() == SKILL_SOURCE
    assert (sandbox / "skills/test_word_count.py").read_text() == TEST_SOURCE
    assert [c["name"] for c in _events(outcome, "tool_call")] == [
        "list_files",
        "write_file",
        "write_file",
    ]
    assert all(not r["is_error"] for r in _events(outcome, "tool_result"))
    assert outcome.usage.input_tokens == 300 and outcome.usage.output_tokens == 60
    assert _events(outcome, "files_changed")[0]["created"] == [
        "skills/test_word_count.py",
        "skills/word_count.py",
    ]
    first = stub.requests[0]
    assert {t["function"]["name"] for t in first["tools"]} == {
        "read_file",
        "list_files",
        "write_file",
    }
    assert "Build packet: word_count" in first["messages"][1]["content"]
    assert bool(first.get("stream")) is stream
    # the tool results went back with the ids of the calls they answer
    third = stub.requests[2]["messages"]
    assert [m["tool_call_id"] for m in third[-2:]] == [c["id"] for c in third[-3]["tool_calls"]]
    json.dumps([asdict(event) for event in outcome.trace])


@STREAM
def test_write_outside_allowlist_is_reported_in_trace(stream: bool, packet: BuildPacket, sandbox: Path) -> None:
    def scenario(turn: Turn) -> Reply:
        if turn.index == 0:
            return Reply(calls=(Call("write_file", {"path": "notes/x.txt", "content": "hi"}),))
        return Reply(text="done")

    with serve(scenario) as stub:
        outcome = _builder(stub.url, stream=stream)[0].build(packet, sandbox)

    assert outcome.status is BuildStatus.SUCCEEDED
    assert "notes/x.txt" in _events(outcome, "tool_call")[0]["arguments"]
    assert _events(outcome, "files_changed")[0]["created"] == ["notes/x.txt"]


@STREAM
@pytest.mark.parametrize("path", ["../outside.txt", "/tmp/kavi-outside.txt", "link/escape.txt"])
def test_escaping_the_sandbox_is_denied_and_fails(
    stream: bool, path: str, packet: BuildPacket, sandbox: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (sandbox / "link").symlink_to(tmp_path / "elsewhere")

    def scenario(turn: Turn) -> Reply:
        if turn.index == 0:
            return Reply(calls=(Call("write_file", {"path": path, "content": "x"}),))
        assert turn.tool_messages()[0]["content"].startswith("denied:")
        return Reply(text="done")

    with serve(scenario) as stub:
        outcome = _builder(stub.url, stream=stream)[0].build(packet, sandbox)

    assert outcome.status is BuildStatus.FAILED
    assert outcome.failure_kind == "GATE_VIOLATION"
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "elsewhere" / "escape.txt").exists()
    assert not Path("/tmp/kavi-outside.txt").exists()


@STREAM
def test_stalled_server_times_out(stream: bool, packet: BuildPacket, sandbox: Path) -> None:
    with serve(lambda turn: Reply(stall=True)) as stub:
        start = time.monotonic()
        outcome = _builder(stub.url, stream=stream, timeout_s=1)[0].build(packet, sandbox)
        elapsed = time.monotonic() - start

    assert outcome.status is BuildStatus.FAILED
    assert outcome.failure_kind == "TIMEOUT"
    assert elapsed < 5


def test_server_down_fails_at_once_saying_where(
    packet: BuildPacket, sandbox: Path, closed_port_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    builder, waits = _builder(closed_port_url, retries=3)
    started = time.monotonic()
    outcome = builder.build(packet, sandbox)

    assert outcome.status is BuildStatus.FAILED
    assert outcome.failure_kind == "BACKEND_UNAVAILABLE"
    assert "cannot reach the server" in (outcome.reason or "")
    assert closed_port_url in (outcome.reason or "")
    assert waits == [] and time.monotonic() - started < 5  # a refused connection is not retried
    assert closed_port_url in capsys.readouterr().err  # it said where it was connecting first


def test_probe_says_configured_but_not_reachable(closed_port_url: str) -> None:
    ok, reason = OpenAIBuilder(OpenAIOptions(model="m", base_url=closed_port_url), environ={}).available()
    assert not ok and "configured" in reason and "not reachable" in reason and closed_port_url in reason
    with serve(lambda turn: Reply(text="unused")) as stub:
        ok, reason = OpenAIBuilder(OpenAIOptions(model="m", base_url=stub.url), environ={}).available()
    assert ok, reason


def test_transient_errors_are_retried(packet: BuildPacket, sandbox: Path) -> None:
    answers = iter([Reply(status=503), Reply(status=429), Reply(text="done")])
    with serve(lambda turn: next(answers)) as stub:
        builder, waits = _builder(stub.url, retries=3)
        outcome = builder.build(packet, sandbox)

    assert outcome.status is BuildStatus.SUCCEEDED, outcome.reason
    assert len(stub.requests) == 3 and len(waits) == 2


def test_persistent_server_errors_are_backend_unavailable(packet: BuildPacket, sandbox: Path) -> None:
    with serve(lambda turn: Reply(status=500)) as stub:
        outcome = _builder(stub.url, retries=2)[0].build(packet, sandbox)
    assert outcome.failure_kind == "BACKEND_UNAVAILABLE" and len(stub.requests) == 3


def test_refused_key_is_backend_unavailable(packet: BuildPacket, sandbox: Path) -> None:
    with serve(lambda turn: Reply(status=401)) as stub:
        outcome = _builder(stub.url)[0].build(packet, sandbox)
    assert outcome.failure_kind == "BACKEND_UNAVAILABLE"
    assert "refused the key" in (outcome.reason or "")
    assert len(stub.requests) == 1  # not retried


@STREAM
@pytest.mark.parametrize("raw", [b"this is not json", b'{"unexpected": true}', b'{"choices": "nope"}', b"[1, 2]"])
def test_garbage_answer_is_a_build_error(stream: bool, raw: bytes, packet: BuildPacket, sandbox: Path) -> None:
    with serve(lambda turn: Reply(raw=raw)) as stub:
        outcome = _builder(stub.url, stream=stream)[0].build(packet, sandbox)
    assert outcome.status is BuildStatus.FAILED
    assert outcome.failure_kind == "BUILD_ERROR", outcome.reason
    assert "not a usable chat completion" in (outcome.reason or "")


def test_malformed_tool_arguments_go_back_to_the_model(packet: BuildPacket, sandbox: Path) -> None:
    def scenario(turn: Turn) -> Reply:
        if turn.index == 0:
            return Reply(calls=(Call("write_file", "{not json"), Call("rm_rf", {"path": "."})))
        return Reply(text="done")

    with serve(scenario) as stub:
        outcome = _builder(stub.url)[0].build(packet, sandbox)

    assert outcome.status is BuildStatus.SUCCEEDED
    results = _events(outcome, "tool_result")
    assert [r["is_error"] for r in results] == [True, True]
    assert "not a JSON object" in results[0]["content"]
    assert "no tool named 'rm_rf'" in results[1]["content"]


def test_turn_and_token_budgets_stop_the_loop(packet: BuildPacket, sandbox: Path) -> None:
    def forever(turn: Turn) -> Reply:
        return Reply(calls=(Call("list_files", {}),))

    with serve(forever) as stub:
        by_turns = _builder(stub.url, max_turns=2)[0].build(packet, sandbox)
        by_tokens = _builder(stub.url, max_tokens=150)[0].build(packet, sandbox)

    assert by_turns.failure_kind == "BUILD_ERROR" and "max_turns=2" in (by_turns.reason or "")
    assert by_tokens.failure_kind == "BUILD_ERROR" and "max_tokens=150" in (by_tokens.reason or "")
    assert by_tokens.usage.input_tokens + by_tokens.usage.output_tokens == 240


def test_api_key_from_the_named_variable(packet: BuildPacket, sandbox: Path) -> None:
    with serve(lambda turn: Reply(text="done")) as stub:
        builder = OpenAIBuilder(
            OpenAIOptions(model="m", base_url=stub.url, api_key_env="LLM_KEY"),
            environ={"LLM_KEY": "sk-local"},
        )
        builder.build(packet, sandbox)
    assert stub.headers[0]["authorization"] == "Bearer sk-local"


def test_unavailable_without_model_or_key(packet: BuildPacket, sandbox: Path) -> None:
    ok, reason = OpenAIBuilder(OpenAIOptions(), environ={}).available()
    assert not ok and "KAVI_OPENAI_MODEL" in reason
    keyless = OpenAIBuilder(OpenAIOptions(model="m", api_key_env="LLM_KEY"), environ={})
    assert keyless.available() == (False, "LLM_KEY is not set: export the server's API key there")
    with pytest.raises(BuilderUnavailableError, match="LLM_KEY"):
        keyless.build(packet, sandbox)


def test_options_from_environment() -> None:
    environ = {
        "KAVI_OPENAI_STREAM": "true",
        "KAVI_OPENAI_MODEL": "qwen",
        "KAVI_OPENAI_MAX_TURNS": "4",
    }
    builder = OpenAIBuilder.from_config({"model": "llama", "base_url": "http://h/v1"}, environ)
    assert builder.options.stream is True and builder.options.model == "qwen"
    assert builder.options.max_turns == 4 and builder.options.base_url == "http://h/v1"


def test_reply_parsing_tolerates_object_arguments_and_rejects_empty() -> None:
    from types import SimpleNamespace

    from kavi.builders.openai_compat import reply_from_completion, reply_from_stream

    function = SimpleNamespace(name="write_file", arguments={"path": "a", "content": "b"})
    message = SimpleNamespace(content=None, tool_calls=[SimpleNamespace(id="c1", function=function)])
    completion = SimpleNamespace(choices=[SimpleNamespace(message=message, finish_reason="tool_calls")], usage=None)
    reply = reply_from_completion(completion)
    assert json.loads(reply.tool_calls[0]["arguments"]) == {"path": "a", "content": "b"}
    with pytest.raises(ValueError, match="no choices"):
        reply_from_completion(SimpleNamespace(choices=[]))
    with pytest.raises(ValueError, match="without a single chunk"):
        reply_from_stream(iter([]))


def test_builders_and_doctor_read_the_workspace_options_and_probe_the_server(
    workspace: Workspace, closed_port_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They create the builder as `build-skill` does ([build.options.openai], KAVI_OPENAI_*), and say
    "configured, not reachable" for a dead server instead of "no model set" or "available"."""
    config = workspace.root / "kavi.toml"
    config.write_text(config.read_text() + f'\n[build.options.openai]\nbase_url = "{closed_port_url}"\n')
    monkeypatch.setenv("KAVI_OPENAI_MODEL", "qwen-from-env")

    def openai_row(*args: str) -> dict[str, Any]:
        result = run_cli(*args, "--json")
        rows = result.json()["builders"] if args[0] == "builders" else result.json()["checks"]
        return next(r for r in rows if r["name"] in ("openai", "builder openai"))

    for command in ("builders", "doctor"):
        row = openai_row(command)
        text = row["detail"]
        assert "qwen-from-env" in text and closed_port_url in text and "not reachable" in text, (command, row)
        assert row.get("available", row.get("status") == "ok") is False
    with serve(lambda turn: Reply(text="unused")) as stub:
        config.write_text(config.read_text().replace(closed_port_url, stub.url))
        for command in ("builders", "doctor"):
            row = openai_row(command)
            assert row.get("available", row.get("status") == "ok") is True, row
        assert len(stub.headers) >= 2 and not stub.requests  # each probed with a GET; no completion was asked


def test_ask_is_one_completion_with_no_tools(closed_port_url: str) -> None:
    """The planner's call: the system and user texts go as they are, no tool is offered, the text comes back."""

    def scenario(turn: Turn) -> Reply:
        return Reply(text='{"skills": []}')

    with serve(scenario) as stub:
        builder, _ = _builder(stub.url)
        answer = builder.ask("You plan.", "Goal: count words")
    assert answer.text == '{"skills": []}' and answer.cost_usd is None
    [asked] = stub.requests
    assert asked["messages"] == [
        {"role": "system", "content": "You plan."},
        {"role": "user", "content": "Goal: count words"},
    ]
    assert "tools" not in asked
    with pytest.raises(BuilderUnavailableError, match="from stub-model at"):
        _builder(closed_port_url)[0].ask("You plan.", "Goal")
