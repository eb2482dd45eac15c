"""A fresh clone of this repository at its committed HEAD, as a CI job or a new user gets it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO


def fresh_clone(target: Path) -> Path:
    """``git clone`` of this checkout's HEAD into ``target`` (uncommitted changes are not in it, as in CI)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout of kavi")
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True, capture_output=True)
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", "--detach", head], check=True, capture_output=True)
    assert not (target / ".kavi").exists(), "a clone holds no ledger: .kavi/ is not committed"
    return target
