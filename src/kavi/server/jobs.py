"""Long stages (build, verify) as jobs: a small table in memory, and their start and end in the ledger.

A job calls the same stage function as the CLI, in a worker thread with its own opened workspace, so the
stage's own transactions are what make it atomic: a server killed mid-job leaves at most a RUNNING build that
the next build marks ABANDONED, or no verification at all, never half of one. The job table itself is memory;
what survives a restart is the pair of ``server.job.started`` / ``server.job.finished`` events, so a restarted
server reports a job that started and never finished as ``interrupted``.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import partial
from typing import Any

from kavi import progress
from kavi.errors import KaviError, NotFoundError
from kavi.ledger.ids import new_id, utc_now
from kavi.ledger.store import append_event
from kavi.server.problems import problem, problem_of
from kavi.server.views import job_events
from kavi.stages.common import Forge
from kavi.workspace import Workspace

RUNNING, SUCCEEDED, FAILED, INTERRUPTED = "running", "succeeded", "failed", "interrupted"

Work = Callable[[Forge], Any]
PROGRESS_KEPT = 2000  # progress items a late reader can still catch up on; older ones are gone (not a record)


class ProgressBus:
    """What running jobs say as they go (a gate started, a builder's output), for the event stream.

    Progress is not a record (the ledger is), so it lives in memory, bounded, with its own sequence: a stream
    reader asks for the items after the last one it saw. Written from job threads, read from the event loop.
    """

    def __init__(self, kept: int = PROGRESS_KEPT) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=kept)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._last = 0

    def publish(self, job: Job, kind: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            self._last = next(self._numbers)
            self._items.append(
                {"n": self._last, "job_id": job.id, "job": job.kind, "kind": kind, "data": dict(data), "ts": utc_now()}
            )

    def last(self) -> int:
        with self._lock:
            return self._last

    def after(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            return [item for item in self._items if item["n"] > n]


@dataclass
class Job:
    id: str
    kind: str
    reference: str
    status: str = RUNNING
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    problem: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobTable:
    def __init__(self, workspace: Workspace, *, workers: int = 2) -> None:
        self.workspace = workspace
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kavi-job")
        self.progress = ProgressBus()

    def start(self, kind: str, reference: str, work: Work) -> Job:
        job = Job(new_id("j"), kind, reference)
        self._record("server.job.started", job)
        with self._lock:
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                return job.as_dict()
        return self._from_ledger(job_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: Job, work: Work) -> None:
        try:
            with Forge.opened(self.workspace) as forge, progress.observing(partial(self.progress.publish, job)):
                outcome = work(forge)
            job.result = asdict(outcome) if is_dataclass(outcome) and not isinstance(outcome, type) else outcome
            job.status = SUCCEEDED
        except KaviError as exc:
            job.problem, job.status = problem_of(exc), FAILED
        except Exception as exc:  # a bug in a stage must still end the job, visibly
            job.problem = problem(500, "Bug", f"{type(exc).__name__}: {exc}", error_type="Bug")
            job.status = FAILED
        job.finished_at = utc_now()
        # If this write fails, the stage's own records stand and a restarted server reports "interrupted".
        with contextlib.suppress(KaviError):
            self._record("server.job.finished", job)

    def _record(self, kind: str, job: Job) -> None:
        payload = {"job_id": job.id, "kind": job.kind, "reference": job.reference, "status": job.status}
        with Forge.opened(self.workspace) as forge, forge.ledger.transaction() as session:
            append_event(session, kind, payload)

    def _from_ledger(self, job_id: str) -> dict[str, Any]:
        """A job this process does not hold: one an earlier server started."""
        with Forge.opened(self.workspace) as forge:
            events = job_events(forge, job_id)
        if not events:
            raise NotFoundError(f"no job {job_id!r}", hint="jobs are listed by the 202 answer that started them")
        started = events[0]
        finished = next((e for e in events if e["kind"] == "server.job.finished"), None)
        return Job(
            id=job_id,
            kind=started["payload"]["kind"],
            reference=started["payload"]["reference"],
            status=finished["payload"]["status"] if finished else INTERRUPTED,
            started_at=started["ts"],
            finished_at=finished["ts"] if finished else None,
        ).as_dict()
