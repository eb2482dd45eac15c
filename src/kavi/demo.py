"""`kavi demo`: the whole pipeline on the two example skills, with no API key.

Each skill is proposed, built by the replay builder from a recording shipped with kavi, verified by every
gate, promoted and run; then a tampered copy is refused. The demo reports each step through a callback so
the CLI can narrate it; the steps themselves are the real stage functions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kavi.errors import IntegrityError
from kavi.kinds import unmeasurable_gates
from kavi.stages.build import build_skill
from kavi.stages.common import Forge
from kavi.stages.promote import promote_skill
from kavi.stages.propose import propose_kernel, propose_skill
from kavi.stages.run import run_skill
from kavi.stages.verify import verify_skill
from kavi.workspace import init_workspace

# What the narration shows of each gate: the isolation it ran under included, as the ledger records it.
GATE_FIELDS = ("gate", "status", "summary", "duration_s", "isolation")

Narrate = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class DemoSkill:
    name: str
    description: str
    side_effect: str
    io_schema: dict[str, Any]
    examples: list[dict[str, Any]]
    run_input: dict[str, Any]
    write_roots: tuple[str, ...] = ()


DEMO_SKILLS = (
    DemoSkill(
        name="word_count",
        description="Count the words in a text",
        side_effect="READ_ONLY",
        io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
        examples=[
            {"input": {"text": "a b"}, "output": {"count": 2}},
            {"input": {"text": ""}, "output": {"count": 0}},
            {"input": {"text": "  spaced   out  "}, "output": {"count": 2}},
        ],
        run_input={"text": "the quick brown fox"},
    ),
    DemoSkill(
        name="write_note",
        description="Write a markdown note under notes/",
        side_effect="FILE_WRITE",
        io_schema={"input": {"title": "str", "body": "str"}, "output": {"path": "str"}},
        examples=[
            {"input": {"title": "Hello", "body": "World"}, "output": {"path": "notes/hello.md"}},
            {"input": {"title": "???", "body": "no slug"}, "error": "ValueError"},
        ],
        run_input={"title": "Forged by kavi", "body": "Every stage is in the ledger."},
        write_roots=("notes",),
    ),
)


@dataclass
class DemoReport:
    workspace: str
    skills: list[dict[str, Any]] = field(default_factory=list)
    tamper_refused: bool = False

    @property
    def ok(self) -> bool:
        """Every skill reached TRUSTED and ran, and tampering was refused."""
        return self.tamper_refused and all(skill["status"] == "TRUSTED" for skill in self.skills)


def recording_of(name: str) -> Path:
    return Path(str(resources.files("kavi.demo_replays") / name))


def run_demo(target: Path | None, narrate: Narrate, *, kernels: bool = False) -> DemoReport:
    root = target or Path(tempfile.mkdtemp(prefix="kavi-demo-"))
    workspace, _ = init_workspace(root)
    narrate("init", f"workspace {workspace.root}", {"workspace": str(workspace.root)})
    report = DemoReport(workspace=str(workspace.root))
    forge = Forge.open(workspace)
    try:
        for skill in DEMO_SKILLS:
            report.skills.append(_forge_one(forge, skill, narrate))
        if all(skill["status"] == "TRUSTED" for skill in report.skills):
            report.tamper_refused = _show_tamper_refusal(forge, narrate)
        if kernels:
            report.skills.append(_forge_kernel(forge, "vector_add", narrate))
    finally:
        forge.close()
    return report


def _forge_one(forge: Forge, skill: DemoSkill, narrate: Narrate) -> dict[str, Any]:
    proposed = propose_skill(
        forge,
        name=skill.name,
        description=skill.description,
        side_effect=skill.side_effect,
        io_schema=skill.io_schema,
        examples=skill.examples,
        write_roots=skill.write_roots,
    )
    narrate("propose", f"{skill.name}: spec frozen as {proposed.spec_sha256[:12]}", asdict(proposed))
    built = build_skill(
        forge, proposed.proposal_id, builder_name="replay", builder_options={"source": str(recording_of(skill.name))}
    )
    narrate(
        "build",
        f"{skill.name}: attempt {built.attempt} {built.status}, candidate {(built.candidate_sha256 or '-')[:12]}",
        asdict(built),
    )
    verified = verify_skill(forge, proposed.proposal_id)
    narrate(
        "verify",
        f"{skill.name}: {verified.status} under {verified.isolation} isolation",
        {
            "gates": [{k: g[k] for k in GATE_FIELDS} for g in verified.gates],
            "status": verified.status,
        },
    )
    if not verified.passed:
        return {"name": skill.name, "status": verified.status}
    promoted = promote_skill(forge, proposed.proposal_id, approver="kavi-demo")
    narrate(
        "promote", f"{skill.name} v{promoted.version} TRUSTED, sha256 {promoted.skill_sha256[:12]}", asdict(promoted)
    )
    result = run_skill(forge.workspace, skill.name, skill.run_input)
    narrate("run", f"{skill.name}({skill.run_input}) -> {result.output}", asdict(result))
    return {"name": skill.name, "status": "TRUSTED", "version": promoted.version, "output": result.output}


def _forge_kernel(forge: Forge, name: str, narrate: Narrate) -> dict[str, Any]:
    """A Triton kernel end to end: on a machine without a GPU its correctness is proven through Triton's
    CPU interpreter and its speed is unmeasured, which promotion must accept explicitly."""
    reference = Path(str(resources.files("kavi.demo_replays") / "kernel_references" / f"{name}.py"))
    proposed = propose_kernel(forge, name=name, description=f"Triton kernel: {name}", reference=reference)
    narrate("propose", f"{name}: reference frozen as {proposed.spec_sha256[:12]}", asdict(proposed))
    built = build_skill(
        forge,
        proposed.proposal_id,
        builder_name="replay",
        builder_options={"source": str(recording_of(f"kernels/{name}"))},
    )
    narrate("build", f"{name}: attempt {built.attempt} {built.status}", asdict(built))
    verified = verify_skill(forge, proposed.proposal_id)
    gates = [{k: g[k] for k in GATE_FIELDS} for g in verified.gates]
    narrate("verify", f"{name}: {verified.status}", {"gates": gates, "status": verified.status})
    if not verified.passed:
        return {"name": name, "status": verified.status}
    unmeasured = any(g["gate"] in unmeasurable_gates() and g["status"] == "skipped" for g in gates)
    promoted = promote_skill(forge, proposed.proposal_id, approver="kavi-demo", allow_unmeasured=unmeasured)
    note = " (speed unmeasured: no GPU here)" if unmeasured else ""
    narrate("promote", f"{name} v{promoted.version} TRUSTED{note}", asdict(promoted))
    return {"name": name, "status": "TRUSTED", "version": promoted.version, "unmeasured": unmeasured}


def _show_tamper_refusal(forge: Forge, narrate: Narrate) -> bool:
    path = forge.workspace.skills_dir / "word_count.py"
    original = path.read_bytes()
    path.write_bytes(original + b"\nimport os  # tampered after promotion\n")
    try:
        run_skill(forge.workspace, "word_count", {"text": "x"})
    except IntegrityError as exc:
        narrate("tamper", f"a tampered skills/word_count.py is refused: {exc.message}", {"refused": True})
        return True
    finally:
        path.write_bytes(original)
    narrate("tamper", "the tampered file was NOT refused", {"refused": False})
    return False
