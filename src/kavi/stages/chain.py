"""propose-chain, verify-chain and promote-chain: a chain goes through the same ledger rows as a skill.

A chain is a proposal of the ``chain`` kind. Nothing is built: propose records its candidate at once (its
definition, which pins each member's hashes, and its end-to-end examples, both derived from the frozen spec),
verify runs the kind's gates (the composition gate), and promote makes a version whose ``skill_sha256`` is the
hash of that definition, approved and recorded as a skill's is. Whether a TRUSTED chain may run is decided
each time from its members: revoking a member suspends every chain pinning it (:func:`suspension`), and
promoting a new member version changes no chain, since each pins its versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from kavi.builders.base import BuildStatus
from kavi.chain import ChainSpec, Member, make_chain_spec
from kavi.errors import SpecError, TransitionError, UsageError
from kavi.kinds import kind_of
from kavi.ledger.ids import new_id, utc_now
from kavi.ledger.models import Build, Promotion, Proposal, ProposalStatus, VersionStatus
from kavi.ledger.store import append_event
from kavi.side_effects import SideEffect
from kavi.spec import canonical_json
from kavi.stages.common import Forge, get_proposal, latest_build, set_status, trusted_versions
from kavi.stages.promote import Promoted, promote_skill
from kavi.stages.propose import Proposed, freeze_proposal
from kavi.stages.verify import UNOBSERVED, GateProgress, Verified, verify_skill

CHAIN_BUILDER = "chain"  # the builder name of a candidate derived from the frozen spec (nothing was built)


@dataclass(frozen=True)
class ProposedChain(Proposed):
    build_id: str = ""
    side_effects: tuple[str, ...] = ()
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    steps: tuple[dict[str, Any], ...] = ()


def propose_chain(forge: Forge, *, name: str, description: str, steps: Any, examples: Any) -> ProposedChain:
    """Check every edge against the pinned members' frozen schemas, freeze the chain, record its candidate."""
    with forge.ledger.reading() as session:
        spec = make_chain_spec(
            name=name,
            description=description,
            steps=steps,
            examples=examples,
            members=lambda skill, version: _member(forge, session, skill, version),
        )
    proposed = freeze_proposal(forge, spec)
    build_id = record_candidate(forge, proposed.proposal_id)
    return ProposedChain(
        **{**proposed.__dict__, "status": ProposalStatus.BUILT},
        build_id=build_id,
        side_effects=tuple(str(effect) for effect in spec.side_effects),
        input_schema=spec.input_schema,
        output_schema=spec.output_schema,
        steps=tuple(step.model_dump(mode="json") for step in spec.steps),
    )


def _member(forge: Forge, session: Session, skill: str, version: int | None) -> Member:
    versions = trusted_versions(session, skill)
    if not versions:
        known = session.exec(select(Proposal).where(Proposal.name == skill).limit(1)).first()
        raise SpecError(
            f"{skill} has no TRUSTED version" if known else f"no skill named {skill!r}",
            hint="a chain pins TRUSTED skills only: promote it first (`kavi list-skills` shows what can run)",
        )
    chosen = versions[0] if version is None else next((v for v in versions if v.version == version), None)
    if chosen is None:
        available = ", ".join(f"v{v.version}" for v in versions)
        raise SpecError(f"{skill} v{version} is not TRUSTED", hint=f"TRUSTED versions of {skill}: {available}")
    proposal = session.get(Proposal, chosen.proposal_id)
    kind = kind_of(proposal.kind if proposal else None)
    if not kind.composable:
        raise SpecError(f"{skill} is a {kind.noun}: a chain's steps are skills called with JSON in and out")
    spec = json.loads(forge.store.get(chosen.spec_sha256))
    return Member(
        name=skill,
        version=chosen.version,
        skill_sha256=chosen.skill_sha256,
        spec_sha256=chosen.spec_sha256,
        side_effect=SideEffect(chosen.side_effect),
        input_schema=spec["input_schema"],
        output_schema=spec["output_schema"],
    )


