"""File tools confined to a sandbox, for builders that drive a model through tool calls.

A model names paths; it never gets a file handle. Each path is checked before use: relative, no
``..``, no symlink anywhere on the way, and resolving inside the sandbox. A refused or failed call
is returned to the model as an error text (a model can correct itself); it is never an exception
that ends the build.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MAX_READ_BYTES = 200_000
MAX_WRITE_BYTES = 1_000_000
MAX_LISTED = 500
_SKIPPED_DIRS = frozenset({".git", ".kavi", "__pycache__", ".venv", "node_modules", ".mypy_cache"})


class SandboxPathError(ValueError):
    """A path that a tool cannot use: malformed, missing, or of the wrong kind."""


class SandboxEscapeError(SandboxPathError):
    """A path that reaches, or tries to reach, outside the sandbox: a denial, not a mistake."""


def resolve_in_sandbox(sandbox: Path, relative: str) -> Path:
    """Return the absolute path of ``relative`` inside ``sandbox``, or raise SandboxPathError."""
    if not isinstance(relative, str) or not relative.strip():
        raise SandboxPathError("the path must be a non-empty string")
    if "\x00" in relative or "\\" in relative:
        raise SandboxPathError(f"{relative!r}: use forward slashes and no NUL characters")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or relative.startswith("~"):
        raise SandboxEscapeError(f"{relative!r} is absolute: give a path relative to the sandbox")
    if ".." in pure.parts:
        raise SandboxEscapeError(f"{relative!r} contains '..'")
    root = sandbox.resolve()
    current = root
    for part in pure.parts:
        if part == ".":
            continue
        current = current / part
        if current.is_symlink():
            raise SandboxEscapeError(f"{relative!r} goes through a symbolic link")
    resolved = current.resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise SandboxEscapeError(f"{relative!r} resolves outside the sandbox")
    return resolved


def read_file(sandbox: Path, path: str) -> str:
    """The text of a file in the sandbox, cut at MAX_READ_BYTES."""
    target = resolve_in_sandbox(sandbox, path)
    if not target.is_file():
        raise SandboxPathError(f"{path!r} is not a file")
    data = target.read_bytes()
    text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
    if len(data) > MAX_READ_BYTES:
        text += f"\n[... cut: the file has {len(data)} bytes]"
    return text


def list_files(sandbox: Path, path: str = ".") -> str:
    """The files under a folder of the sandbox, one relative path a line."""
    folder = resolve_in_sandbox(sandbox, path or ".")
    if not folder.is_dir():
        raise SandboxPathError(f"{path!r} is not a folder")
    root = sandbox.resolve()
    found: list[str] = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIPPED_DIRS)
        for name in sorted(files):
            found.append(Path(directory, name).relative_to(root).as_posix())
            if len(found) >= MAX_LISTED:
                return "\n".join([*found, f"[... more than {MAX_LISTED} files]"])
    return "\n".join(found) if found else "(no files)"


def write_file(sandbox: Path, path: str, content: str) -> str:
    """Create or replace a text file in the sandbox (parent folders included)."""
    if not isinstance(content, str):
        raise SandboxPathError("content must be a string")
    data = content.encode("utf-8")
    if len(data) > MAX_WRITE_BYTES:
        raise SandboxPathError(f"content of {len(data)} bytes is over the {MAX_WRITE_BYTES} limit")
    target = resolve_in_sandbox(sandbox, path)
    if target == sandbox.resolve() or target.is_dir():
        raise SandboxPathError(f"{path!r} is a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.kavi-tmp")
    temporary.write_bytes(data)
    temporary.replace(target)
    return f"wrote {len(data)} bytes to {path}"


@dataclass(frozen=True)
class SandboxTool:
    """One tool offered to a model: its JSON schema and the function behind it."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[Path, Mapping[str, Any]], str]

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def _string_param(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


SANDBOX_TOOLS: tuple[SandboxTool, ...] = (
    SandboxTool(
        name="read_file",
        description="Read a text file of the sandbox. Paths are relative to the sandbox root.",
        parameters={
            "type": "object",
            "properties": {"path": _string_param("relative path, e.g. skills/name.py")},
            "required": ["path"],
        },
        run=lambda sandbox, args: read_file(sandbox, str(args.get("path", ""))),
    ),
    SandboxTool(
        name="list_files",
        description="List the files under a folder of the sandbox (default: the root).",
        parameters={
            "type": "object",
            "properties": {"path": _string_param("relative folder, default '.'")},
        },
        run=lambda sandbox, args: list_files(sandbox, str(args.get("path", ".") or ".")),
    ),
    SandboxTool(
        name="write_file",
        description="Create or replace a text file of the sandbox with the given content.",
        parameters={
            "type": "object",
            "properties": {
                "path": _string_param("relative path, e.g. skills/name.py"),
                "content": _string_param("the whole new content of the file"),
            },
            "required": ["path", "content"],
        },
        run=lambda sandbox, args: write_file(
            sandbox,
            str(args.get("path", "")),
            args.get("content"),  # type: ignore[arg-type]
        ),
    ),
)
TOOLS_BY_NAME: dict[str, SandboxTool] = {tool.name: tool for tool in SANDBOX_TOOLS}


@dataclass(frozen=True)
class ToolResult:
    """What a tool call gave: the text for the model, and whether it failed or was a denial."""

    ok: bool
    text: str
    denied: bool = False


def call_tool(sandbox: Path, name: str, arguments: Mapping[str, Any]) -> ToolResult:
    """Run one tool call. A refusal or an I/O error is a text for the model, never a raise."""
    tool = TOOLS_BY_NAME.get(name)
    if tool is None:
        return ToolResult(False, f"error: no tool named {name!r}; use one of {sorted(TOOLS_BY_NAME)}")
    try:
        return ToolResult(True, tool.run(sandbox, arguments))
    except SandboxEscapeError as error:
        return ToolResult(False, f"denied: {error}", denied=True)
    except (SandboxPathError, OSError, UnicodeError) as error:
        return ToolResult(False, f"error: {error}")


# --- what changed ---------------------------------------------------------------------------------


def snapshot(sandbox: Path) -> dict[str, str]:
    """A digest per file of the sandbox, to report which files a builder created or changed."""
    root = sandbox.resolve()
    digests: dict[str, str] = {}
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in _SKIPPED_DIRS]
        for name in files:
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                digests[relative] = "symlink:" + str(path.readlink())
                continue
            try:
                digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digests[relative] = "unreadable"
    return digests


def changed_files(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, list[str]]:
    """Created, modified and deleted paths between two snapshots, sorted."""
    return {
        "created": sorted(set(after) - set(before)),
        "modified": sorted(p for p in set(after) & set(before) if after[p] != before[p]),
        "deleted": sorted(set(before) - set(after)),
    }
