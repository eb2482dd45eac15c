"""The queue's edges: SQLite refuses it with a hint; what a worker takes on a machine without a GPU or without
bubblewrap; the artifact folder as a hash-checked cache of the database; `kavi wait` on a refused job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import col, select

from kavi.artifacts import ArtifactStore, sha256_bytes
from kavi.errors import IntegrityError, NotFoundError, UsageError
from kavi.ledger.jobs import job_state, progress_since
from kavi.ledger.models import Event
from kavi.stages.common import Forge
from kavi.workers.host import Host
from kavi.workers.runner import check_timing, plan_worker
from kavi.workspace import Workspace
from tests.support import WORD_COUNT_ARGS, run_cli
from tests.workers.conftest import Workers, propose_and_build, shared_ledger_workspace, word_count_recording


@pytest.mark.parametrize(
    "command",
    [
        ("verify-skill", "word_count", "--queue"),
        ("build-skill", "word_count", "--queue"),
        ("forge", "word_count", "--queue"),
        ("wait", "1"),
        ("worker", "--queues", "gates"),
    ],
)
def test_a_sqlite_ledger_has_no_queue_and_says_what_to_do(workspace: Workspace, command: tuple[str, ...]) -> None:
    result = run_cli(*command, "--json") if command[0] != "worker" else run_cli(*command)
    assert result.code == 2
    said = result.stdout + result.stderr
    assert "needs a shared PostgreSQL ledger" in said
    assert "[ledger] url" in said


def _host(*, gpus: tuple[str, ...] = (), full_isolation: bool = True) -> Host:
    return Host("w", "here", 1, gpus, full_isolation, "bubblewrap 0.8" if full_isolation else "bwrap is not on PATH")


def test_a_worker_without_a_gpu_says_so_and_leaves_the_gpu_queue_to_others() -> None:
    plan = plan_worker(["gates", "gpu"], _host())
    assert plan.queues == ("gates",)
    assert plan.gpu_children == ()
    assert any("no GPU here" in note for note in plan.notes)
    with pytest.raises(UsageError, match="would take no jobs"):
        plan_worker(["gpu"], _host())


def test_a_gpu_worker_runs_one_child_per_gpu() -> None:
    plan = plan_worker(["builds", "gpu"], _host(gpus=("0", "1")))
    assert plan.queues == ("builds",)
    assert plan.gpu_children == ("0", "1")


def test_unknown_queues_are_refused_with_the_known_ones() -> None:
    with pytest.raises(UsageError) as refused:
        plan_worker(["gate"], _host())
    assert "builds, gates, gpu" in str(refused.value.hint)


@pytest.mark.parametrize(("heartbeat", "stalled_after"), [(10, 15), (0, 30), (1, 1)])
def test_a_live_worker_can_never_look_stalled(heartbeat: float, stalled_after: float) -> None:
    with pytest.raises(UsageError, match="at least twice"):
        check_timing(heartbeat, stalled_after)
    check_timing(10, 30)


def test_a_worker_without_bubblewrap_says_it_leaves_isolated_jobs() -> None:
    plan = plan_worker(["gates"], _host(full_isolation=False))
    assert any("no full isolation here" in note for note in plan.notes)


def test_the_artifact_folder_is_a_cache_checked_by_hash(tmp_path: Path) -> None:
    data = b"candidate bytes"
    digest = sha256_bytes(data)
    held = {digest: data, "0" * 64: b"not what the name says"}
    store = ArtifactStore(tmp_path / "cache", fetch=held.get)
    assert store.get(digest) == data
    assert store.path_of(digest).read_bytes() == data  # kept, so the next read is local
    with pytest.raises(IntegrityError, match="does not match its hash"):
        store.get("0" * 64)
    assert not store.path_of("0" * 64).exists()
    with pytest.raises(NotFoundError):
        store.get("1" * 64)


def test_a_worker_on_another_machine_reads_a_proposal_by_hash(tmp_path: Path, postgres_url: str) -> None:
    """Nothing shared but the database: the second workspace's folder never held the spec."""
    here = shared_ledger_workspace(tmp_path / "here", postgres_url)
    there = shared_ledger_workspace(tmp_path / "there", postgres_url)
    proposal = propose_and_build(here, 1)
    with Forge.opened(there) as forge:
        shown = run_cli("show", proposal, "--workspace", str(there.root), "--json")
        assert shown.code == 0, shown.stdout
        assert not list(there.artifacts_dir.rglob("*.tmp"))
        with forge.ledger.reading() as session:
            from kavi.stages.common import get_proposal

            spec = forge.spec_of(get_proposal(session, proposal))
        assert spec.name == "word_count_1"
    assert forge.store.path_of(sha256_bytes(spec.canonical_json())).is_file()


