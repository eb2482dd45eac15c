"""`run-skill --in-process`: what a skill leaves alive is finalized right after the call, under the hook,
not after CPython has cleared the hooks at interpreter exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SKILL = """
from pydantic import BaseModel

from kavi.skill import SideEffect, Skill


class Lingers:
    def __init__(self) -> None:
        self.me = self if {cycle} else None

    def __del__(self) -> None:
        open({marker!r}, "w").write("written after the call")


_kept = Lingers()


class LingersInput(BaseModel):
    text: str


class LingersOutput(BaseModel):
    text: str


class LingersSkill(Skill[LingersInput, LingersOutput]):
    name = "lingers"
    side_effect = SideEffect.READ_ONLY
    input_model = LingersInput
    output_model = LingersOutput

    def execute(self, data: LingersInput) -> LingersOutput:
        return LingersOutput(text=data.text)
"""

RUNNER = """
import hashlib, json, sys, types
from pathlib import Path
from kavi.spec import make_spec
from kavi.stages.run import TrustedBytes, _run_in_process

source = Path(sys.argv[2]).read_bytes()
spec = make_spec(name="lingers", description="x", side_effect="READ_ONLY",
                 io_schema={"input": {"text": "str"}, "output": {"text": "str"}})
promotion = {"name": "lingers", "skill_sha256": hashlib.sha256(source).hexdigest()}
trusted = TrustedBytes(promotion, spec.canonical_json(), source, "lingers.py")
print(json.dumps(_run_in_process(types.SimpleNamespace(root=Path(sys.argv[1])), trusted, {"text": "hi"})))
"""


@pytest.mark.parametrize("cycle", [False, True], ids=["module_global", "reference_cycle"])
def test_a_lingering_objects_del_has_no_effect(tmp_path: Path, cycle: bool) -> None:
    outside, workspace = tmp_path / "outside", tmp_path / "ws"
    outside.mkdir()
    workspace.mkdir()
    skill = tmp_path / "lingers.py"
    skill.write_text(SKILL.format(cycle=cycle, marker=str(outside / "del.txt")))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RUNNER), str(workspace), str(skill)],
        cwd=workspace, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert '"output": {"text": "hi"}' in done.stdout, done.stdout + done.stderr
    assert not (outside / "del.txt").exists(), "a __del__ wrote after the hooks were gone"
    assert "KAVI-BLOCKED" in done.stderr  # refused while the hook was still on
