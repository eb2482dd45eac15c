"""`kavi audit`: recompute everything the ledger vouches for and name each disagreement.

The audit reads the ledger (SQLite or Postgres) below the ORM, with the named statements of
:mod:`kavi.ledger.queries` (hydrating ORM objects costs ten times more than hashing), inside one snapshot
transaction, so it sees one consistent state while other kavi processes write.
It checks, in order: the hash chain; every artifact against its content hash; every proposal, promotion,
build, verification and execution row against the events that created it; the files installed in
``skills/``; and ``kavi.lock`` when there is one. A finding names the exact row, event or file.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from kavi.errors import KaviError
from kavi.integrity.lockdata import LOCK_FILE
from kavi.layout import installed_files, installed_paths
from kavi.ledger import queries
from kavi.ledger.chain import GENESIS
from kavi.ledger.connection import LedgerConnection, connect
from kavi.workspace import Workspace

MAX_FINDINGS_PER_CHECK = 50


@dataclass(frozen=True)
class Finding:
    check: str
    where: str
    message: str

    def line(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"


@dataclass
class AuditReport:
    workspace: str
    quick: bool
    head: str
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    truncated: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, check: str, where: str, message: str) -> None:
        """Record a finding, keeping at most MAX_FINDINGS_PER_CHECK per check (the rest are counted)."""
        if sum(1 for f in self.findings if f.check == check) >= MAX_FINDINGS_PER_CHECK:
            self.truncated[check] = self.truncated.get(check, 0) + 1
            return
        self.findings.append(Finding(check, where, message))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "workspace": self.workspace,
            "quick": self.quick,
            "head": self.head,
            "counts": self.counts,
            "findings": [f.__dict__ for f in self.findings],
            "truncated": self.truncated,
            "duration_s": self.duration_s,
        }


def open_ledger(workspace: Workspace) -> LedgerConnection:
    """The workspace's ledger, below the ORM (either backend)."""
    return connect(workspace.ledger_url)


def audit_workspace(workspace: Workspace, *, quick: bool = False) -> AuditReport:
    """Audit the workspace; ``quick`` checks only the chain head, the counts and the installed files."""
    started = time.perf_counter()
    with open_ledger(workspace) as conn, conn.snapshot():  # one snapshot for every check
        report = AuditReport(str(workspace.root), quick, GENESIS)
        report.counts = _counts(conn)
        if quick:
            _check_head(conn, report)
        else:
            events = _check_chain(conn, report)
            _check_artifacts(conn, workspace.artifacts_dir, report)
            _check_rows(conn, events, report)
        _check_installed(conn, workspace, report)
        if (workspace.root / LOCK_FILE).is_file():
            from kavi.integrity.lockfile import compare_lock_with_ledger, read_lock_findings

            lock, problems = read_lock_findings(workspace.root)
            for where, message in problems:
                report.add("lock", where, message)
            if lock is not None:
                try:
                    for where, message in compare_lock_with_ledger(lock, conn, workspace.artifacts_dir):
                        report.add("lock", where, message)
                except KaviError as exc:
                    report.add("lock", LOCK_FILE, f"cannot derive the lock from the ledger: {exc.message}")
    report.duration_s = round(time.perf_counter() - started, 4)
    return report


def _counts(conn: LedgerConnection) -> dict[str, int]:
    return {table: int(conn.scalar(sql)) for table, sql in queries.COUNT_ROWS.items()}


def _check_head(conn: LedgerConnection, report: AuditReport) -> None:
    """Quick mode: the head event hashes right, links to its predecessor, and ids have no gap."""
    rows = conn.execute(queries.LAST_TWO_EVENTS).fetchall()
    if not rows:
        return
    head = rows[0]
    report.head = head[7]
    expected = _hash_row(head)
    if expected != head[7]:
        report.add("chain", f"event #{head[0]}", f"hash {head[7][:12]} does not match its content ({expected[:12]})")
    previous = rows[1][7] if len(rows) > 1 else GENESIS
    if head[6] != previous:
        report.add("chain", f"event #{head[0]}", "prev_hash does not link to the event before it")
    if head[0] != report.counts["events"]:
        report.add("chain", "events", f"{report.counts['events']} events but the head is #{head[0]}: rows are missing")


