"""Verification throughput through the job queue: 1 worker and 2 workers, side by side.

    uv run python benchmarks/workers.py [--proposals 8]

Each round gets a fresh ledger database on a throwaway PostgreSQL server (started as the tests start one),
proposes and builds word-count skills, starts the workers as separate processes in separate folders, lets
each verify one warm-up proposal, then queues every verification at once and times from queueing to the last
job's success. Prints one table: wall time, verifications per minute, and the 2-worker/1-worker ratio. A
verification already runs its gates in parallel, so two workers gain only where there are cores to spare.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kavi.ledger.jobs import job_state  # noqa: E402
from kavi.stages.common import Forge  # noqa: E402
from kavi.workspace import Workspace  # noqa: E402
from tests.postgres import start_server  # noqa: E402
from tests.support import run_cli  # noqa: E402
from tests.workers.conftest import Workers, propose_and_build, shared_ledger_workspace  # noqa: E402


def _queue_all(requester: Workspace, proposals: list[str]) -> list[int]:
    jobs = []
    for proposal in proposals:
        queued = run_cli("verify-skill", proposal, "--queue", "--workspace", str(requester.root), "--json")
        assert queued.code == 0, queued.stdout
        jobs.append(queued.json()["job_id"])
    return jobs


def _wait_all(forge: Forge, jobs: list[int]) -> None:
    while True:
        states = [job_state(forge.ledger.engine, job) for job in jobs]
        if all(state is not None and state.status in ("succeeded", "failed") for state in states):
            assert all(state is not None and state.status == "succeeded" for state in states)
            return
        time.sleep(0.1)


def one_round(url: str, proposals: int, worker_count: int, root: Path) -> float:
    """Seconds from queueing ``proposals`` verifications to the last one's success, once every worker has
    verified a warm-up proposal (a fresh worker's first mypy run fills its cache: a cost paid once per machine)."""
    requester = shared_ledger_workspace(root / "requester", url)
    built = [propose_and_build(requester, number) for number in range(proposals + worker_count)]
    workers = Workers(root / "workers")
    with Forge.opened(requester) as forge:
        for index in range(worker_count):
            workers.start(f"w{index + 1}", shared_ledger_workspace(root / f"machine-{index + 1}", url))
        try:
            _wait_all(forge, _queue_all(requester, built[:worker_count]))
            started = time.perf_counter()
            _wait_all(forge, _queue_all(requester, built[worker_count:]))
            return time.perf_counter() - started
        finally:
            for worker in workers.started:
                worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proposals", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("KAVI_TESTING", "1")
    server = start_server()
    try:
        rows = []
        for count in (1, 2):
            with tempfile.TemporaryDirectory(prefix="kavi-bench-workers-") as folder:
                elapsed = one_round(server.create_database(), args.proposals, count, Path(folder))
                rows.append((count, elapsed))
    finally:
        server.stop()
    base = rows[0][1]
    print(f"{'workers':>7}  {'proposals':>9}  {'wall s':>7}  {'verifications/min':>17}  {'speed-up':>8}")
    for count, elapsed in rows:
        rate = args.proposals / elapsed * 60
        print(f"{count:>7}  {args.proposals:>9}  {elapsed:>7.1f}  {rate:>17.1f}  {base / elapsed:>7.2f}x")
    print(f"({os.cpu_count()} CPU cores here)")


if __name__ == "__main__":
    main()
