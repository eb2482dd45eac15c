"""Where TRUSTED code is installed: each kind's folder (``skills/``, ``kernels/``) from :mod:`kavi.kinds`
(the audit, the lock and the attestations share it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kavi.kinds import KINDS, install_dirs, kind_of

# Never code that runs: caches and markers.
IGNORED_PARTS = frozenset({"__pycache__", ".gitkeep", ".gitignore", ".DS_Store"})


def installed_paths(kind: str, name: str) -> tuple[str, str]:
    """The code file and the test file of a TRUSTED version, relative to the workspace root."""
    return kind_of(kind).installed_paths(name)


def _inputs_prefixes() -> tuple[str, ...]:
    """A kind's proposal inputs (a kernel's reference files), frozen in the ledger and never run."""
    return tuple(f"{kind.install_dir}/{folder}/" for kind in KINDS.values() for folder in kind.inputs_dirs)


def installed_files(root: Path) -> Iterator[str]:
    """Every file under the kinds' folders that a TRUSTED version must vouch for (relative paths)."""
    ignored_prefixes = _inputs_prefixes()
    for folder in install_dirs():
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if IGNORED_PARTS & set(path.relative_to(base).parts) or (path.is_dir() and not path.is_symlink()):
                continue
            if relative.startswith(ignored_prefixes):
                continue
            yield relative
