"""Append-only, named schema migrations.

Each migration is a function that receives a DBAPI-level connection wrapper and a dialect name; it is
applied once, in order, and recorded in ``migrations``. A shipped migration is never edited: a mistake gets
a new migration. ``SQLModel.metadata.create_all`` is never used for the schema.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

MigrationFn = Callable[[Connection, str], None]


def _serial(dialect: str) -> str:
    return "BIGSERIAL PRIMARY KEY" if dialect == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"


def m001_initial(conn: Connection, dialect: str) -> None:
    statements = [
        """CREATE TABLE artifacts (
            sha256 TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_at TEXT NOT NULL)""",
        """CREATE TABLE proposals (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            description TEXT NOT NULL,
            side_effect TEXT NOT NULL,
            spec_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        "CREATE INDEX ix_proposals_name ON proposals(name)",
        "CREATE INDEX ix_proposals_created ON proposals(created_at)",
        """CREATE TABLE builds (
            id TEXT PRIMARY KEY,
            proposal_id TEXT NOT NULL REFERENCES proposals(id),
            attempt INTEGER NOT NULL,
            parent_build_id TEXT REFERENCES builds(id),
            builder TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            failure_kind TEXT,
            packet_sha256 TEXT REFERENCES artifacts(sha256),
            snapshot_sha256 TEXT REFERENCES artifacts(sha256),
            candidate_sha256 TEXT REFERENCES artifacts(sha256),
            sandbox TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            duration_s REAL,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            UNIQUE (proposal_id, attempt))""",
        "CREATE INDEX ix_builds_proposal_id ON builds(proposal_id)",
        """CREATE TABLE verifications (
            id TEXT PRIMARY KEY,
            proposal_id TEXT NOT NULL REFERENCES proposals(id),
            build_id TEXT NOT NULL REFERENCES builds(id),
            candidate_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
            status TEXT NOT NULL,
            isolation TEXT NOT NULL,
            duration_s REAL NOT NULL,
            created_at TEXT NOT NULL)""",
        "CREATE INDEX ix_verifications_proposal_id ON verifications(proposal_id)",
        f"""CREATE TABLE verification_gates (
            id {_serial(dialect)},
            verification_id TEXT NOT NULL REFERENCES verifications(id),
            gate TEXT NOT NULL,
            status TEXT NOT NULL,
            summary TEXT NOT NULL,
            duration_s REAL NOT NULL,
            isolation TEXT,
            report_sha256 TEXT REFERENCES artifacts(sha256))""",
        "CREATE INDEX ix_verification_gates_vid ON verification_gates(verification_id)",
        """CREATE TABLE promotions (
            id TEXT PRIMARY KEY,
            proposal_id TEXT NOT NULL REFERENCES proposals(id),
            build_id TEXT NOT NULL REFERENCES builds(id),
            verification_id TEXT NOT NULL REFERENCES verifications(id),
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            candidate_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
            skill_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
            test_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
            spec_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
            side_effect TEXT NOT NULL,
            approver TEXT NOT NULL,
            unmeasured BOOLEAN NOT NULL DEFAULT FALSE,
            status TEXT NOT NULL,
            promoted_at TEXT NOT NULL,
            revoked_at TEXT,
            revoked_by TEXT,
            UNIQUE (name, version))""",
        "CREATE INDEX ix_promotions_name ON promotions(name)",
        "CREATE INDEX ix_promotions_proposal_id ON promotions(proposal_id)",
        """CREATE TABLE executions (
            id TEXT PRIMARY KEY,
            promotion_id TEXT NOT NULL REFERENCES promotions(id),
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            skill_sha256 TEXT NOT NULL,
            input_json TEXT NOT NULL,
            output_json TEXT,
            error TEXT,
            duration_s REAL NOT NULL,
            isolation TEXT NOT NULL,
            created_at TEXT NOT NULL)""",
        "CREATE INDEX ix_executions_promotion_id ON executions(promotion_id)",
        f"""CREATE TABLE events (
            id {_serial(dialect)},
            ts TEXT NOT NULL,
            kind TEXT NOT NULL,
            proposal_id TEXT,
            build_id TEXT,
            payload TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE)""",
        "CREATE INDEX ix_events_proposal_id ON events(proposal_id)",
    ]
    if dialect == "sqlite":
        statements += [
            """CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
               BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
            """CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
               BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        ]
    for statement in statements:
        conn.execute(text(statement))


def m002_revocation_reason_and_run_input_digest(conn: Connection, dialect: str) -> None:
    """Why a version was revoked; and a run's input as its sha256 and size (the ledger keeps a bounded
    preview of the input unless ``[run] record_input = "full"``)."""
    for statement in (
        "ALTER TABLE promotions ADD COLUMN revoked_reason TEXT",
        "ALTER TABLE executions ADD COLUMN input_sha256 TEXT",
        "ALTER TABLE executions ADD COLUMN input_size INTEGER",
    ):
        conn.execute(text(statement))


def m003_isolation_layers(conn: Connection, dialect: str) -> None:
    """The isolation layers in force (``userns,caps,...``, in the executor's table order) for each
    verification, each gate and each execution; rows from before this migration have none recorded."""
    for statement in (
        "ALTER TABLE verifications ADD COLUMN layers TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE verification_gates ADD COLUMN layers TEXT",
        "ALTER TABLE executions ADD COLUMN layers TEXT NOT NULL DEFAULT ''",
    ):
        conn.execute(text(statement))