def record_candidate(forge: Forge, reference: str) -> str:
    """Record the candidate a kind derives from its frozen spec (a chain's definition and examples) as a
    SUCCEEDED build: the rows verify and promote read, with nothing built. Idempotent."""
    with forge.ledger.transaction() as session:
        proposal = get_proposal(session, reference)
        build = latest_build(session, proposal.id)
        if build is not None:
            return build.id
        spec = forge.spec_of(proposal)
        derive = kind_of(spec.kind).built_at_propose
        if derive is None:
            raise TransitionError(f"{proposal.name} is a {kind_of(spec.kind).noun}: build it with `kavi build-skill`")
        files = {path: forge.put_artifact(session, data, "SOURCE") for path, data in sorted(derive(spec).items())}
        manifest = {"kind": spec.kind, "name": spec.name, "files": files}
        now = utc_now()
        build = Build(
            id=new_id("b"),
            proposal_id=proposal.id,
            attempt=1,
            builder=CHAIN_BUILDER,
            status=BuildStatus.SUCCEEDED,
            candidate_sha256=forge.put_artifact(session, canonical_json(manifest), "CANDIDATE"),
            duration_s=0.0,
            created_at=now,
            finished_at=now,
        )
        session.add(build)
        session.flush()
        append_event(
            session,
            "build.started",
            {"attempt": 1, "builder": CHAIN_BUILDER, "packet_sha256": None, "parent": None},
            proposal_id=proposal.id,
            build_id=build.id,
        )
        append_event(
            session,
            "build.finished",
            {
                "attempt": 1,
                "status": build.status,
                "reason": None,
                "failure_kind": None,
                "candidate_sha256": build.candidate_sha256,
                "files": files,
            },
            proposal_id=proposal.id,
            build_id=build.id,
        )
        set_status(session, proposal, ProposalStatus.BUILT, build_id=build.id)
        return build.id


def chain_spec_of(forge: Forge, reference: str, action: str) -> tuple[Proposal, ChainSpec]:
    with forge.ledger.reading() as session:
        proposal = get_proposal(session, reference)
    if not kind_of(proposal.kind).composite:
        raise UsageError(
            f"{proposal.name} is a {kind_of(proposal.kind).noun}, not a chain",
            hint=f"use `kavi {action}-skill {proposal.name}`",
        )
    return proposal, ChainSpec.model_validate_json(forge.spec_of(proposal).canonical_json())


def verify_chain(forge: Forge, reference: str, *, progress: GateProgress = UNOBSERVED) -> Verified:
    """Run the composition gate on the chain's candidate (recording it first if propose was interrupted)."""
    proposal, _ = chain_spec_of(forge, reference, "verify")
    record_candidate(forge, proposal.id)
    return verify_skill(forge, proposal.id, progress=progress)


def promote_chain(forge: Forge, reference: str, *, approver: str | None = None) -> Promoted:
    """Make the verified chain a TRUSTED version, if every member is still TRUSTED at its pinned hashes."""
    proposal, spec = chain_spec_of(forge, reference, "promote")
    with forge.ledger.reading() as session:
        reason = suspension(session, spec)
    if reason is not None:
        raise TransitionError(
            f"cannot promote chain {spec.name}: {reason}",
            hint="propose the chain again pinning TRUSTED versions (`kavi propose-chain`)",
        )
    return promote_skill(forge, proposal.id, approver=approver)


def suspension(session: Session, spec: ChainSpec) -> str | None:
    """Why the chain may not run now (a member no longer TRUSTED at its pinned version and hashes), or None."""
    for step in spec.steps:
        row = session.exec(
            select(Promotion).where(Promotion.name == step.skill, Promotion.version == step.version)
        ).first()
        if row is None or row.status != VersionStatus.TRUSTED:
            status = row.status if row is not None else "missing"
            return f"member {step.skill} v{step.version} (step {step.id}) is {status}"
        if row.skill_sha256 != step.skill_sha256 or row.spec_sha256 != step.spec_sha256:
            return f"member {step.skill} v{step.version} (step {step.id}) no longer has the pinned hashes"
    return None


def chains_state(forge: Forge, session: Session, promotions: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """For each ``(promotion id, spec sha256)`` of a chain: its members and why it is suspended (or None)."""
    state: dict[str, dict[str, Any]] = {}
    for promotion_id, spec_sha256 in promotions:
        spec = ChainSpec.model_validate_json(forge.store.get(spec_sha256))
        state[promotion_id] = {
            "suspended": suspension(session, spec),
            "members": [f"{step.skill} v{step.version}" for step in spec.steps],
            "side_effects": [str(effect) for effect in spec.side_effects],
        }
    return state


def chains_pinning(session: Session, forge: Forge, skill: str) -> list[str]:
    """The TRUSTED chains that pin some version of ``skill`` (for `show` of a member)."""
    rows = session.exec(
        select(Promotion, Proposal)
        .join(Proposal, col(Proposal.id) == col(Promotion.proposal_id))
        .where(Promotion.status == VersionStatus.TRUSTED, Proposal.status != ProposalStatus.REJECTED)
    ).all()
    found = []
    for promotion, proposal in rows:
        if kind_of(proposal.kind).composite:
            spec = ChainSpec.model_validate_json(forge.store.get(promotion.spec_sha256))
            found += [f"{promotion.name} v{promotion.version}" for step in spec.steps if step.skill == skill][:1]
    return found
