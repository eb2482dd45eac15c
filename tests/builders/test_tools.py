"""The sandbox file tools: every way out of the sandbox is refused, and refusals are texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.builders.tools import (
    MAX_READ_BYTES,
    SandboxEscapeError,
    SandboxPathError,
    call_tool,
    changed_files,
    list_files,
    read_file,
    resolve_in_sandbox,
    snapshot,
    write_file,
)


@pytest.fixture
def box(tmp_path: Path) -> Path:
    folder = tmp_path / "box"
    (folder / "skills").mkdir(parents=True)
    (folder / "skills" / "a.py").write_text("x = 1\n")
    (tmp_path / "secret.txt").write_text("top secret")
    (folder / "out").symlink_to(tmp_path)
    (folder / "secret_link").symlink_to(tmp_path / "secret.txt")
    (folder / "inner_link").symlink_to(folder / "skills" / "a.py")
    return folder


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "skills/../../secret.txt",
        "/etc/passwd",
        "~/x",
        "out/secret.txt",
        "secret_link",
        "inner_link",  # even a link that stays inside: no symlink is followed
        "out/new.txt",
    ],
)
def test_escapes_are_denied(box: Path, path: str) -> None:
    with pytest.raises(SandboxEscapeError):
        resolve_in_sandbox(box, path)
    result = call_tool(box, "read_file", {"path": path})
    assert result.denied and not result.ok and "top secret" not in result.text
    assert call_tool(box, "write_file", {"path": path, "content": "pwned"}).denied
    assert (box.parent / "secret.txt").read_text() == "top secret"
    assert not (box.parent / "new.txt").exists()


@pytest.mark.parametrize("path", ["", "   ", "a\x00b", "skills\\a.py"])
def test_malformed_paths_are_errors_not_denials(box: Path, path: str) -> None:
    with pytest.raises(SandboxPathError):
        resolve_in_sandbox(box, path)
    result = call_tool(box, "read_file", {"path": path})
    assert not result.ok and not result.denied


def test_write_read_list_round_trip(box: Path) -> None:
    assert write_file(box, "skills/deep/new.py", "y = 2\n") == "wrote 6 bytes to skills/deep/new.py"
    assert read_file(box, "skills/deep/new.py") == "y = 2\n"
    (box / ".git").mkdir()
    (box / ".git" / "HEAD").write_text("ref")
    listing = list_files(box, ".").splitlines()
    assert "skills/a.py" in listing and "skills/deep/new.py" in listing
    assert not any(line.startswith(".git/") for line in listing)
    assert list_files(box, "skills/deep") == "skills/deep/new.py"


def test_limits_and_kinds(box: Path) -> None:
    (box / "big.txt").write_text("z" * (MAX_READ_BYTES + 10))
    assert read_file(box, "big.txt").endswith(f"[... cut: the file has {MAX_READ_BYTES + 10} bytes]")
    with pytest.raises(SandboxPathError, match="over the"):
        write_file(box, "huge.txt", "z" * 2_000_000)
    with pytest.raises(SandboxPathError, match="is a folder"):
        write_file(box, "skills", "x")
    with pytest.raises(SandboxPathError, match="not a file"):
        read_file(box, "skills/missing.py")
    assert call_tool(box, "read_file", {"path": "skills/missing.py"}).text.startswith("error:")
    assert not call_tool(box, "exec", {}).ok


def test_snapshot_reports_created_modified_deleted(box: Path) -> None:
    before = snapshot(box)
    (box / "skills" / "a.py").write_text("x = 2\n")
    (box / "skills" / "b.py").write_text("")
    (box / "inner_link").unlink()
    assert changed_files(before, snapshot(box)) == {
        "created": ["skills/b.py"],
        "modified": ["skills/a.py"],
        "deleted": ["inner_link"],
    }
