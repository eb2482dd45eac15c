"""Two workers in separate processes and separate folders (nothing shared but the PostgreSQL ledger) verify
20 proposals queued at once; one is killed with SIGKILL mid-job and its job completes on the other."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlmodel import col, select

from kavi.ledger.chain import GENESIS, event_hash
from kavi.ledger.jobs import job_state, progress_since
from kavi.ledger.models import Artifact, Event, Proposal, Verification
from kavi.stages.common import Forge
from kavi.workspace import Workspace
from tests.support import run_cli
from tests.workers.conftest import Workers, propose_and_build, shared_ledger_workspace

PROPOSALS = 20


def _wait_until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _lines(forge: Forge, job_id: int) -> list:  # type: ignore[type-arg]
    return progress_since(forge.ledger.engine, job_id, 0)


def _chain_is_intact(forge: Forge) -> int:
    previous, expected = GENESIS, 1
    with forge.ledger.reading() as session:
        for event in session.exec(select(Event).order_by(col(Event.id))):
            assert event.id == expected, f"event #{expected} is missing"
            assert event.prev_hash == previous
            recomputed = event_hash(
                prev_hash=event.prev_hash,
                event_id=event.id,
                ts=event.ts,
                kind=event.kind,
                proposal_id=event.proposal_id,
                build_id=event.build_id,
                payload=event.payload,
            )
            assert recomputed == event.hash, f"event #{event.id} does not match its hash"
            previous, expected = event.hash, expected + 1
    return expected - 1


@pytest.mark.slow
def test_two_workers_verify_twenty_queued_proposals_and_survive_a_kill(
    tmp_path: Path, postgres_url: str, workers: Workers
) -> None:
    requester = shared_ledger_workspace(tmp_path / "requester", postgres_url)
    first = shared_ledger_workspace(tmp_path / "machine-1", postgres_url)
    second = shared_ledger_workspace(tmp_path / "machine-2", postgres_url)
    proposals = [propose_and_build(requester, number) for number in range(PROPOSALS)]

    jobs: dict[int, str] = {}
    for proposal in proposals:
        queued = run_cli("verify-skill", proposal, "--queue", "--workspace", str(requester.root), "--json")
        assert queued.code == 0, queued.stdout + queued.stderr
        jobs[queued.json()["job_id"]] = proposal
    with Forge.opened(requester) as forge:
        assert {job_state(forge.ledger.engine, job).status for job in jobs} == {"todo"}  # queued, none taken yet

        doomed = workers.start("w1", first)
        survivor = workers.start("w2", second)

        def doomed_is_mid_gate() -> bool:
            for job in jobs:
                lines = [line for line in _lines(forge, job) if line.worker == "w1"]
                if any(line.kind == "gate" for line in lines) and not any(line.kind == "result" for line in lines):
                    return True
            return False

        _wait_until(doomed_is_mid_gate, 120, "w1 to be in the middle of a verification")
        doomed.kill_hard()
        interrupted = [
            job
            for job in jobs
            if any(line.worker == "w1" and line.kind == "started" for line in _lines(forge, job))
            and not any(line.worker == "w1" and line.kind == "result" for line in _lines(forge, job))
        ]
        assert interrupted, "w1 was killed between jobs, not in the middle of one"

        _wait_until(
            lambda: all(job_state(forge.ledger.engine, job).status == "succeeded" for job in jobs),  # type: ignore[union-attr]
            300,
            "every job to succeed",
        )
        assert survivor.process.poll() is None, "the surviving worker is still running"
        for job in interrupted:
            lines = _lines(forge, job)
            result = [line for line in lines if line.kind == "result"]
            assert [line.worker for line in result] == ["w2"], "the interrupted job completed on the other worker"
            assert [line.worker for line in lines if line.kind == "stalled"] == ["w2"]  # w2's sweep gave it back
            assert json.loads(result[0].message)["status"] == "PASSED"

        with forge.ledger.reading() as session:
            verifications = list(session.exec(select(Verification)))
            statuses = {p.id: p.status for p in session.exec(select(Proposal))}
            finished = [
                json.loads(e.payload) for e in session.exec(select(Event).where(Event.kind == "verification.finished"))
            ]
            requested = list(session.exec(select(Event).where(Event.kind == "verification.requested")))
            artifacts = list(session.exec(select(Artifact)))
        # Exactly one verification per proposal (the killed attempt committed nothing), each PASSED.
        assert sorted(v.proposal_id for v in verifications) == sorted(proposals)
        assert {v.status for v in verifications} == {"PASSED"}
        assert set(statuses.values()) == {"VERIFIED"}
        assert {json.loads(e.payload)["job_id"] for e in requested} == set(jobs)
        # Each result records the worker that produced it, its host, its job, and the isolation layers.
        assert sorted(f["worker"]["job_id"] for f in finished) == sorted(jobs)
        assert {f["worker"]["name"] for f in finished} <= {"w1", "w2"}
        assert all(f["worker"]["host"] and f["layers"] for f in finished)
        assert {f["worker"]["name"] for f in finished if f["worker"]["job_id"] in interrupted} == {"w2"}
        assert _chain_is_intact(forge) > 3 * PROPOSALS
        # Every artifact's bytes are in the database, and they match their hash.
        for artifact in artifacts:
            assert forge.store.fetch is not None
            data = forge.store.fetch(artifact.sha256)
            assert data is not None and len(data) == artifact.size
    # The workers read the candidates from the database by hash (nothing shared but it) and cached them.
    _assert_fetched(first, second, {v.candidate_sha256 for v in verifications})


def _assert_fetched(first: Workspace, second: Workspace, candidates: set[str]) -> None:
    cached = {path.name for ws in (first, second) for path in ws.artifacts_dir.rglob("*") if path.is_file()}
    assert candidates <= cached
