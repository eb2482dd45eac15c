"""The job queue: procrastinate, in the ledger's own PostgreSQL database.

A request (`kavi verify-skill --queue`, ...) defers its job and appends its ``<stage>.requested`` event in ONE
ledger transaction, so a job never exists without the event that asked for it, nor the event without its job.
Workers (:mod:`kavi.workers.runner`) take jobs from the queues named in :data:`QUEUES`; `kavi wait` follows one
through the progress its worker writes.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import procrastinate
from procrastinate.schema import SchemaManager
from procrastinate.types import JSONValue

from kavi.crash import crashpoint
from kavi.errors import NotFoundError, UsageError
from kavi.kinds import kind_of
from kavi.ledger.jobs import JobState, ProgressLine, apply_queue_schema, job_state, progress_since, queue_schema_present
from kavi.ledger.models import Proposal
from kavi.ledger.store import Ledger, append_event
from kavi.stages.common import Forge, default_approver, get_proposal
from kavi.workers.tasks import TASK_PREFIX, queue_app

# Which queue a kind of work goes to; a worker names the ones it takes (`kavi worker --queues ...`).
QUEUES: dict[str, str] = {
    "builds": "builds (a builder writes a candidate: CPU, network to the model if the builder needs one)",
    "gates": "verifications whose gates need a CPU only",
    "gpu": "verifications with a GPU gate (kernels): one job per GPU at a time",
}
TERMINAL = ("succeeded", "failed", "cancelled", "aborted")


@dataclass(frozen=True)
class Stage:
    """One kind of queued work: its task name, the event that requests it, and which queue takes it."""

    task: str
    requested_event: str
    queue_for: Callable[[Proposal], str]


STAGES: dict[str, Stage] = {
    "verify": Stage("verify", "verification.requested", lambda proposal: kind_of(proposal.kind).verify_queue),
    "build": Stage("build", "build.requested", lambda _proposal: "builds"),
    "forge": Stage("forge", "forge.requested", lambda proposal: kind_of(proposal.kind).verify_queue),
}


@dataclass(frozen=True)
class Enqueued:
    job_id: int
    task: str
    queue: str
    proposal_id: str
    name: str


def require_queue(ledger: Ledger) -> None:
    """A queue lives in the ledger's database, so only a ledger whose engine can host one has a queue."""
    if not ledger.backend.hosts_queue:
        raise UsageError(
            f"--queue needs a shared PostgreSQL ledger; this workspace's ledger is {ledger.backend.dialect}",
            hint='set `[ledger] url = "postgresql://..."` in kavi.toml (see the README\'s "Workers"), or run the '
            "command without --queue to do the work here",
        )


def conninfo(ledger: Ledger) -> str:
    """The ledger's URL as libpq reads it (no SQLAlchemy driver suffix)."""
    url = ledger.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def ensure_queue_schema(ledger: Ledger) -> None:
    """Install procrastinate's tables in the ledger's database once (under the ledger's write lock, so two
    machines starting at once do not both install them). Procrastinate owns that schema and its upgrades."""
    require_queue(ledger)
    with ledger.transaction() as session:
        conn = session.connection()
        if not queue_schema_present(conn):
            apply_queue_schema(conn, SchemaManager.get_schema())


def enqueue(forge: Forge, stage_name: str, reference: str, options: dict[str, Any] | None = None) -> Enqueued:
    """Defer one job and record that it was requested, in one ledger transaction."""
    require_queue(forge.ledger)
    ensure_queue_schema(forge.ledger)
    stage = STAGES[stage_name]
    app = queue_app(procrastinate.SyncPsycopgConnector())  # defers on the ledger's own connection only
    with forge.ledger.transaction() as session:
        proposal = get_proposal(session, reference)
        queue = stage.queue_for(proposal)
        arguments: dict[str, JSONValue] = {
            "proposal_id": proposal.id,
            "require_full_isolation": forge.workspace.config.isolation.require,
            "requested_by": default_approver(),
            "options": options or {},
        }
        connection = session.connection().connection.driver_connection
        job_id = app.tasks[TASK_PREFIX + stage.task].configure(queue=queue, connection=connection).defer(**arguments)
        crashpoint("queue.deferred")
        append_event(
            session,
            stage.requested_event,
            {
                "job_id": job_id,
                "queue": queue,
                "task": stage.task,
                "requested_by": arguments["requested_by"],
                "host": socket.gethostname(),
                "require_full_isolation": arguments["require_full_isolation"],
            },
            proposal_id=proposal.id,
        )
        return Enqueued(job_id, stage.task, queue, proposal.id, proposal.name)


@dataclass(frozen=True)
class Followed:
    state: JobState
    result: dict[str, Any] | None  # what the worker reported at the end (None when it failed before that)
    error: str | None

    @property
    def ok(self) -> bool:
        return self.state.status == "succeeded" and bool(self.result and self.result.get("ok"))


def follow(
    ledger: Ledger,
    job_id: int,
    on_line: Callable[[ProgressLine], None],
    *,
    on_queued: Callable[[JobState], None] = lambda _state: None,
    timeout_s: float | None = None,
    poll_s: float = 0.25,
) -> Followed:
    """Report each progress line of ``job_id`` as its worker writes it, until the job is done; ``on_queued``
    hears once that the job is still waiting for a worker."""
    require_queue(ledger)
    ensure_queue_schema(ledger)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen, result, error, told = 0, None, None, False
    while True:
        state = job_state(ledger.engine, job_id)
        if state is None:
            raise NotFoundError(f"no job {job_id} in this ledger's queue", hint="the id is what --queue printed")
        if state.status == "todo" and not told:
            on_queued(state)
            told = True
        for line in progress_since(ledger.engine, job_id, seen):
            seen = line.seq
            if line.kind == "result":
                result = json.loads(line.message)
            elif line.kind == "error":
                error = line.message
            on_line(line)
        if state.status in TERMINAL:
            return Followed(state, result, error)
        if deadline is not None and time.monotonic() > deadline:
            raise UsageError(
                f"job {job_id} is still {state.status} after {timeout_s:g} s",
                hint=f"`kavi wait {job_id}` again, or check that a worker takes the {state.queue} queue",
            )
        time.sleep(poll_s)