def _hash_row(row: tuple[Any, ...]) -> str:
    body = json.dumps(list(row[:6]), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{row[6]}|{body}".encode()).hexdigest()


@dataclass
class _Seen:
    """What the events say, gathered during the chain walk for the row checks."""

    proposal_status: dict[str, tuple[int, str]] = field(default_factory=dict)
    proposal_spec: dict[str, tuple[int, str]] = field(default_factory=dict)
    promotions: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    revoked: dict[str, int] = field(default_factory=dict)
    builds_started: set[str] = field(default_factory=set)
    builds_finished: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    verifications: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    executions: dict[str, int] = field(default_factory=dict)
    run_parents: dict[str, str | None] = field(default_factory=dict)
    nodes_started: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    nodes_finished: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)


def _check_chain(conn: LedgerConnection, report: AuditReport) -> _Seen:
    """Walk every event once: recompute its hash, check its link, and note what it says about rows."""
    # The body is what kavi.ledger.chain.event_hash feeds json.dumps, spelled out with the same C string
    # escaper: a 6-item list with no spaces. Half the cost of calling json.dumps per event.
    quote = encode_basestring
    sha256 = hashlib.sha256
    loads = json.loads
    seen = _Seen()
    previous, expected_id = GENESIS, 1
    cursor = conn.execute(queries.ALL_EVENTS)
    for event_id, ts, kind, proposal_id, build_id, payload, prev_hash, digest in cursor:
        if event_id != expected_id:
            report.add("chain", f"event #{event_id}", f"expected event #{expected_id} here: events were removed")
        if prev_hash != previous:
            report.add("chain", f"event #{event_id}", f"prev_hash {prev_hash[:12]} does not link to {previous[:12]}")
        pid = "null" if proposal_id is None else quote(proposal_id)
        bid = "null" if build_id is None else quote(build_id)
        text = f"{prev_hash}|[{event_id},{quote(ts)},{quote(kind)},{pid},{bid},{quote(payload)}]"
        if sha256(text.encode()).hexdigest() != digest:
            report.add("chain", f"event #{event_id}", f"{kind}: stored hash {digest[:12]} does not match its content")
        previous, expected_id = digest, event_id + 1
        if kind.startswith(("proposal.", "promotion.", "build.", "verification.", "run.", "execution.")):
            _note(seen, event_id, kind, proposal_id, build_id, payload, loads, report)
    report.head = previous
    return seen


def _note(
    seen: _Seen,
    event_id: int,
    kind: str,
    proposal_id: str | None,
    build_id: str | None,
    payload: str,
    loads: Any,
    report: AuditReport,
) -> None:
    try:
        data = loads(payload)
    except ValueError:
        report.add("chain", f"event #{event_id}", f"{kind}: payload is not JSON")
        return
    if not isinstance(data, dict):
        return
    if kind.startswith("proposal.") and proposal_id:
        if kind == "proposal.proposed":
            seen.proposal_status[proposal_id] = (event_id, "PROPOSED")
            seen.proposal_spec[proposal_id] = (event_id, str(data.get("spec_sha256")))
        elif "to" in data:
            seen.proposal_status[proposal_id] = (event_id, str(data["to"]))
    elif kind == "promotion.trusted":
        seen.promotions[str(data.get("promotion_id"))] = (event_id, data)
    elif kind == "promotion.revoked":
        seen.revoked[str(data.get("promotion_id"))] = event_id
    elif kind == "build.started" and build_id:
        seen.builds_started.add(build_id)
    elif kind == "build.finished" and build_id:
        seen.builds_finished[build_id] = (event_id, data)
    elif kind == "verification.finished":
        seen.verifications[str(data.get("verification_id"))] = (event_id, data)
    elif kind in ("run.finished", "run.blocked"):
        seen.executions[str(data.get("execution_id"))] = event_id
        seen.run_parents[str(data.get("execution_id"))] = data.get("parent_id")
    elif kind == "execution.started":
        seen.nodes_started[str(data.get("execution_id"))] = (event_id, data)
    elif kind == "execution.finished":
        seen.nodes_finished[str(data.get("execution_id"))] = (event_id, data)


