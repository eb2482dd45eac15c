"""A build removes its sandbox when it ends, however it ends; a waiting manual build keeps its own until it is
resumed (from its sandbox or another folder) or rejected."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import ClassVar

import pytest
from sqlmodel import select

from kavi.builders.base import BuilderOptions, BuildOutcome, BuildPacket, BuildStatus
from kavi.demo import recording_of
from kavi.errors import BuildError, TransitionError
from kavi.ledger.models import Build
from kavi.stages.build import build_skill, resume_build
from kavi.stages.common import Forge
from kavi.stages.promote import reject_proposal
from kavi.stages.propose import propose_skill


def _sandboxes() -> set[str]:
    return {path.name for path in Path(tempfile.gettempdir()).glob("kavi-build-*")}


def _propose(forge: Forge) -> str:
    return propose_skill(
        forge,
        name="word_count",
        description="Count words",
        side_effect="READ_ONLY",
        io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
    ).proposal_id


class _Scripted:
    """A builder that does one thing to the sandbox or the ledger, to end a build each possible way."""

    name: ClassVar[str] = "scripted"
    options_model: ClassVar[type[BuilderOptions]] = BuilderOptions

    def __init__(self, forge: Forge, how: str) -> None:
        self.forge, self.how = forge, how

    def available(self) -> tuple[bool, str]:
        return True, "test"

    def build(self, packet: BuildPacket, sandbox: Path) -> BuildOutcome:
        if self.how == "raises":
            raise BuildError("the backend broke")
        if self.how == "interrupted":
            raise KeyboardInterrupt
        if self.how == "taken over":  # another process abandons this attempt while it runs
            with self.forge.ledger.transaction() as session:
                for build in session.exec(select(Build)).all():
                    build.status = "ABANDONED"
                    session.add(build)
        if self.how == "escapes":
            (sandbox / "kavi.toml").write_text("# changed\n")
        for name in ("word_count.py", "test_word_count.py"):
            (sandbox / "skills" / name).write_bytes((recording_of("word_count") / "skills" / name).read_bytes())
        return BuildOutcome(BuildStatus.SUCCEEDED)


@pytest.mark.parametrize("how", ["succeeds", "escapes", "raises", "interrupted", "taken over"])
def test_every_ending_removes_the_sandbox(forge: Forge, how: str) -> None:
    proposal = _propose(forge)
    before = _sandboxes()
    expected: type[BaseException] | None = {"interrupted": KeyboardInterrupt, "taken over": TransitionError}.get(how)
    if expected is None:
        build_skill(forge, proposal, builder=_Scripted(forge, how))
    else:
        with pytest.raises(expected):
            build_skill(forge, proposal, builder=_Scripted(forge, how))
    assert _sandboxes() == before


@pytest.mark.parametrize("ending", ["resume in place", "resume from a folder", "reject"])
def test_a_waiting_manual_build_keeps_its_sandbox_until_it_ends(forge: Forge, ending: str) -> None:
    proposal = _propose(forge)
    before = _sandboxes()
    waiting = build_skill(forge, proposal, builder_name="manual")
    assert waiting.status == "AWAITING_INPUT" and waiting.sandbox is not None
    assert _sandboxes() == before | {Path(waiting.sandbox).name}
    if ending == "reject":
        reject_proposal(forge, proposal, reason="no longer needed")
    elif ending == "resume from a folder":
        assert resume_build(forge, proposal, source=recording_of("word_count")).status == "SUCCEEDED"
    else:
        for name in ("word_count.py", "test_word_count.py"):
            source = recording_of("word_count") / "skills" / name
            (Path(waiting.sandbox) / "skills" / name).write_bytes(source.read_bytes())
        assert resume_build(forge, proposal).status == "SUCCEEDED"
    assert _sandboxes() == before
