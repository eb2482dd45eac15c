"""The ledger as a live event stream: SSE ids are ledger sequences and Last-Event-ID resumes without loss."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx

from tests.server.conftest import Served


def _sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse an SSE byte stream into events (comments, the keep-alives, are skipped)."""
    event: dict[str, Any] = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")


def _ledger(served: Served) -> list[tuple[int, str]]:
    with sqlite3.connect(served.workspace.root / ".kavi" / "ledger.db") as conn:
        return list(conn.execute("SELECT id, kind FROM events ORDER BY id"))


def _read_until(served: Served, headers: dict[str, str], params: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    with (
        served.client(**headers) as client,
        client.stream("GET", "/api/v1/events/stream", params=params, timeout=30) as stream,
    ):
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        for event in _sse(stream.iter_lines()):
            seen.append(event)
            if event["event"] == kind:
                return seen
    raise AssertionError(f"the stream ended before a {kind} event: {seen}")


def test_a_run_through_the_api_appears_on_the_stream_with_its_ledger_sequence(served: Served) -> None:
    with served.client() as client:
        before = client.get("/api/v1/events", params={"after": 0, "limit": 500}).json()["next_after"]
        ran = client.post("/api/v1/skills/word_count/run", json={"text": "live stream"}).json()
    seen = _read_until(served, {}, {"after": before}, "run.finished")
    finished = seen[-1]
    data = json.loads(finished["data"])
    assert data["payload"]["execution_id"] == ran["execution_id"]
    assert (int(finished["id"]), "run.finished") in _ledger(served)
    assert int(finished["id"]) == data["seq"]


def test_last_event_id_resumes_without_loss(served: Served) -> None:
    with served.client() as client:
        for text in ("one", "two", "three"):
            assert client.post("/api/v1/skills/word_count/run", json={"text": text}).status_code == 200
    ledger = _ledger(served)
    resume_from = ledger[-6][0]  # three runs ago (each run is one event; leave a margin of earlier events)
    expected = [(seq, kind) for seq, kind in ledger if seq > resume_from]
    got: list[tuple[int, str]] = []
    with (
        served.client(**{"Last-Event-ID": str(resume_from)}) as client,
        client.stream("GET", "/api/v1/events/stream", timeout=30) as stream,
    ):
        for event in _sse(stream.iter_lines()):
            got.append((int(event["id"]), event["event"]))
            if len(got) == len(expected):
                break
    assert got == expected


def test_events_page_by_sequence(served: Served) -> None:
    with served.client() as client:
        first = client.get("/api/v1/events", params={"after": 0, "limit": 2}).json()
        second = client.get("/api/v1/events", params={"after": first["next_after"], "limit": 2}).json()
    assert [e["seq"] for e in first["events"]] == [1, 2]
    assert [e["seq"] for e in second["events"]] == [3, 4]
    assert first["events"][0]["kind"] == "proposal.proposed"


def test_an_idle_stream_gets_comment_keep_alives(served: Served) -> None:
    """In-process uvicorn on loopback with a short keep-alive, on the module's workspace."""
    import threading

    import uvicorn

    from kavi.server.app import create_app
    from kavi.server.runner import ColdRunner
    from kavi.server.security import Access
    from kavi.stages.common import Forge
    from tests.server.conftest import free_port

    port = free_port()
    with Forge.opened(served.workspace) as forge:
        access = Access.resolve("127.0.0.1", None, None, "me")
        app = create_app(forge, ColdRunner(forge.workspace), access, keepalive_s=0.2)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.05)
            lines: list[str] = []
            with (
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
                client.stream("GET", "/api/v1/events/stream") as stream,
            ):
                for line in stream.iter_lines():
                    lines.append(line)
                    if sum(1 for seen in lines if seen.startswith(":")) >= 2:
                        break
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    assert all(line.startswith(":") or not line for line in lines), lines  # no event: only keep-alives


def test_a_verification_job_streams_each_gate_starting_and_finishing_before_its_record(served: Served) -> None:
    """Progress (not a record, so no id) arrives while the job runs: every gate starts and finishes on the
    stream, and the ledger's verification.finished follows with the same gates."""
    from kavi.demo import DEMO_SKILLS, recording_of

    note = next(skill for skill in DEMO_SKILLS if skill.name == "write_note")
    with served.client() as client:
        proposal = client.post(
            "/api/v1/proposals",
            json={
                "name": note.name,
                "description": note.description,
                "side_effect": note.side_effect,
                "io_schema": note.io_schema,
                "examples": note.examples,
                "write_roots": list(note.write_roots),
            },
        ).json()["proposal_id"]
        build = client.post(
            f"/api/v1/proposals/{proposal}/builds", json={"replay_from": str(recording_of("write_note"))}
        ).json()
        deadline = time.monotonic() + 60
        while (state := client.get(f"/api/v1/jobs/{build['id']}").json())["status"] == "running":
            assert time.monotonic() < deadline, "the build did not finish"
            time.sleep(0.2)
        assert state["status"] == "succeeded", state
    seen: list[dict[str, Any]] = []
    with (
        served.client() as watcher,
        watcher.stream("GET", "/api/v1/events/stream", timeout=120) as stream,
        served.client() as client,
    ):
        job = client.post(f"/api/v1/proposals/{proposal}/verifications").json()
        for event in _sse(stream.iter_lines()):
            seen.append(event)
            if event["event"] == "verification.finished":
                break
    progress = [json.loads(e["data"]) for e in seen if e["event"] == "progress"]
    assert progress and all("id" not in e for e in seen if e["event"] == "progress")
    assert {item["job_id"] for item in progress} == {job["id"]}
    started = {item["data"]["gate"] for item in progress if item["kind"] == "gate.started"}
    finished = {item["data"]["gate"]: item["data"]["status"] for item in progress if item["kind"] == "gate.finished"}
    assert started == set(finished) >= {"ruff", "mypy", "policy", "pytest", "examples"}
    assert set(finished.values()) == {"pass"}
    record = json.loads(seen[-1]["data"])
    assert seen.index(next(e for e in seen if e["event"] == "progress")) < len(seen) - 1
    assert record["proposal_id"] == proposal