@pytest.mark.slow
def test_a_worker_without_bubblewrap_refuses_a_job_that_requires_full_isolation(
    tmp_path: Path, postgres_url: str, workers: Workers
) -> None:
    requester = shared_ledger_workspace(tmp_path / "requester", postgres_url, require_isolation=True)
    proposal = propose_and_build(requester, 1)
    queued = run_cli("verify-skill", proposal, "--queue", "--workspace", str(requester.root), "--json")
    assert queued.code == 0, queued.stdout
    job = queued.json()["job_id"]
    no_tools = tmp_path / "empty-path"
    no_tools.mkdir()
    bare = workers.start("bare", shared_ledger_workspace(tmp_path / "bare", postgres_url), env={"PATH": str(no_tools)})
    with Forge.opened(requester) as forge:
        deadline = time.monotonic() + 60
        while not any(line.kind == "refused" for line in progress_since(forge.ledger.engine, job, 0)):
            assert time.monotonic() < deadline, bare.log.read_text()
            time.sleep(0.2)
        bare.stop()
        state = job_state(forge.ledger.engine, job)
        assert state is not None and state.status == "todo"  # back in the queue for a worker that can
        assert not run_cli("show", proposal, "--workspace", str(requester.root), "--json").json()["verifications"]
        waiting = run_cli("wait", str(job), "--timeout", "1", "--workspace", str(requester.root))
        assert waiting.code == 2
        assert f"Job {job} waits on the gates queue for a worker" in waiting.stdout
        assert "still todo after 1 s" in waiting.stderr
        workers.start("isolated", shared_ledger_workspace(tmp_path / "isolated", postgres_url))
        waited = run_cli("wait", str(job), "--timeout", "120", "--workspace", str(requester.root), "--json")
    assert waited.code == 0, waited.stdout
    answer = json.loads(waited.stdout)
    assert answer["result"]["status"] == "PASSED"
    assert answer["result"]["isolation"] == "full"


@pytest.mark.slow
def test_build_verify_and_forge_through_the_queue(tmp_path: Path, postgres_url: str, workers: Workers) -> None:
    requester = shared_ledger_workspace(tmp_path / "requester", postgres_url)
    at = ("--workspace", str(requester.root))
    workers.start("cpu", shared_ledger_workspace(tmp_path / "cpu", postgres_url), queues="builds,gates")

    def queued(*command: str) -> int:
        answer = run_cli(*command, "--queue", *at, "--json")
        assert answer.code == 0, answer.stdout + answer.stderr
        job: int = answer.json()["job_id"]
        return job

    def propose(number: int) -> tuple[str, Path]:
        name, recording = word_count_recording(number, tmp_path / "recordings")
        args = list(WORD_COUNT_ARGS)
        args[args.index("word_count")] = name
        proposed = run_cli("propose-skill", *args, *at, "--json")
        assert proposed.code == 0, proposed.stdout
        return proposed.json()["proposal_id"], recording

    built_here, recording = propose(1)
    build = run_cli("wait", str(queued("build-skill", built_here, "--replay-from", str(recording))), *at, "--json")
    assert build.code == 0, build.stdout
    assert build.json()["result"]["status"] == "SUCCEEDED"
    verify = run_cli("wait", str(queued("verify-skill", built_here)), *at)
    assert verify.code == 0, verify.stdout
    assert "examples pass" in verify.stdout  # each gate as the worker reported it
    assert "PASSED" in verify.stdout

    forged_here, recording = propose(2)
    forged = run_cli("wait", str(queued("forge", forged_here, "--replay-from", str(recording))), *at, "--json")
    assert forged.code == 0, forged.stdout
    assert forged.json()["result"]["status"] == "VERIFIED"

    never_built, _ = propose(3)
    refused = run_cli("wait", str(queued("verify-skill", never_built)), *at, "--json")
    assert refused.code == 1
    assert refused.json()["status"] == "failed"
    assert "build it first" in refused.json()["error"]

    with Forge.opened(requester) as forge, forge.ledger.reading() as session:
        events = list(session.exec(select(Event).where(col(Event.proposal_id).in_([built_here, forged_here]))))
    written_by_worker = [e for e in events if not e.kind.endswith(".requested") and e.kind != "proposal.proposed"]
    assert written_by_worker
    assert {json.loads(e.payload).get("worker", {}).get("name") for e in written_by_worker} == {"cpu"}


