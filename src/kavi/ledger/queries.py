"""Every raw SQL statement kavi runs outside the ORM, by name, written once for both backends.

The audit, kavi.lock, attestations, `kavi run-skill`'s fast path, the install step and the Python API run
these through :class:`kavi.ledger.connection.LedgerConnection` (``?`` placeholders; Postgres translates
them). Keeping them in one module means a schema change is checked against one file, and a statement that
behaves differently on the two backends is fixed once. Ordering that a digest or a file depends on (the
lock's entries) is done in Python, never by a collation the server may define differently.
"""

from __future__ import annotations

# --- the chain --------------------------------------------------------------------------------------------

EVENT_COLUMNS = "id, ts, kind, proposal_id, build_id, payload, prev_hash, hash"
LAST_EVENT = "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1"
LAST_TWO_EVENTS = f"SELECT {EVENT_COLUMNS} FROM events ORDER BY id DESC LIMIT 2"  # noqa: S608
ALL_EVENTS = f"SELECT {EVENT_COLUMNS} FROM events ORDER BY id"  # noqa: S608
INSERT_EVENT = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
EVENT_ID_BY_HASH = "SELECT id FROM events WHERE hash = ?"
PROMOTION_HEAD_EVENTS = (
    "SELECT hash, payload FROM events WHERE proposal_id = ? AND kind = 'proposal.trusted' ORDER BY id DESC"
)
LOCK_ADOPTION_EVENT = "SELECT payload FROM events WHERE kind = 'lock.adopted' ORDER BY id LIMIT 1"
TRACE_EVENTS_OF_BUILD = "SELECT hash, payload FROM events WHERE build_id = ? AND kind LIKE 'trace.%' ORDER BY id"

# --- counts (the audit's summary) -------------------------------------------------------------------------

COUNTED_TABLES = ("events", "proposals", "builds", "verifications", "promotions", "executions", "artifacts")
COUNT_ROWS = {table: f"SELECT COUNT(*) FROM {table}" for table in COUNTED_TABLES}  # noqa: S608

# --- rows the audit compares with the events --------------------------------------------------------------

ARTIFACT_ROWS = "SELECT sha256, kind, size FROM artifacts"
# both backends (SQLite >= 3.24): the first kind recorded for a hash wins
INSERT_ARTIFACT_IF_NEW = (
    "INSERT INTO artifacts (sha256, kind, size, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING"
)
PROPOSAL_ROWS = "SELECT id, status, spec_sha256 FROM proposals"
PROPOSAL_IDS = "SELECT id FROM proposals"
PROMOTION_ROWS = (
    "SELECT id, status, name, version, approver, candidate_sha256, skill_sha256, verification_id FROM promotions"
)
BUILD_ROWS = "SELECT id, status, candidate_sha256 FROM builds"
VERIFICATION_ROWS = "SELECT id, status, candidate_sha256 FROM verifications"
EXECUTION_IDS = "SELECT id FROM executions"
EXECUTION_PARENTS = "SELECT id, parent_id FROM executions"
EXECUTION_NODE_ROWS = "SELECT id, kind, name, parent_id, status FROM execution_nodes"

# --- TRUSTED versions -------------------------------------------------------------------------------------

INSTALLED_EXPECTATIONS = (
    "SELECT t.name, t.version, p.kind, t.skill_sha256, t.test_sha256 FROM promotions t"
    " JOIN proposals p ON p.id = t.proposal_id WHERE t.status = 'TRUSTED' ORDER BY t.version"
)
LOCK_ROWS = (
    "SELECT p.id, p.proposal_id, p.name, p.version, p.candidate_sha256, p.skill_sha256, p.test_sha256,"
    " p.spec_sha256, p.side_effect, p.approver, p.promoted_at, r.kind"
    " FROM promotions p JOIN proposals r ON r.id = p.proposal_id WHERE p.status = 'TRUSTED'"
)
PROMOTED_NAMES = "SELECT DISTINCT name FROM promotions"
TRUSTED_PROMOTIONS_OF = "SELECT * FROM promotions WHERE name = ? AND status = 'TRUSTED' ORDER BY version DESC"
TRUSTED_PROMOTIONS_WITH_KIND_OF = (
    "SELECT t.*, p.kind FROM promotions t JOIN proposals p ON p.id = t.proposal_id"
    " WHERE t.name = ? AND t.status = 'TRUSTED' ORDER BY t.version DESC"
)
LATEST_TRUSTED_VERSION_OF = "SELECT MAX(version) FROM promotions WHERE name = ? AND status = 'TRUSTED'"
PROMOTION_STATUS_OF_VERSION = "SELECT status FROM promotions WHERE name = ? AND version = ?"
NEWEST_PROPOSAL_STATUS_OF = "SELECT status FROM proposals WHERE name = ? ORDER BY created_at DESC"

# --- provenance -------------------------------------------------------------------------------------------

BUILD_BY_ID = "SELECT * FROM builds WHERE id = ?"
VERIFICATION_BY_ID = "SELECT * FROM verifications WHERE id = ?"
GATES_OF_VERIFICATION = "SELECT * FROM verification_gates WHERE verification_id = ?"

# --- executions -------------------------------------------------------------------------------------------

INSERT_EXECUTION = (
    "INSERT INTO executions (id, promotion_id, name, version, skill_sha256, input_json, input_sha256,"
    " input_size, output_json, error, duration_s, isolation, created_at, layers, parent_id, root_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# --- copying a ledger (table and column names come from the schema, never from a user) ---------------------

COUNT_ALL = "SELECT COUNT(*) FROM {table}"
ROWS_IN_INSERTION_ORDER = "SELECT * FROM {table} ORDER BY rowid"  # SQLite: the order the rows were written
INSERT_ROW = "INSERT INTO {table} ({columns}) VALUES ({marks})"
SERIAL_COLUMNS = (
    "SELECT table_name, column_name FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'"
)
# After rows arrive with their ids, a serial column's sequence must continue after the largest one.
RESET_SERIAL = (
    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), MAX({column})) FROM {table}"
    " HAVING MAX({column}) IS NOT NULL"
)

# --- execution trees -------------------------------------------------------------------------------------

ROOT_OF_NODE = "SELECT root_id FROM execution_nodes WHERE id = ?"
ROOT_OF_RUN = "SELECT COALESCE(root_id, id) FROM executions WHERE id = ?"