def m004_proposal_hidden_examples(conn: Connection, dialect: str) -> None:
    """Examples frozen at propose time but never shown to a builder live in an artifact of their own,
    referenced from the proposal row (never from the spec a builder reads)."""
    conn.execute(text("ALTER TABLE proposals ADD COLUMN hidden_examples_sha256 TEXT REFERENCES artifacts(sha256)"))


def m007_execution_tree(conn: Connection, dialect: str) -> None:
    """Executions form trees: a skill run records the execution it ran under (``parent_id``) and the root of
    its tree (``root_id``, its own id at the top); an execution that is not one skill run (a forge and its
    attempts, a chat, a plan, a chain run, a replay) is an ``execution_nodes`` row whose children are nodes
    or skill runs. Ids never collide across the two tables (their prefixes differ), so a parent may be
    either; a replay names the execution it re-ran in ``replay_of``."""
    for statement in (
        "ALTER TABLE executions ADD COLUMN parent_id TEXT",
        "ALTER TABLE executions ADD COLUMN root_id TEXT",
        "CREATE INDEX ix_executions_root_id ON executions(root_id)",
        "CREATE INDEX ix_executions_created ON executions(created_at)",
        "CREATE INDEX ix_executions_parent_created ON executions(parent_id, created_at)",
        """CREATE TABLE execution_nodes (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            parent_id TEXT,
            root_id TEXT NOT NULL,
            replay_of TEXT,
            status TEXT NOT NULL,
            input_json TEXT NOT NULL,
            output_json TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            duration_s REAL)""",
        "CREATE INDEX ix_execution_nodes_root_id ON execution_nodes(root_id)",
        "CREATE INDEX ix_execution_nodes_created ON execution_nodes(created_at)",
        "CREATE INDEX ix_execution_nodes_parent_created ON execution_nodes(parent_id, created_at)",
        "CREATE INDEX ix_execution_nodes_replay_of ON execution_nodes(replay_of)",
    ):
        conn.execute(text(statement))


def m010_artifact_blobs_and_job_progress(conn: Connection, dialect: str) -> None:
    """The artifacts' bytes in the ledger's own database (content-addressed, so a worker on a machine with no
    shared file system fetches a candidate by hash; the workspace's artifact folder stays a cache checked by
    hash), and what a queued job has told about itself so far (``kavi wait`` follows it)."""
    blob = "BYTEA" if dialect == "postgresql" else "BLOB"
    for statement in (
        f"""CREATE TABLE artifact_blobs (
            sha256 TEXT PRIMARY KEY REFERENCES artifacts(sha256),
            data {blob} NOT NULL)""",
        f"""CREATE TABLE job_progress (
            id {_serial(dialect)},
            job_id BIGINT NOT NULL,
            at TEXT NOT NULL,
            worker TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL)""",
        "CREATE INDEX ix_job_progress_job_id ON job_progress(job_id, id)",
    ):
        conn.execute(text(statement))


def m009_postgres_append_only_events(conn: Connection, dialect: str) -> None:
    """The events log is append-only on Postgres too: triggers refuse UPDATE, DELETE and TRUNCATE, as m001's
    triggers do on SQLite (which has no TRUNCATE; nothing to add there). And Postgres's REAL is 4 bytes where
    SQLite's is 8: durations and costs become DOUBLE PRECISION, so a value reads back as it was written on
    both backends."""
    if dialect != "postgresql":
        return
    statements = [
        """CREATE FUNCTION kavi_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $body$
           BEGIN RAISE EXCEPTION 'events are append-only'; END $body$""",
        """CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
           FOR EACH ROW EXECUTE FUNCTION kavi_events_append_only()""",
        """CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
           FOR EACH ROW EXECUTE FUNCTION kavi_events_append_only()""",
        """CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON events
           FOR EACH STATEMENT EXECUTE FUNCTION kavi_events_append_only()""",
        "ALTER TABLE builds ALTER COLUMN cost_usd TYPE DOUBLE PRECISION, ALTER COLUMN duration_s TYPE DOUBLE PRECISION",
        "ALTER TABLE verifications ALTER COLUMN duration_s TYPE DOUBLE PRECISION",
        "ALTER TABLE verification_gates ALTER COLUMN duration_s TYPE DOUBLE PRECISION",
        "ALTER TABLE executions ALTER COLUMN duration_s TYPE DOUBLE PRECISION",
        "ALTER TABLE execution_nodes ALTER COLUMN duration_s TYPE DOUBLE PRECISION",
    ]
    for statement in statements:
        conn.execute(text(statement))


def m011_kernel_correctness_device(conn: Connection, dialect: str) -> None:
    """Where a promoted kernel's correctness was checked: ``interpreter`` (only through Triton's CPU
    interpreter, so its first GPU run re-checks it there), ``cuda``, or NULL (not a kernel, or a
    promotion from before this migration)."""
    conn.execute(text("ALTER TABLE promotions ADD COLUMN correctness_device TEXT"))


MIGRATIONS: tuple[tuple[str, MigrationFn], ...] = (
    ("m001_initial", m001_initial),
    ("m002_revocation_reason_and_run_input_digest", m002_revocation_reason_and_run_input_digest),
    ("m003_isolation_layers", m003_isolation_layers),
    ("m004_proposal_hidden_examples", m004_proposal_hidden_examples),
    ("m007_execution_tree", m007_execution_tree),
    ("m009_postgres_append_only_events", m009_postgres_append_only_events),
    ("m010_artifact_blobs_and_job_progress", m010_artifact_blobs_and_job_progress),
    ("m011_kernel_correctness_device", m011_kernel_correctness_device),
)
