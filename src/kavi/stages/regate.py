"""Re-gating: run each installed locked version's gates again from kavi.lock alone (no ledger), as CI does.

The lock carries every version's file hashes and its frozen spec, and the spec names its kind, so the gates
of that kind (:mod:`kavi.kinds`) run on exactly the locked bytes. A file that does not match the lock is not
gated: :func:`kavi.integrity.lockfile.verify_lock` already reports it. A kernel without a GPU (or without
torch) gets its gates' own SKIPPED results with the reason; Triton's CPU interpreter checks correctness where
torch and triton are installed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kavi.errors import KaviError
from kavi.integrity.lockdata import LOCK_FILE, load_lock
from kavi.integrity.lockfile import LockReport, verify_lock
from kavi.kinds import load_any_spec
from kavi.stages.verify import run_gates
from kavi.workspace import Workspace

_ACCEPTED = ("pass", "skipped")


def verify_lock_and_regate(workspace: Workspace, *, regate: bool = False) -> LockReport:
    """`kavi verify-lock [--regate]`: the lock's checks, then (on request) every gate again."""
    report = verify_lock(workspace)
    if not regate:
        return report
    report.regate = regate_locked(workspace, load_lock(workspace.root))
    for result in report.regate:
        where = result["files"][0] if result["files"] else f"{LOCK_FILE} {result['name']}"
        if result.get("not_gated"):
            report.problems.append((where, f"not re-gated: {result['not_gated']}"))
        report.problems += [
            (where, f"gate {gate['gate']} now says {gate['status']}: {gate['summary']}")
            for gate in result["gates"]
            if gate["status"] not in _ACCEPTED
        ]
    return report


def regate_locked(workspace: Workspace, lock: dict[str, Any]) -> list[dict[str, Any]]:
    """The gates of every installed locked version, run again on its locked files and frozen spec."""
    results = []
    for entry in lock.get("skill", []):
        if not entry["installed"]:
            continue
        result: dict[str, Any] = {
            "name": entry["name"],
            "version": entry["version"],
            "kind": entry["kind"],
            "files": sorted(entry["files"]),
            "gates": [],
        }
        results.append(result)
        try:
            spec = load_any_spec(entry["spec"].encode("utf-8"))
        except KaviError as exc:
            result["not_gated"] = f"its frozen spec cannot be read: {exc.message}"
            continue
        if spec.kind != entry["kind"] or spec.name != entry["name"]:
            result["not_gated"] = f"its frozen spec is {spec.kind} {spec.name!r}, not what the entry says"
            continue
        if sorted(entry["files"]) != sorted(spec.allowed_paths):
            # Only the kind's own two paths: a lock naming others must never make kavi read or write there.
            result["not_gated"] = f"it lists files other than {', '.join(spec.allowed_paths)}"
            continue
        files = _locked_files(workspace, entry)
        if files is None:
            result["not_gated"] = f"its files do not match {LOCK_FILE}"
            continue
        result["gates"] = [
            {"gate": gate.gate, "status": str(gate.status), "summary": gate.summary}
            for gate in run_gates(workspace, spec, files)
        ]
    return results


def _locked_files(workspace: Workspace, entry: dict[str, Any]) -> dict[str, bytes] | None:
    """The entry's files, read once and hash-checked; None when any is missing or differs."""
    files = {}
    for relative, digest in entry["files"].items():
        path = workspace.root / relative
        if path.is_symlink() or not path.is_file():
            return None
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            return None
        files[relative] = data
    return files