def _check_artifacts(conn: LedgerConnection, root: Path, report: AuditReport) -> None:
    sha256 = hashlib.sha256
    base = str(root)
    for digest, kind, size in conn.execute(queries.ARTIFACT_ROWS):
        try:
            with open(f"{base}/{digest[:2]}/{digest}", "rb") as handle:
                data = handle.read()
        except OSError:
            report.add("artifact", f"artifacts row {digest[:12]} ({kind})", "missing from the store")
            continue
        if sha256(data).hexdigest() != digest:
            report.add("artifact", f"artifacts row {digest[:12]} ({kind})", "the stored bytes no longer match")
        elif len(data) != size:
            report.add("artifact", f"artifacts row {digest[:12]} ({kind})", f"size {size} recorded, {len(data)} found")


def _check_rows(conn: LedgerConnection, seen: _Seen, report: AuditReport) -> None:
    """Each row must say what the event that wrote it said."""
    for pid, status, spec in conn.execute(queries.PROPOSAL_ROWS).fetchall():
        where = f"proposals row {pid}"
        if pid not in seen.proposal_status:
            report.add("proposal", where, "no proposal.proposed event records it")
            continue
        event_id, last = seen.proposal_status[pid]
        if last != status:
            report.add("proposal", where, f"status {status} but its last status event #{event_id} says {last}")
        spec_event, spec_sha = seen.proposal_spec.get(pid, (0, ""))
        if spec_sha != spec:
            report.add("proposal", where, f"spec_sha256 {spec[:12]} differs from event #{spec_event} ({spec_sha[:12]})")
    for extra in sorted(set(seen.proposal_status) - {r[0] for r in conn.execute(queries.PROPOSAL_IDS).fetchall()}):
        report.add("proposal", f"proposal {extra}", "events record it but the proposals row is missing")
    _check_promotions(conn, seen, report)
    _check_builds(conn, seen, report)
    _check_verifications(conn, seen, report)
    for xid, parent in conn.execute(queries.EXECUTION_PARENTS).fetchall():
        if xid not in seen.executions:
            report.add("execution", f"executions row {xid}", "no run event records it")
        elif seen.run_parents.get(xid) != parent:
            said = seen.run_parents.get(xid)
            report.add(
                "execution", f"executions row {xid}", f"parent {parent} but event #{seen.executions[xid]} says {said}"
            )
    _check_execution_nodes(conn, seen, report)


def _check_execution_nodes(conn: LedgerConnection, seen: _Seen, report: AuditReport) -> None:
    """Each execution node says what its execution.started (and execution.finished) events said."""
    for nid, kind, name, parent, status in conn.execute(queries.EXECUTION_NODE_ROWS).fetchall():
        where = f"execution_nodes row {nid}"
        if nid not in seen.nodes_started:
            report.add("execution", where, "no execution.started event records it")
            continue
        event_id, started = seen.nodes_started[nid]
        for field_name, value in (("kind", kind), ("name", name), ("parent_id", parent)):
            if started.get(field_name) != value:
                report.add("execution", where, f"{field_name} {value!r} differs from event #{event_id}")
        finished_id, finished = seen.nodes_finished.get(nid, (event_id, {"status": "RUNNING"}))
        if finished.get("status") != status:
            report.add("execution", where, f"status {status} but event #{finished_id} says {finished.get('status')}")


