"""propose: validate a skill's contract and freeze it as a content-addressed spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex
from typing import Any

from sqlmodel import col, select

from kavi.errors import SpecError
from kavi.ledger.ids import new_id, utc_now
from kavi.ledger.models import Proposal, ProposalStatus
from kavi.ledger.store import append_event
from kavi.side_effects import SideEffect
from kavi.spec import Example, hidden_examples_bytes, make_spec, parse_hidden_examples, program_record
from kavi.stages.common import AnySpec, Forge


@dataclass(frozen=True)
class Proposed:
    proposal_id: str
    name: str
    spec_sha256: str
    status: str


def propose_skill(
    forge: Forge,
    *,
    name: str,
    description: str,
    side_effect: str,
    io_schema: Any,
    examples: Any = (),
    write_roots: tuple[str, ...] = (),
    allow_hosts: tuple[str, ...] = (),
    secrets: tuple[str, ...] = (),
    executables: tuple[str, ...] = (),
    read_roots: tuple[str, ...] = (),
    hidden_examples: Any = (),
) -> Proposed:
    """Validate and freeze a skill's contract. Names that shadow an importable module and roots over kavi's
    state or the project are refused (:mod:`kavi.spec`); each SUBPROCESS program is frozen as the absolute
    path the child's PATH gives it and that file's hash, so a run can tell when the program changed.
    ``hidden_examples`` are frozen with the proposal but kept out of the spec: no builder sees them, the
    examples gate runs them too."""
    spec = make_spec(
        name=name,
        description=description,
        side_effect=side_effect,
        io_schema=io_schema,
        examples=examples,
        write_roots=write_roots,
        allow_hosts=allow_hosts,
        secrets=secrets,
        executables=executables,
        read_roots=read_roots,
    )
    if spec.side_effect is SideEffect.SUBPROCESS:  # the names are validated bare program names by now
        from kavi.sandbox.executor import base_environment

        path_variable = base_environment()["PATH"]
        programs = tuple(program_record(name, path_variable) for name in dict.fromkeys(spec.executables))
        spec = spec.model_copy(update={"programs": programs})
    return freeze_proposal(forge, spec, hidden=parse_hidden_examples(list(hidden_examples), spec))


def propose_kernel(forge: Forge, *, name: str, description: str, reference: Path) -> Proposed:
    """Freeze a kernel's reference file as its spec, after checking (in a child) it is not degenerate."""
    from kavi.gpu.spec import freeze_reference

    return freeze_proposal(forge, freeze_reference(name, description, reference))


def freeze_proposal(forge: Forge, spec: AnySpec, *, hidden: tuple[Example, ...] = ()) -> Proposed:
    """Record a validated spec: refuse a name already taken by a live proposal, freeze, record."""
    kind = spec.kind
    data = spec.canonical_json()
    with forge.ledger.transaction() as session:
        taken = session.exec(
            select(Proposal).where(Proposal.name == spec.name, col(Proposal.status) != ProposalStatus.REJECTED)
        ).first()
        installed = forge.workspace.root / spec.allowed_paths[0]
        if taken is not None or installed.exists():
            raise SpecError(
                f"a skill named {spec.name!r} already exists ({taken.id if taken else spec.allowed_paths[0]})",
                hint="choose another name, or `kavi reject` the old proposal first",
            )
        digest = forge.put_artifact(session, data, "SPEC")
        hidden_sha = (
            forge.put_artifact(session, hidden_examples_bytes(hidden, token_hex(16)), "HIDDEN_EXAMPLES")
            if hidden
            else None
        )
        now = utc_now()
        proposal = Proposal(
            id=new_id("p"),
            name=spec.name,
            kind=kind,
            description=spec.description,
            side_effect=str(spec.side_effect),
            spec_sha256=digest,
            hidden_examples_sha256=hidden_sha,
            status=ProposalStatus.PROPOSED,
            created_at=now,
            updated_at=now,
        )
        session.add(proposal)
        session.flush()
        append_event(
            session,
            "proposal.proposed",
            {
                "name": spec.name,
                "spec_sha256": digest,
                "side_effect": str(spec.side_effect),
                "kind": kind,
                **({"hidden_examples": len(hidden)} if hidden else {}),
            },
            proposal_id=proposal.id,
        )
    return Proposed(proposal.id, spec.name, digest, proposal.status)
