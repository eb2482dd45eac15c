"""Reading kavi.lock with the standard library only, for the hot `run-skill` path on a clone without a ledger.

kavi.lock is TOML, committed to git, and lists every TRUSTED version: its files' sha256, its frozen spec
(inline, with the spec's own sha256), its side-effect class and parameters, approver, promotion time and the
ledger's chain head. The writer is :mod:`kavi.integrity.lockfile`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from kavi.errors import IntegrityError, NotFoundError, TransitionError

LOCK_FILE = "kavi.lock"
LOCK_VERSION = 1
ENTRY_KEYS = (
    "name",
    "version",
    "kind",
    "proposal_id",
    "promotion_id",
    "installed",
    "side_effect",
    "side_effect_params",
    "approver",
    "promoted_at",
    "chain_head",
    "candidate_sha256",
    "spec_sha256",
    "spec",
    "files",
)


def load_lock(root: Path) -> dict[str, Any]:
    """Parse ``root/kavi.lock`` and check its shape; a malformed lock is an integrity failure, not a crash."""
    path = root / LOCK_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"no {LOCK_FILE} in {root}", hint="promote a skill to create it") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise IntegrityError(f"{LOCK_FILE} cannot be read: {exc}", hint="restore it from git") from None
    if data.get("lock_version") != LOCK_VERSION:
        raise IntegrityError(f"{LOCK_FILE} has lock_version {data.get('lock_version')!r}, expected {LOCK_VERSION}")
    entries = data.get("skill", [])
    if not isinstance(entries, list):
        raise IntegrityError(f"{LOCK_FILE}: [[skill]] must be an array of tables")
    for index, entry in enumerate(entries):
        missing = [key for key in ENTRY_KEYS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise IntegrityError(f"{LOCK_FILE}: skill entry {index + 1} lacks {', '.join(missing)}")
        if not isinstance(entry["files"], dict) or not isinstance(entry["spec"], str):
            raise IntegrityError(f"{LOCK_FILE}: skill entry {index + 1} has malformed files or spec")
    return data


def locked_entry(lock: dict[str, Any], name: str, version: int | None) -> dict[str, Any]:
    """The installed TRUSTED entry of ``name`` (or ``version`` of it, which must be the installed one)."""
    entries: list[dict[str, Any]] = [e for e in lock.get("skill", []) if e["name"] == name]
    if not entries:
        raise NotFoundError(f"{LOCK_FILE} has no TRUSTED skill named {name!r}", hint="`kavi verify-lock` lists them")
    installed = [e for e in entries if e["installed"]]
    if version is None:
        if not installed:
            raise IntegrityError(f"{LOCK_FILE} marks no version of {name} as installed")
        return installed[0]
    for entry in entries:
        if entry["version"] == version:
            if not entry["installed"]:
                raise TransitionError(
                    f"{name} v{version} is TRUSTED but not installed; without a ledger only the installed version"
                    " can run",
                    hint="run it in a workspace with a ledger and artifact store",
                )
            return entry
    raise NotFoundError(f"{LOCK_FILE} has no TRUSTED version {version} of {name}")
