"""Build sandboxes: a copy of the workspace in a fresh temporary folder, with secrets left behind.

What never enters a sandbox: kavi's own state (.kavi/), version control (.git/, whose remotes and hooks a
builder has no business seeing), dependency and cache folders, and anything that looks like a secret.
"""

from __future__ import annotations

import fnmatch
import shutil
import tempfile
from pathlib import Path

SKIPPED_DIRS = frozenset(
    {
        ".kavi",
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        ".tox",
        ".ssh",
        ".aws",
        ".gnupg",
        ".docker",
        ".kube",
    }
)
SECRET_PATTERNS = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    "*.kdbx",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    "credentials",
    "credentials.*",
    "*credentials*.json",
    "secrets.*",
    "*.secret",
    "*.secrets",
    "service-account*.json",
    ".htpasswd",
)


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in SECRET_PATTERNS)


def make_build_sandbox(workspace_root: Path, *, prefix: str) -> Path:
    """Copy the workspace into a new folder under the system temp dir and return it.

    Symlinks are copied as links (never followed), so a link pointing outside cannot drag outside content
    in; the allowlist later refuses any link the builder adds.
    """
    sandbox = Path(tempfile.mkdtemp(prefix=f"kavi-{prefix}-"))
    try:
        _copy_tree(workspace_root, sandbox)
    except BaseException:
        remove_sandbox(sandbox)  # a half-made sandbox is nobody's to clean up later
        raise
    return sandbox


def _copy_tree(source: Path, target: Path) -> None:
    for entry in source.iterdir():
        try:
            if entry.is_dir() and not entry.is_symlink():
                if entry.name in SKIPPED_DIRS:
                    continue
                destination = target / entry.name
                destination.mkdir()
                _copy_tree(entry, destination)
            elif entry.is_symlink() or entry.is_file():
                if is_secret(entry.name):
                    continue
                shutil.copy2(entry, target / entry.name, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed while we copied (another kavi process settling skills/): it is not there now


def remove_sandbox(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
