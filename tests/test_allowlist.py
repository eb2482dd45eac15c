"""The diff allowlist and the build sandbox: every way out is refused, and nothing leaves on a refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kavi.sandbox.allowlist import judge_files, judge_sandbox, snapshot_tree
from kavi.sandbox.copy import make_build_sandbox, remove_sandbox
from kavi.stages.build import build_skill
from kavi.stages.common import Forge
from kavi.stages.propose import propose_skill
from tests.support import recording

ALLOWED = ("skills/word_count.py", "skills/test_word_count.py")
GOOD = b"x = 1\n"


def _sandbox(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "sandbox"
    (root / "skills").mkdir(parents=True)
    (root / "README.md").write_text("hello")
    return root, snapshot_tree(root)


def _write_allowed(root: Path) -> None:
    for path in ALLOWED:
        (root / path).write_bytes(GOOD)


def test_the_allowed_files_leave(tmp_path: Path) -> None:
    root, before = _sandbox(tmp_path)
    _write_allowed(root)
    verdict = judge_sandbox(root, before, ALLOWED, required=ALLOWED)
    assert verdict.accepted and verdict.files == dict.fromkeys(ALLOWED, GOOD)


ESCAPES = {
    "another file": lambda root: (root / "skills" / "helper.py").write_text("x"),
    "a changed file": lambda root: (root / "README.md").write_text("changed"),
    "a deleted file": lambda root: (root / "README.md").unlink(),
    "a symlink as the skill": lambda root: (
        (root / ALLOWED[0]).unlink(),
        (root / ALLOWED[0]).symlink_to("/etc/passwd"),
    ),
    "a symlinked skills folder": lambda root: (
        os.rename(root / "skills", root / "real"),
        (root / "skills").symlink_to(root / "real"),
    ),
    "a fifo": lambda root: ((root / ALLOWED[1]).unlink(), os.mkfifo(root / ALLOWED[1])),
    "a hard link": lambda root: ((root / ALLOWED[0]).unlink(), os.link(root / "README.md", root / ALLOWED[0])),
    "an oversized file": lambda root: (root / ALLOWED[0]).write_bytes(b"#" * 600_000),
    "non-UTF-8 bytes": lambda root: (root / ALLOWED[0]).write_bytes(b"\xff\xfe\x00"),
    "a new symlink elsewhere": lambda root: (root / "link").symlink_to("/"),
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_every_escape_fails_the_build_and_nothing_leaves(tmp_path: Path, escape: str) -> None:
    root, before = _sandbox(tmp_path)
    _write_allowed(root)
    ESCAPES[escape](root)
    verdict = judge_sandbox(root, before, ALLOWED, required=ALLOWED)
    assert not verdict.accepted, escape
    assert verdict.files == {}
    assert verdict.violations


def test_a_missing_required_file_fails(tmp_path: Path) -> None:
    root, before = _sandbox(tmp_path)
    (root / ALLOWED[0]).write_bytes(GOOD)
    verdict = judge_sandbox(root, before, ALLOWED, required=ALLOWED)
    assert not verdict.accepted and "did not write skills/test_word_count.py" in verdict.violations[0]


def test_resume_from_a_folder_accepts_flat_and_workspace_layouts(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "word_count.py").write_bytes(GOOD)
    (flat / "test_word_count.py").write_bytes(GOOD)
    assert judge_files(flat, ALLOWED, required=ALLOWED).files == dict.fromkeys(ALLOWED, GOOD)
    (flat / "extra.txt").write_text("no")
    refused = judge_files(flat, ALLOWED, required=ALLOWED)
    assert not refused.accepted and refused.files == {}


def test_resume_from_a_folder_refuses_symlinks(tmp_path: Path) -> None:
    folder = tmp_path / "from"
    (folder / "skills").mkdir(parents=True)
    (folder / ALLOWED[0]).symlink_to("/etc/hostname")
    (folder / ALLOWED[1]).write_bytes(GOOD)
    verdict = judge_files(folder, ALLOWED, required=ALLOWED)
    assert not verdict.accepted


def test_the_build_sandbox_leaves_secrets_and_state_behind(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    for relative in (
        ".env",
        ".env.local",
        "deploy.pem",
        "id_rsa",
        ".kavi/ledger.db",
        ".git/config",
        "config/credentials.json",
        "app/server.key",
        ".ssh/id_ed25519",
        "keep/me.py",
    ):
        (ws / relative).parent.mkdir(parents=True, exist_ok=True)
        (ws / relative).write_text("secret")
    sandbox = make_build_sandbox(ws, prefix="test")
    try:
        present = {p.relative_to(sandbox).as_posix() for p in sandbox.rglob("*") if p.is_file()}
        assert present == {"keep/me.py"}
    finally:
        remove_sandbox(sandbox)


def test_a_replay_that_writes_outside_the_allowlist_is_refused_and_recorded(forge: Forge, tmp_path: Path) -> None:
    proposed = propose_skill(
        forge,
        name="word_count",
        description="Count",
        side_effect="READ_ONLY",
        io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
    )
    rec = recording("word_count", tmp_path)
    (rec / "kavi.toml").write_text("[ledger]\nurl = 'sqlite:////tmp/evil.db'\n")
    built = build_skill(forge, proposed.proposal_id, builder_name="replay", builder_options={"source": str(rec)})
    assert built.status == "FAILED" and built.failure_kind == "GATE_VIOLATION"
    assert "kavi.toml" in (built.reason or "")
    assert built.candidate_sha256 is None and built.files == {}
    assert "evil" not in (forge.workspace.root / "kavi.toml").read_text()
    assert not (forge.workspace.skills_dir / "word_count.py").exists()
