"""The queue's state as the ledger layer reads it: procrastinate's job table (the queue lives in the ledger's
own PostgreSQL database) and ``job_progress``, what a worker has told about a job so far.

The progress rows are not ledger truth (the hash-chained events are): they are how `kavi wait` on one
machine follows a job that runs on another, and they are written outside the chain's write lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from kavi.ledger.ids import utc_now

QUEUE_TABLE = "procrastinate_jobs"


@dataclass(frozen=True)
class JobState:
    job_id: int
    task: str
    queue: str
    status: str  # procrastinate's: todo, doing, succeeded, failed, cancelled, aborted
    attempts: int
    args: dict[str, Any]


@dataclass(frozen=True)
class ProgressLine:
    seq: int
    at: str
    worker: str
    kind: str
    message: str


def queue_schema_present(conn: Connection) -> bool:
    return conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": QUEUE_TABLE}).scalar_one() is True


def apply_queue_schema(conn: Connection, schema_sql: str) -> None:
    """Run procrastinate's own schema script (several statements, no parameters) on the driver connection."""
    conn.connection.driver_connection.execute(schema_sql)  # type: ignore[union-attr]


def job_state(engine: Engine, job_id: int) -> JobState | None:
    with engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT id, task_name, queue_name, status, attempts, args FROM {QUEUE_TABLE} WHERE id = :id"),  # noqa: S608 - a constant
            {"id": job_id},
        ).first()
    if row is None:
        return None
    args = row[5] if isinstance(row[5], dict) else json.loads(row[5])
    return JobState(int(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]), args)


def add_progress(engine: Engine, job_id: int, worker: str, kind: str, message: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO job_progress (job_id, at, worker, kind, message)"
                " VALUES (:job, :at, :worker, :kind, :message)"
            ),
            {"job": job_id, "at": utc_now(), "worker": worker, "kind": kind, "message": message},
        )


def progress_since(engine: Engine, job_id: int, after: int) -> list[ProgressLine]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, at, worker, kind, message FROM job_progress WHERE job_id = :job AND id > :after ORDER BY id"
            ),
            {"job": job_id, "after": after},
        ).all()
    return [ProgressLine(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]


def stalled_count(engine: Engine, job_id: int) -> int:
    """How many times a sweeper put ``job_id`` back in the queue because its worker stopped."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM job_progress WHERE job_id = :job AND kind = 'stalled'"), {"job": job_id}
            ).scalar_one()
        )
