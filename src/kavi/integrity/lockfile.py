"""Writing and checking kavi.lock.

The lock is a pure function of the ledger's TRUSTED versions plus the chain head at the moment it was
written, so a re-run after a crash writes the same entries, and `verify-lock` can compare field by field.
The install transaction that calls :func:`write_lock` (the flock, settling the installed folders) is a stage,
:mod:`kavi.stages.install`, and so is re-running the gates (:mod:`kavi.stages.regate`): integrity never
imports a stage.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from kavi.artifacts import write_atomic
from kavi.errors import IntegrityError, KaviError
from kavi.integrity.lockdata import ENTRY_KEYS, LOCK_FILE, LOCK_VERSION, load_lock
from kavi.layout import installed_files, installed_paths
from kavi.ledger import queries
from kavi.ledger.chain import GENESIS
from kavi.ledger.connection import LedgerConnection, connect
from kavi.spec import validate_name
from kavi.workspace import Workspace

HEADER = (
    "# kavi.lock: the TRUSTED skill versions of this workspace. Written by kavi on every promote, revoke and\n"
    "# reject; commit it. `kavi verify-lock` checks skills/ against it (no ledger needed).\n"
)
# Where settle's atomic writes keep their temporaries (inside .kavi/, never in skills/ or the root).
INSTALL_TMP = "install-tmp"
EFFECT_PARAMS = ("write_roots", "allow_hosts", "secrets", "executables")

Problem = tuple[str, str]


# --- deriving the lock from the ledger ----------------------------------------------------------------------


def lock_entries(conn: LedgerConnection, artifacts_dir: Path) -> list[dict[str, Any]]:
    """Every TRUSTED version as a lock entry, ordered by name and version."""
    # ordered here, not by the server's collation: the lock must be the same bytes on every backend
    rows = sorted(conn.execute(queries.LOCK_ROWS).fetchall(), key=lambda row: (row[2], row[3]))
    latest: dict[str, int] = {}
    for row in rows:
        latest[row[2]] = max(latest.get(row[2], 0), row[3])
    entries = []
    for tid, pid, name, version, candidate, skill, test, spec_sha, effect, approver, promoted_at, kind in rows:
        spec_text = _artifact_text(artifacts_dir, spec_sha)
        spec = json.loads(spec_text)
        entries.append(
            {
                "name": name,
                "version": version,
                "kind": kind,
                "proposal_id": pid,
                "promotion_id": tid,
                "installed": version == latest[name],
                "side_effect": effect,
                "side_effect_params": {key: list(spec.get(key, [])) for key in EFFECT_PARAMS},
                "approver": approver,
                "promoted_at": promoted_at,
                "chain_head": _promotion_head(conn, pid, tid),
                "candidate_sha256": candidate,
                "spec_sha256": spec_sha,
                "spec": spec_text,
                "files": dict(zip(installed_paths(kind, name), (skill, test), strict=True)),
            }
        )
    return entries


def _artifact_text(root: Path, digest: str) -> str:
    try:
        data = (root / digest[:2] / digest).read_bytes()
    except FileNotFoundError:
        raise IntegrityError(
            f"the frozen spec {digest[:12]} is missing from the store", hint="run `kavi audit`"
        ) from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise IntegrityError(f"the frozen spec {digest[:12]} was modified in the store", hint="run `kavi audit`")
    return data.decode("utf-8")


def _promotion_head(conn: LedgerConnection, proposal_id: str, promotion_id: str) -> str:
    """The chain head right after the promotion committed: the hash of its last event (proposal.trusted)."""
    for digest, payload in conn.execute(queries.PROMOTION_HEAD_EVENTS, (proposal_id,)).fetchall():
        data = json.loads(payload)
        if data.get("promotion_id") == promotion_id:
            # a version adopted from a clone's lock keeps the head of the ledger that promoted it
            return str(data.get("adopted_chain_head") or digest)
    return GENESIS


def _adoption(conn: LedgerConnection) -> dict[str, Any]:
    """What `kavi init` recorded when this ledger began by adopting a clone's lock ({} otherwise)."""
    row = conn.execute(queries.LOCK_ADOPTION_EVENT).fetchone()
    return dict(json.loads(row[0])) if row else {}


def ledger_head(conn: LedgerConnection) -> tuple[str, int]:
    row = conn.execute(queries.LAST_EVENT).fetchone()
    return (str(row[1]), int(row[0])) if row else (GENESIS, 0)


def render_lock(conn: LedgerConnection, artifacts_dir: Path) -> bytes:
    head, count = ledger_head(conn)
    document = {
        "lock_version": LOCK_VERSION,
        "ledger_head": head,
        "ledger_events": count,
        "skill": lock_entries(conn, artifacts_dir),
    }
    return (HEADER + tomli_w.dumps(document)).encode("utf-8")


def write_lock(workspace: Workspace) -> Path:
    """Rewrite kavi.lock atomically from one snapshot of the ledger."""
    with connect(workspace.ledger_url) as conn, conn.snapshot():
        data = render_lock(conn, workspace.artifacts_dir)
    target = workspace.root / LOCK_FILE
    write_atomic(target, data, temp_dir=workspace.state_dir / INSTALL_TMP)
    return target


# --- checking --------------------------------------------------------------------------------------------


