"""The install transaction: bring ``skills/`` and ``kernels/`` in line with the ledger and rewrite kavi.lock.

The ledger commits first (promote, revoke, reject), then :func:`settle` installs. Writers hold
``.kavi/install.lock`` (an flock) while they read the ledger and rewrite the kinds' folders and the lock, so two
processes can never leave an older state on disk after a newer one. A command killed between its commit and
its install is completed by the next one, which settles first (decision 20). The lock itself is derived by
:mod:`kavi.integrity.lockfile`, which never imports a stage.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlmodel import col, select

from kavi.artifacts import sha256_bytes, write_atomic
from kavi.crash import crashpoint
from kavi.integrity.lockfile import INSTALL_TMP, write_lock
from kavi.ledger import queries
from kavi.ledger.connection import connect
from kavi.ledger.models import Proposal
from kavi.stages.common import Forge, trusted_versions
from kavi.workspace import Workspace


@contextmanager
def install_lock(workspace: Workspace) -> Iterator[None]:
    """Serialise every rewrite of the installed folders and kavi.lock across processes."""
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    with (workspace.state_dir / "install.lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def settle(forge: Forge, names: Iterable[str] | None = None) -> list[str]:
    """Make the installed folders match the ledger for ``names`` (every promoted name when None) and
    rewrite kavi.lock.

    Called after every promote, revoke and reject commits, and before each starts, so a command killed
    between its commit and the install is completed by the next one (decision 20). Returns changed paths.
    """
    workspace = forge.workspace
    with install_lock(workspace):
        _remove_stale_temps(workspace.state_dir / INSTALL_TMP)
        _remove_stale_temps(workspace.skills_dir)  # left by kavi versions that kept temporaries in place
        if names is None:
            with connect(workspace.ledger_url) as conn:
                names = sorted(row[0] for row in conn.execute(queries.PROMOTED_NAMES))
        changed: list[str] = []
        for name in names:
            changed += sync_installed(forge, name)
        crashpoint("settle.synced")
        write_lock(workspace)
    return changed


def _remove_stale_temps(folder: Path, prefix: str = ".") -> None:
    """Temporary files of an atomic write killed before its rename (``.<name>.<random>.tmp``)."""
    if folder.is_dir():
        for stale in folder.glob(f"{prefix}*.tmp"):
            stale.unlink(missing_ok=True)


def sync_installed(forge: Forge, name: str) -> list[str]:
    """Make the kind's folder hold exactly the latest TRUSTED version of ``name``, or nothing.
    Idempotent: re-running it completes an interrupted promotion or revocation."""
    with forge.ledger.reading() as session:
        versions = trusted_versions(session, name)
        proposal = session.exec(
            select(Proposal).where(Proposal.name == name).order_by(col(Proposal.created_at).desc())
        ).first()
        spec = forge.spec_of(proposal) if proposal else None
        wanted = versions[0] if versions else None
    if spec is None:
        return []
    main_path, test_path = spec.allowed_paths
    targets = (
        (forge.workspace.root / main_path, wanted.skill_sha256 if wanted else None),
        (forge.workspace.root / test_path, wanted.test_sha256 if wanted else None),
    )
    changed = []
    for path, digest in targets:
        if digest is None:
            if path.exists() or path.is_symlink():
                path.unlink()
                changed.append(path.relative_to(forge.workspace.root).as_posix())
            continue
        if path.is_file() and not path.is_symlink() and sha256_bytes(path.read_bytes()) == digest:
            continue
        if path.is_symlink():
            path.unlink()
        write_atomic(path, forge.store.get(digest), temp_dir=forge.workspace.state_dir / INSTALL_TMP)
        changed.append(path.relative_to(forge.workspace.root).as_posix())
    return changed
