"""The README's two commands, run once as real subprocesses, and kept in step with .ci/run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _setup_commands() -> list[str]:
    block = re.search(r"<!-- setup -->\s*```(?:bash|sh)?\n(.*?)```", README, flags=re.S)
    assert block, "README.md must mark its two set-up commands with <!-- setup -->"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    demo, tests = _setup_commands()
    assert "kavi demo" in demo
    assert tests in (REPO / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.slow
def test_kavi_demo_runs_as_a_real_process(tmp_path: Path) -> None:
    kavi = Path(sys.executable).parent / "kavi"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAVI_")}
    env["HOME"] = str(tmp_path)
    completed = subprocess.run(
        [str(kavi), "demo", "--path", str(tmp_path / "demo"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert report["ok"] is True and report["tamper_refused"] is True
    assert {skill["name"]: skill["status"] for skill in report["skills"]} == {
        "word_count": "TRUSTED",
        "write_note": "TRUSTED",
    }
    assert (tmp_path / "demo" / "notes" / "forged-by-kavi.md").is_file()


def test_the_test_runner_starts_as_a_real_process() -> None:
    """The README's test command as a process (on one small module: the whole suite would run itself)."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            "tests/test_spec.py",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:]
    assert re.search(r"\d+ tests? collected", completed.stdout)


def test_this_repository_is_a_workspace_holding_the_forged_examples() -> None:
    assert (REPO / "kavi.toml").is_file()
    for name in ("word_count", "write_note"):
        for file in (f"{name}.py", f"test_{name}.py"):
            recorded = REPO / "src" / "kavi" / "demo_replays" / name / "skills" / file
            assert (REPO / "skills" / file).read_bytes() == recorded.read_bytes(), file


def test_the_demo_kernel_reference_is_the_shipped_one() -> None:
    shipped = REPO / "kernels" / "references" / "vector_add.py"
    packaged = REPO / "src" / "kavi" / "demo_replays" / "kernel_references" / "vector_add.py"
    assert packaged.read_bytes() == shipped.read_bytes()


def test_this_repository_s_skills_and_kernels_are_vouched_for_by_its_lock() -> None:
    """What a CI job on a fresh clone checks: every file in skills/ and kernels/ is a TRUSTED version."""
    from tests.support import run_cli

    result = run_cli("verify-lock", "--workspace", str(REPO), "--json")
    assert result.code == 0, result.stdout
    locked = {entry["name"] for entry in tomllib.loads((REPO / "kavi.lock").read_text())["skill"]}
    kernels = {"vector_add", "softmax", "matmul", "attention", "bmm", "layernorm", "matmul_bf16"}
    assert locked == {"word_count", "write_note"} | kernels
