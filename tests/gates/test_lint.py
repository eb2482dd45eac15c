"""The ruff gate agrees with the policy gate on programs and refuses blanket waivers on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.gates.base import GateContext, GateStatus
from kavi.gates.lint import RuffGate
from kavi.spec import make_spec

SPEC = make_spec(
    name="git_version",
    description="git version",
    side_effect="SUBPROCESS",
    io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
    executables=("git",),
)
RUNS_GIT = '"""Doc."""\n\nimport subprocess\n\nOUT = subprocess.run(["git", "--version"], check=True)\n'


@pytest.mark.parametrize(
    ("source", "status", "needle"),
    [
        (RUNS_GIT, GateStatus.PASS, ""),
        ("# ruff: noqa\n" + RUNS_GIT + "import os\n", GateStatus.FAIL, "PGH004"),
        ("# flake8: noqa\n" + RUNS_GIT + "import os\n", GateStatus.FAIL, "PGH004"),
        (RUNS_GIT + "import os  # noqa\n", GateStatus.FAIL, "PGH004"),
    ],
    ids=["bare-program-name", "ruff-file-exemption", "flake8-file-exemption", "blanket-noqa"],
)
def test_lint_gate(tmp_path: Path, source: str, status: GateStatus, needle: str) -> None:
    (tmp_path / "skills").mkdir()
    (tmp_path / SPEC.skill_path).write_text(source, encoding="utf-8")
    (tmp_path / SPEC.test_path).write_text("def test_x() -> None:\n    assert True\n", encoding="utf-8")
    result = RuffGate().run(GateContext(spec=SPEC, sandbox=tmp_path, cache_dir=tmp_path / "cache"))
    assert result.status is status, result.report
    assert needle in result.report
