"""Where TRUSTED code is installed: ``skills/`` for Python skills, ``kernels/`` for GPU kernels (stdlib only;
the audit, the lock and the run path share it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

INSTALL_DIRS = ("skills", "kernels")
# Never code that runs: caches, markers, and a kernel's reference files (proposal inputs, frozen in the ledger).
IGNORED_PARTS = frozenset({"__pycache__", ".gitkeep", ".gitignore", ".DS_Store"})
IGNORED_PREFIXES = ("kernels/references/",)


def install_dir(kind: str) -> str:
    return "kernels" if kind == "kernel" else "skills"


def installed_paths(kind: str, name: str) -> tuple[str, str]:
    """The code file and the test file of a TRUSTED version, relative to the workspace root."""
    folder = install_dir(kind)
    return f"{folder}/{name}.py", f"{folder}/test_{name}.py"


def installed_files(root: Path) -> Iterator[str]:
    """Every file under skills/ and kernels/ that a TRUSTED version must vouch for (relative paths)."""
    for folder in INSTALL_DIRS:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if IGNORED_PARTS & set(path.relative_to(base).parts) or (path.is_dir() and not path.is_symlink()):
                continue
            if relative.startswith(IGNORED_PREFIXES):
                continue
            yield relative
