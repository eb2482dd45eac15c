"""`kavi doctor`: one line per check with a fix, exit 0 when nothing required fails, 1 when something does."""

from __future__ import annotations

from pathlib import Path

from kavi.workspace import Workspace
from tests.support import BOTH_BACKENDS, run_cli


def _checks(*args: str) -> tuple[int, dict[str, dict[str, str]]]:
    result = run_cli("doctor", "--json", *args)
    data = result.json()
    return result.code, {c["name"]: c for c in data["checks"]}


@BOTH_BACKENDS
def test_a_healthy_workspace_passes_with_optional_things_as_warnings(trusted: Workspace, ledger_backend: str) -> None:
    code, checks = _checks()
    assert code == 0
    assert checks["ledger"]["detail"].startswith("sqlite" if ledger_backend == "sqlite" else "postgresql")
    for name in ("workspace", "ledger", "schema", "audit", "lock", "ruff", "mypy", "pytest", "builder manual"):
        assert checks[name]["status"] == "ok", checks[name]
    assert {"isolation", "claude", "torch", "triton", "builder replay"} <= set(checks)
    assert all(c["status"] in ("ok", "warn") for c in checks.values())
    assert all(c["fix"] for c in checks.values() if c["status"] != "ok")


@BOTH_BACKENDS
def test_a_tampered_install_or_lock_fails_doctor_and_names_the_fix(trusted: Workspace) -> None:
    (trusted.skills_dir / "word_count.py").write_text("x = 1\n")
    code, checks = _checks()
    assert code == 1
    assert checks["audit"]["status"] == "fail" and "skills/word_count.py" in checks["audit"]["detail"]
    assert checks["lock"]["status"] == "fail"
    assert "kavi audit" in checks["audit"]["fix"]


def test_a_missing_lock_with_trusted_skills_fails(trusted: Workspace) -> None:
    (trusted.root / "kavi.lock").unlink()
    code, checks = _checks()
    assert code == 1 and checks["lock"]["status"] == "fail" and "--write" in checks["lock"]["fix"]


def test_no_workspace_fails_with_init_as_the_fix(tmp_path: Path) -> None:
    code, checks = _checks("--workspace", str(tmp_path))
    assert code == 1 and checks["workspace"]["status"] == "fail" and "kavi init" in checks["workspace"]["fix"]


def test_the_human_output_is_one_line_per_check(trusted: Workspace) -> None:
    result = run_cli("doctor")
    assert result.code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 10 and all(line.split()[0] in ("ok", "warn", "fail") for line in lines)
    assert "[build.options.replay]" in result.stdout