def read_lock_findings(root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    try:
        return load_lock(root), []
    except KaviError as exc:
        return None, [(LOCK_FILE, exc.message)]


def check_lock_files(root: Path, lock: dict[str, Any]) -> list[Problem]:
    """The lock against the files (no ledger needed): specs hash right, installed files are byte-exact,
    one installed version per name and it is the latest, and skills/ holds nothing the lock does not list."""
    problems: list[Problem] = []
    vouched: set[str] = set()
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in lock.get("skill", []):
        label = f"{LOCK_FILE} {entry['name']} v{entry['version']}"
        by_name.setdefault(entry["name"], []).append(entry)
        if hashlib.sha256(entry["spec"].encode("utf-8")).hexdigest() != entry["spec_sha256"]:
            problems.append((label, "the inline spec does not match spec_sha256"))
        try:
            expected = installed_paths(entry["kind"], validate_name(str(entry["name"])))
        except KaviError as exc:
            problems.append((label, exc.message))
            continue
        if sorted(entry["files"]) != sorted(expected):
            # Never read a path the kind would not install: a lock must not point kavi elsewhere.
            problems.append((label, f"files must be exactly {', '.join(expected)}"))
            continue
        if not entry["installed"]:
            continue
        for relative, digest in sorted(entry["files"].items()):
            vouched.add(relative)
            path = root / relative
            if path.is_symlink() or not path.is_file():
                problems.append((relative, f"missing although {label} is installed"))
                continue
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if actual != digest:
                problems.append((relative, f"sha256 {actual[:12]} is not the locked {str(digest)[:12]} ({label})"))
    for name, entries in sorted(by_name.items()):
        installed = [e for e in entries if e["installed"]]
        newest = max(e["version"] for e in entries)
        if len(installed) != 1 or installed[0]["version"] != newest:
            problems.append((f"{LOCK_FILE} {name}", f"exactly the newest version (v{newest}) must be installed"))
    for relative in installed_files(root):
        if relative not in vouched:
            problems.append((relative, f"{LOCK_FILE} does not vouch for this file"))
    return problems


def compare_lock_with_ledger(lock: dict[str, Any], conn: LedgerConnection, artifacts_dir: Path) -> list[Problem]:
    """Every lock entry must equal the one the ledger derives, and the lock's chain head must be in the chain."""
    problems: list[Problem] = []
    expected = {(e["name"], e["version"]): e for e in lock_entries(conn, artifacts_dir)}
    found = {(e["name"], e["version"]): e for e in lock.get("skill", [])}
    adoption = _adoption(conn)
    adopted_lock = (adoption.get("lock_ledger_head"), adoption.get("lock_ledger_events")) == (
        lock.get("ledger_head"),
        lock.get("ledger_events"),
    )
    # the committed lock a clone adopted may list older versions whose bytes the clone never had
    not_adopted = {(e["name"], e["version"]) for e in adoption.get("not_adopted", [])} if adopted_lock else set()
    for key in sorted(set(expected) | set(found)):
        label = f"{LOCK_FILE} {key[0]} v{key[1]}"
        if key not in found:
            problems.append((label, "the ledger has this TRUSTED version but the lock does not"))
        elif key not in expected and key in not_adopted:
            continue
        elif key not in expected:
            problems.append((label, "the lock lists it but the ledger has no such TRUSTED version"))
        else:
            for name in ENTRY_KEYS:
                if found[key][name] != expected[key][name]:
                    problems.append((label, f"{name} differs from the ledger"))
    head = lock.get("ledger_head")
    row = conn.execute(queries.EVENT_ID_BY_HASH, (head,)).fetchone() if head != GENESIS else (0,)
    if row is None and adopted_lock:
        return problems  # the committed lock this ledger adopted, unchanged since
    if row is None:
        problems.append((f"{LOCK_FILE} ledger_head", f"{str(head)[:12]} is not an event of this ledger"))
    elif row[0] != lock.get("ledger_events"):
        problems.append(
            (f"{LOCK_FILE} ledger_events", f"the head is event #{row[0]}, not #{lock.get('ledger_events')}")
        )
    return problems


@dataclass
class LockReport:
    lock: str
    entries: int
    ledger_checked: bool
    problems: list[Problem] = field(default_factory=list)
    regate: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "lock": self.lock,
            "entries": self.entries,
            "ledger_checked": self.ledger_checked,
            "problems": [{"where": w, "message": m} for w, m in self.problems],
            "regate": self.regate,
        }


def verify_lock(workspace: Workspace) -> LockReport:
    """Files against the lock always; the lock against the ledger when one exists. Re-running the gates is
    :func:`kavi.stages.regate.verify_lock_and_regate`."""
    lock = load_lock(workspace.root)
    report = LockReport(str(workspace.root / LOCK_FILE), len(lock.get("skill", [])), False)
    report.problems += check_lock_files(workspace.root, lock)
    if workspace.has_ledger():
        report.ledger_checked = True
        try:
            with connect(workspace.ledger_url) as conn, conn.snapshot():
                report.problems += compare_lock_with_ledger(lock, conn, workspace.artifacts_dir)
        except KaviError as exc:
            report.problems.append((LOCK_FILE, f"cannot derive the lock from the ledger: {exc.message}"))
    return report
