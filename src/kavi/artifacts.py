"""The content-addressed artifact store: every frozen thing (spec, packet, candidate file, gate report)
lives under ``.kavi/artifacts/<sha[:2]>/<sha>`` and is read back only after its hash is checked."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from kavi.crash import crashpoint
from kavi.errors import IntegrityError, NotFoundError


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes, *, temp_dir: Path | None = None) -> None:
    """Write to a temporary name, fsync, then rename: a crash leaves old or new, never half.

    The temporary lives next to ``path`` unless ``temp_dir`` (on the same file system) is given: files in the
    workspace use ``.kavi/`` so a concurrent build's sandbox copy never meets a half-written temporary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = temp_dir or path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        crashpoint("write_atomic")
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class ArtifactStore:
    """``fetch``, when given, is the store the ledger names (its database): an artifact missing from the folder
    is fetched from it by hash, checked, and kept in the folder, which is then a cache."""

    def __init__(self, root: Path, fetch: Callable[[str], bytes | None] | None = None) -> None:
        self.root = root
        self.fetch = fetch

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its sha256."""
        digest = sha256_bytes(data)
        target = self.path_of(digest)
        if not target.exists():
            write_atomic(target, data)
        return digest

    def get(self, sha256: str) -> bytes:
        """Read an artifact back, refusing bytes that no longer match their name."""
        try:
            data = self.path_of(sha256).read_bytes()
        except FileNotFoundError:
            return self._fetched(sha256)
        if sha256_bytes(data) != sha256:
            raise IntegrityError(f"artifact {sha256[:12]} was modified on disk", hint="run `kavi audit`")
        return data

    def _fetched(self, sha256: str) -> bytes:
        data = self.fetch(sha256) if self.fetch is not None else None
        if data is None:
            raise NotFoundError(f"artifact {sha256[:12]} is missing from the store")
        if sha256_bytes(data) != sha256:
            raise IntegrityError(
                f"artifact {sha256[:12]} in the ledger's database does not match its hash", hint="run `kavi audit`"
            )
        write_atomic(self.path_of(sha256), data)
        return data
