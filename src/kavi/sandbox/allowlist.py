"""The diff allowlist: what a builder changed in its sandbox, and whether any of it may leave.

Only the paths of the build's allowlist may be created or changed, each as a regular UTF-8 file reached
without a symlink. Anything else the builder touched fails the build with the reason, and then nothing at
all leaves the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILE_BYTES = 512 * 1024
# Tool caches a builder's own tools may leave behind; they never leave the sandbox either way.
IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"})
IGNORED_FILES = frozenset({"BUILD_PACKET.md", ".kavi_build_packet.json"})

Snapshot = dict[str, str]  # relative path -> "file:<sha256>", "link:<target>" or "other:<mode>"


def snapshot_tree(root: Path) -> Snapshot:
    """Describe every entry under ``root`` without following any symlink."""
    result: Snapshot = {}
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(directory)
        for name in list(dirnames):
            path = base / name
            if name in IGNORED_DIRS and not path.is_symlink():
                dirnames.remove(name)
            elif path.is_symlink():
                result[_rel(root, path)] = f"link:{path.readlink()}"
        for name in filenames:
            path = base / name
            relative = _rel(root, path)
            if relative in IGNORED_FILES:
                continue
            result[relative] = _describe(path)
    return result


def _describe(path: Path) -> str:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return f"link:{path.readlink()}"
    if not stat.S_ISREG(info.st_mode):
        return f"other:{stat.filemode(info.st_mode)}"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"file:{digest.hexdigest()}"


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def snapshot_to_bytes(snapshot: Snapshot) -> bytes:
    return json.dumps(snapshot, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class DiffVerdict:
    """The files that may leave (path -> bytes) or, when ``violations`` is not empty, nothing at all."""

    files: dict[str, bytes] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.violations


def judge_sandbox(
    sandbox: Path, before: Snapshot, allowed: tuple[str, ...], *, required: tuple[str, ...]
) -> DiffVerdict:
    """Compare the sandbox with ``before`` and decide what, if anything, leaves it."""
    after = snapshot_tree(sandbox)
    verdict = DiffVerdict()
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        verdict.changed.append(path)
        if path not in allowed:
            action = "deleted" if new is None else "created" if old is None else "changed"
            verdict.violations.append(f"{action} {path}, which is outside the allowlist")
    for path in allowed:  # the candidate is every allowed file as the builder left it, changed or not
        if path in after:
            content = _read_allowed(sandbox, path, verdict.violations)
            if content is not None:
                verdict.files[path] = content
    for path in required:
        if path not in after:
            verdict.violations.append(f"the builder did not write {path}")
    if verdict.violations:
        verdict.files = {}
    return verdict


def judge_files(source: Path, allowed: tuple[str, ...], *, required: tuple[str, ...]) -> DiffVerdict:
    """Judge a folder handed over by a person (``--resume --from DIR``): every file in it must be allowed.

    DIR may be laid out like the workspace (``skills/x.py``) or flat (``x.py``).
    """
    verdict = DiffVerdict()
    flat = {Path(path).name: path for path in allowed}
    listing = snapshot_tree(source)
    for relative in sorted(listing):
        target = relative if relative in allowed else flat.get(relative)
        if target is None:
            verdict.violations.append(f"{relative} is not one of the allowed files ({', '.join(allowed)})")
            continue
        content = _read_allowed(source, relative, verdict.violations, shown=target)
        if content is not None:
            verdict.files[target] = content
            verdict.changed.append(target)
    for path in required:
        if path not in verdict.files and not verdict.violations:
            verdict.violations.append(f"{source} holds no {path} (or {Path(path).name})")
    if verdict.violations:
        verdict.files = {}
    return verdict


def _read_allowed(root: Path, relative: str, violations: list[str], *, shown: str | None = None) -> bytes | None:
    """Read an allowed file refusing symlinks (in the path or the file), non-regular files, escapes,
    oversized and non-UTF-8 content. The file is opened with O_NOFOLLOW and checked on the open handle."""
    label = shown or relative
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts:
        violations.append(f"{label}: the path escapes the sandbox")
        return None
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink() or not current.is_dir():
            violations.append(f"{label}: {current.relative_to(root).as_posix()} is a symlink or not a folder")
            return None
    path = root / relative
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        violations.append(f"{label}: cannot be read as a regular file ({exc.strerror})")
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            violations.append(f"{label}: is not a regular file")
            return None
        if info.st_nlink > 1:
            violations.append(f"{label}: is a hard link to another file")
            return None
        if info.st_size > MAX_FILE_BYTES:
            violations.append(f"{label}: is larger than {MAX_FILE_BYTES} bytes")
            return None
        content = handle.read(MAX_FILE_BYTES + 1)
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        violations.append(f"{label}: is not UTF-8 text")
        return None
    return content