def _check_promotions(conn: LedgerConnection, seen: _Seen, report: AuditReport) -> None:
    fields = ("name", "version", "approver", "candidate_sha256", "skill_sha256", "verification_id")
    rows = conn.execute(queries.PROMOTION_ROWS).fetchall()
    ids = set()
    for row in rows:
        tid, status = row[0], row[1]
        ids.add(tid)
        where = f"promotions row {tid} ({row[2]} v{row[3]})"
        if tid not in seen.promotions:
            report.add("promotion", where, "no promotion.trusted event records it")
            continue
        event_id, data = seen.promotions[tid]
        for name, value in zip(fields, row[2:], strict=True):
            if data.get(name) != value:
                report.add("promotion", where, f"{name} {value!r} differs from event #{event_id} ({data.get(name)!r})")
        revoked = tid in seen.revoked
        if (status == "REVOKED") != revoked or status not in ("TRUSTED", "REVOKED"):
            said = f"REVOKED by event #{seen.revoked[tid]}" if revoked else "TRUSTED (no promotion.revoked event)"
            report.add("promotion", where, f"status {status} but the events say {said}")
    for missing in sorted(set(seen.promotions) - ids):
        report.add("promotion", f"promotion {missing}", "a promotion.trusted event records it but the row is missing")


def _check_builds(conn: LedgerConnection, seen: _Seen, report: AuditReport) -> None:
    for bid, status, candidate in conn.execute(queries.BUILD_ROWS).fetchall():
        where = f"builds row {bid}"
        if bid not in seen.builds_started:
            report.add("build", where, "no build.started event records it")
        if bid in seen.builds_finished:
            event_id, data = seen.builds_finished[bid]
            if data.get("status") != status or data.get("candidate_sha256") != candidate:
                report.add(
                    "build",
                    where,
                    f"status {status} / candidate {str(candidate)[:12]} differ from event #{event_id} "
                    f"({data.get('status')} / {str(data.get('candidate_sha256'))[:12]})",
                )
        elif status in ("SUCCEEDED", "FAILED"):
            report.add("build", where, f"status {status} but no build.finished event records the outcome")


def _check_verifications(conn: LedgerConnection, seen: _Seen, report: AuditReport) -> None:
    for vid, status, candidate in conn.execute(queries.VERIFICATION_ROWS).fetchall():
        where = f"verifications row {vid}"
        if vid not in seen.verifications:
            report.add("verification", where, "no verification.finished event records it")
            continue
        event_id, data = seen.verifications[vid]
        if data.get("status") != status or data.get("candidate_sha256") != candidate:
            report.add("verification", where, f"status or candidate differ from event #{event_id}")


def installed_expectations(conn: LedgerConnection) -> dict[str, tuple[int, str, str, str]]:
    """For each name with a TRUSTED version: (latest version, kind, code sha256, test sha256)."""
    wanted: dict[str, tuple[int, str, str, str]] = {}
    rows = conn.execute(queries.INSTALLED_EXPECTATIONS).fetchall()
    for name, version, kind, skill, test in rows:
        wanted[name] = (version, kind, skill, test)
    return wanted


def _check_installed(conn: LedgerConnection, workspace: Workspace, report: AuditReport) -> None:
    """skills/ and kernels/ hold exactly the latest TRUSTED version of each name, byte for byte, and nothing
    else."""
    vouched: set[str] = set()
    for name, (version, kind, code_sha, test_sha) in sorted(installed_expectations(conn).items()):
        for relative, digest in zip(installed_paths(kind, name), (code_sha, test_sha), strict=True):
            vouched.add(relative)
            path = workspace.root / relative
            if path.is_symlink() or not path.is_file():
                report.add("installed", relative, f"missing although {name} v{version} is TRUSTED")
                continue
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if actual != digest:
                report.add(
                    "installed", relative, f"sha256 {actual[:12]} is not {name} v{version}'s TRUSTED {digest[:12]}"
                )
    for relative in installed_files(workspace.root):
        if relative not in vouched:
            report.add("installed", relative, "no TRUSTED version vouches for this file")
