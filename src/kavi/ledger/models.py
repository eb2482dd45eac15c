"""The ledger's tables as SQLModel classes.

These classes describe the schema that the migrations in :mod:`kavi.ledger.migrations` create; they are
never used to create or alter it (a test compares the two). Timestamps are ISO-8601 UTC strings so rows
hash and serialise the same on SQLite and Postgres.
"""

from __future__ import annotations

from enum import StrEnum

from sqlmodel import Field, SQLModel


class ProposalStatus(StrEnum):
    PROPOSED = "PROPOSED"
    AWAITING_INPUT = "AWAITING_INPUT"
    BUILT = "BUILT"
    BUILD_FAILED = "BUILD_FAILED"
    VERIFIED = "VERIFIED"
    VERIFY_FAILED = "VERIFY_FAILED"
    TRUSTED = "TRUSTED"
    ESCALATED = "ESCALATED"
    REJECTED = "REJECTED"


class VersionStatus(StrEnum):
    TRUSTED = "TRUSTED"
    REVOKED = "REVOKED"


class Migration(SQLModel, table=True):
    __tablename__ = "migrations"
    name: str = Field(primary_key=True)
    applied_at: str


class Artifact(SQLModel, table=True):
    __tablename__ = "artifacts"
    sha256: str = Field(primary_key=True)
    kind: str
    size: int
    created_at: str


class Proposal(SQLModel, table=True):
    __tablename__ = "proposals"
    id: str = Field(primary_key=True)
    name: str = Field(index=True)
    kind: str
    description: str
    side_effect: str
    spec_sha256: str = Field(foreign_key="artifacts.sha256")
    status: str
    created_at: str
    updated_at: str
    # Salted, so the digest tells nothing about the examples; None when the proposal has none.
    hidden_examples_sha256: str | None = Field(default=None, foreign_key="artifacts.sha256")


class Build(SQLModel, table=True):
    __tablename__ = "builds"
    id: str = Field(primary_key=True)
    proposal_id: str = Field(foreign_key="proposals.id", index=True)
    attempt: int
    parent_build_id: str | None = Field(default=None, foreign_key="builds.id")
    builder: str
    status: str
    reason: str | None = None
    failure_kind: str | None = None
    packet_sha256: str | None = Field(default=None, foreign_key="artifacts.sha256")
    snapshot_sha256: str | None = Field(default=None, foreign_key="artifacts.sha256")
    candidate_sha256: str | None = Field(default=None, foreign_key="artifacts.sha256")
    sandbox: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    duration_s: float | None = None
    created_at: str
    finished_at: str | None = None


class Verification(SQLModel, table=True):
    __tablename__ = "verifications"
    id: str = Field(primary_key=True)
    proposal_id: str = Field(foreign_key="proposals.id", index=True)
    build_id: str = Field(foreign_key="builds.id")
    candidate_sha256: str = Field(foreign_key="artifacts.sha256")
    status: str
    isolation: str
    duration_s: float
    created_at: str
    layers: str = ""  # comma-separated isolation layers every gate's children had (kavi.ledger.fast.layers_text)


class GateRecord(SQLModel, table=True):
    __tablename__ = "verification_gates"
    id: int | None = Field(default=None, primary_key=True)
    verification_id: str = Field(foreign_key="verifications.id", index=True)
    gate: str
    status: str
    summary: str
    duration_s: float
    isolation: str | None = None
    report_sha256: str | None = Field(default=None, foreign_key="artifacts.sha256")
    layers: str | None = None  # None: the gate ran no child


class Promotion(SQLModel, table=True):
    """One TRUSTED version of a skill: the bytes that were verified, who approved them, and when."""

    __tablename__ = "promotions"
    id: str = Field(primary_key=True)
    proposal_id: str = Field(foreign_key="proposals.id", index=True)
    build_id: str = Field(foreign_key="builds.id")
    verification_id: str = Field(foreign_key="verifications.id")
    name: str = Field(index=True)
    version: int
    candidate_sha256: str = Field(foreign_key="artifacts.sha256")
    skill_sha256: str = Field(foreign_key="artifacts.sha256")
    test_sha256: str = Field(foreign_key="artifacts.sha256")
    spec_sha256: str = Field(foreign_key="artifacts.sha256")
    side_effect: str
    approver: str
    unmeasured: bool = False
    correctness_device: str | None = None  # kernels: "interpreter" (CPU only) or "cuda"
    status: str
    promoted_at: str
    revoked_at: str | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None


class Execution(SQLModel, table=True):
    __tablename__ = "executions"
    id: str = Field(primary_key=True)
    promotion_id: str = Field(foreign_key="promotions.id", index=True)
    name: str
    version: int
    skill_sha256: str
    input_json: str  # the whole input, or a bounded preview of it (``[run] record_input``)
    input_sha256: str | None = None
    input_size: int | None = None
    output_json: str | None = None
    error: str | None = None
    duration_s: float
    isolation: str
    created_at: str
    layers: str = ""
    parent_id: str | None = None  # the execution node this run ran under (a chat, a chain run, a replay)
    root_id: str | None = None  # the root of its tree: its own id at the top; None on rows from before m007


class ExecutionNode(SQLModel, table=True):
    """An execution that is not one skill run (a forge, an attempt, a chat, a plan, a chain run, a replay):
    what it did are its children, nodes or skill runs (kavi.stages.executions.EXECUTION_KINDS)."""

    __tablename__ = "execution_nodes"
    id: str = Field(primary_key=True)
    kind: str
    name: str
    parent_id: str | None = None
    root_id: str = Field(index=True)
    replay_of: str | None = Field(default=None, index=True)
    status: str
    input_json: str
    output_json: str | None = None
    error: str | None = None
    created_at: str = Field(index=True)
    finished_at: str | None = None
    duration_s: float | None = None


class Event(SQLModel, table=True):
    """The append-only, hash-chained log of everything that happened."""

    __tablename__ = "events"
    id: int | None = Field(default=None, primary_key=True)
    ts: str
    kind: str
    proposal_id: str | None = Field(default=None, index=True)
    build_id: str | None = None
    payload: str
    prev_hash: str
    hash: str