def _children(pid: int) -> list[tuple[list[str], dict[str, str]]]:
    """The command lines and environments of a process's children (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != pid:
                continue
            argv = (stat.parent / "cmdline").read_bytes().decode().split("\0")
            env = dict(
                item.split("=", 1)
                for item in (stat.parent / "environ").read_bytes().decode().split("\0")
                if "=" in item
            )
        except (OSError, IndexError, ValueError):
            continue
        found.append((argv, env))
    return found


@pytest.mark.slow
def test_a_gpu_worker_starts_one_worker_per_visible_gpu(tmp_path: Path, postgres_url: str, workers: Workers) -> None:
    """No GPU here: CUDA_VISIBLE_DEVICES says which GPUs a scheduler gave this worker, and that is what it
    reads. Each child worker sees only its own GPU and runs one job at a time."""
    machine = shared_ledger_workspace(tmp_path / "gpu-machine", postgres_url)
    parent = workers.start("gpus", machine, queues="gpu", env={"CUDA_VISIBLE_DEVICES": "0,1"})
    with Forge.opened(machine) as forge:
        deadline = time.monotonic() + 60
        while True:
            with forge.ledger.engine.connect() as conn:
                if conn.exec_driver_sql("SELECT to_regclass('procrastinate_workers') IS NOT NULL").scalar():
                    running = conn.exec_driver_sql("SELECT count(*) FROM procrastinate_workers").scalar()
                    if running == 2:
                        break
            assert time.monotonic() < deadline, parent.log.read_text()
            time.sleep(0.2)
    children = sorted(_children(parent.process.pid), key=lambda child: child[1].get("CUDA_VISIBLE_DEVICES", ""))
    assert [env.get("CUDA_VISIBLE_DEVICES") for _, env in children] == ["0", "1"]
    assert [argv[argv.index("--name") + 1] for argv, _ in children] == ["gpus/gpu0", "gpus/gpu1"]
    assert all(argv[argv.index("--queues") + 1] == "gpu" for argv, _ in children)


@pytest.mark.parametrize("point", ["queue.deferred", "ledger.event"])
def test_a_request_and_its_job_commit_together_or_not_at_all(tmp_path: Path, postgres_url: str, point: str) -> None:
    """Killed (SIGKILL) after the job was deferred or after the request event was written, but before the
    commit: neither the job nor the event exists."""
    requester = shared_ledger_workspace(tmp_path / "requester", postgres_url)
    proposal = propose_and_build(requester, 1)
    argv = [sys.executable, "-m", "kavi", "verify-skill", proposal, "--queue", "--workspace", str(requester.root)]
    crashed = subprocess.run(argv, env={**os.environ, "KAVI_CRASH_AT": f"{point}:1"}, capture_output=True, check=False)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    with Forge.opened(requester) as forge:
        with forge.ledger.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM procrastinate_jobs").scalar() == 0
        with forge.ledger.reading() as session:
            assert not list(session.exec(select(Event).where(Event.kind == "verification.requested")))
    queued = run_cli("verify-skill", proposal, "--queue", "--workspace", str(requester.root), "--json")
    assert queued.code == 0  # the next request goes through: the killed one left no lock behind
