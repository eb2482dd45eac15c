"""Ledger benchmark: 10k proposals and 100k chained events, then list-proposals and a full audit, on SQLite
and on Postgres side by side (the SQLite ledger is copied with `kavi ledger migrate`'s copy, also timed).

Run: uv run python benchmarks/ledger.py [--proposals N] [--events-per-proposal K] [--keep DIR]
     [--postgres-url postgresql://...  (an empty database; default: a throwaway local server)] [--sqlite-only]
Rows are inserted with raw SQL, but every event carries a real chained hash (the audit recomputes them all),
and every proposal's frozen spec is a real artifact in the store (the audit re-hashes them all).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kavi.integrity.audit import audit_workspace
from kavi.ledger.chain import GENESIS, canonical_payload, event_hash
from kavi.ledger.copy import copy_ledger
from kavi.stages.common import Forge
from kavi.stages.queries import list_proposals
from kavi.workspace import Workspace, init_workspace

STEPS = (
    ("proposal.built", "PROPOSED", "BUILT"),
    ("proposal.verified", "BUILT", "VERIFIED"),
)


def populate(workspace: Workspace, proposals: int, per_proposal: int) -> int:
    """Insert ``proposals`` proposals with ``per_proposal`` events each; returns the event count."""
    conn = sqlite3.connect(workspace.ledger_path or "")
    conn.execute("PRAGMA journal_mode = WAL")
    prev, event_id = GENESIS, 0
    events: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    artifacts: list[tuple[Any, ...]] = []
    base = time.time()

    def add(kind: str, pid: str, bid: str | None, payload: dict[str, Any], ts: str) -> None:
        nonlocal prev, event_id
        event_id += 1
        body = canonical_payload(payload)
        digest = event_hash(
            prev_hash=prev, event_id=event_id, ts=ts, kind=kind, proposal_id=pid, build_id=bid, payload=body
        )
        events.append((event_id, ts, kind, pid, bid, body, prev, digest))
        prev = digest

    for index in range(proposals):
        pid, bid, name = f"p_{index:012x}", f"b_{index:012x}", f"skill_{index:05d}"
        spec = json.dumps({"name": name, "description": f"benchmark skill {index}"}, sort_keys=True).encode()
        sha = hashlib.sha256(spec).hexdigest()
        path = workspace.artifacts_dir / sha[:2] / sha
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(spec)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + index)) + ".000000+00:00"
        artifacts.append((sha, "SPEC", len(spec), ts))
        add("proposal.proposed", pid, None, {"name": name, "spec_sha256": sha, "side_effect": "READ_ONLY"}, ts)
        status = "PROPOSED"
        fillers = per_proposal - 1 - len(STEPS)
        for step in range(fillers):
            add(f"trace.step{step}", pid, bid, {"n": step, "text": "x" * 40}, ts)
        for kind, before, after in STEPS:
            add(kind, pid, bid, {"from": before, "to": after}, ts)
            status = after
        rows.append((pid, name, "python", f"benchmark skill {index}", "READ_ONLY", sha, status, ts, ts))
    conn.executemany("INSERT INTO artifacts VALUES (?, ?, ?, ?)", artifacts)
    conn.executemany(
        "INSERT INTO proposals (id, name, kind, description, side_effect, spec_sha256, status, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
    conn.commit()
    conn.close()
    return event_id


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def measure(workspace: Workspace, repeat: int) -> dict[str, float]:
    """The timed operations on one workspace's ledger (whichever backend kavi.toml, or the view, names)."""
    forge = Forge.open(workspace)
    try:
        t_list, listed = timed(lambda: list_proposals(forge), repeat)
        t_page, _ = timed(lambda: list_proposals(forge, limit=50), repeat)
    finally:
        forge.close()
    t_audit, report = timed(lambda: audit_workspace(workspace), repeat)
    t_quick, _ = timed(lambda: audit_workspace(workspace, quick=True), repeat)
    assert report.ok, [f.line() for f in report.findings[:5]]
    return {"list": t_list, "page": t_page, "audit": t_audit, "quick": t_quick, "listed": len(listed)}


def postgres_database(given: str | None) -> tuple[str, Callable[[], None]]:
    """An empty database: in the server ``given`` names (it must be empty), or in a throwaway cluster started
    the way the tests start theirs (tests/postgres.py: Debian's postgresql, a unix socket)."""
    if given:
        return given, lambda: None
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.postgres import start_server

    server = start_server()
    return server.create_database(), server.stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proposals", type=int, default=10_000)
    parser.add_argument("--events-per-proposal", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the ledger here and keep it")
    parser.add_argument("--postgres-url", help="an empty Postgres database (default: start a throwaway server)")
    parser.add_argument("--sqlite-only", action="store_true", help="skip the Postgres column")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="kavi-bench-")) / "ws"
    workspace, _ = init_workspace(root)
    Forge.open(workspace).close()
    started = time.perf_counter()
    events = populate(workspace, args.proposals, args.events_per_proposal)
    setup = time.perf_counter() - started
    results = {"sqlite": measure(workspace, args.repeat)}
    copy_s = float("nan")
    if not args.sqlite_only:
        url, stop = postgres_database(args.postgres_url)
        try:
            started = time.perf_counter()
            copy_ledger(workspace.ledger_url, url)
            copy_s = time.perf_counter() - started
            results["postgres"] = measure(workspace.with_ledger(url), args.repeat)
        finally:
            stop()
    for column in results.values():
        assert column["listed"] == args.proposals
    rows = [
        (f"list_proposals (all {args.proposals})", "list", "target <= 0.100 s"),
        ("list_proposals (limit 50, as status)", "page", ""),
        (f"audit, full ({events} events, {args.proposals} artifacts)", "audit", "target <= 2.0 s"),
        ("audit --quick", "quick", ""),
    ]
    backends = list(results)
    print(f"{'operation':<56} " + " ".join(f"{name:>9}" for name in backends) + "  note")
    print(f"{'setup (raw inserts into SQLite, chained hashes)':<56} {setup:>9.3f}")
    if "postgres" in results:
        print(f"{'kavi ledger migrate: copy SQLite -> Postgres':<56} {'':>9} {copy_s:>9.3f}")
    for label, key, note in rows:
        print(f"{label:<56} " + " ".join(f"{results[name][key]:>9.3f}" for name in backends) + f"  {note}")
    if "postgres" in results:
        ratio = results["postgres"]["audit"] / results["sqlite"]["audit"]
        print(f"{'audit, full: postgres / sqlite':<56} {'':>9} {ratio:>8.2f}x")


if __name__ == "__main__":
    main()
