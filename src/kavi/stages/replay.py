"""replay: run a recorded execution again, with its recorded inputs, against the same TRUSTED versions.

A skill run is replayed as itself; any other execution (a chat, a chain run, an earlier replay) by replaying
every skill run below it, each with its own recorded input. Nothing runs unless every run can be replayed
exactly: its whole input is recorded (in the row, or as an artifact under its sha256) and the version that
ran is still TRUSTED with the same hash. An output (or error) that differs from the recorded one is
non-determinism: the replay node says DIFFERED and a ``replay.nondeterministic`` event names the runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from kavi.errors import IntegrityError, NotFoundError, TransitionError
from kavi.kinds import kind_of
from kavi.ledger.models import Execution, ExecutionNode, Promotion, Proposal, VersionStatus
from kavi.ledger.store import append_event
from kavi.stages.common import Forge
from kavi.stages.dispatch import run_trusted
from kavi.stages.executions import execution, resolve_execution, root_of
from kavi.stages.run import INPUT_PREVIEW_CHARS

MATCHED, DIFFERED = "MATCHED", "DIFFERED"


@dataclass(frozen=True)
class ReplayedRun:
    original_id: str
    replay_id: str
    name: str
    version: int
    matched: bool
    recorded: dict[str, Any]  # {"output": ..., "error": ...} as the original run recorded them
    replayed: dict[str, Any]


@dataclass
class Replayed:
    original_id: str
    replay_id: str
    runs: list[ReplayedRun] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return all(run.matched for run in self.runs)


@dataclass(frozen=True)
class _Plan:
    run: Execution
    payload: dict[str, Any]
    proposal_id: str


def replay_execution(forge: Forge, reference: str) -> Replayed:
    with forge.ledger.reading() as session:
        original_id = resolve_execution(session, reference)
        runs = runs_below(session, original_id)
        node = session.get(ExecutionNode, original_id)
        if not runs:
            kind = node.kind if node is not None else "execution"
            raise TransitionError(
                f"cannot replay {original_id}: this {kind} ran no skill, so there is nothing to run again",
                hint="replay a skill run, a chain run or a chat (`kavi show-execution` shows what ran)",
            )
        # a chain's run is replayed whole (its steps run again below the replayed chain), never step by step
        runs = [run for run in runs if run.parent_id not in {r.id for r in runs if _is_chain_run(session, r)}]
        plans = [_plan(forge, session, run) for run in runs]  # every refusal before anything runs
        name = node.name if node is not None else runs[0].name
    result = Replayed(original_id, "")
    with execution(
        forge, "replay", name, input_data={"original": original_id, "runs": len(plans)}, replay_of=original_id
    ) as replay:
        result.replay_id = replay.id
        for plan in plans:
            result.runs.append(_replay_one(forge, plan, replay.id))
        replay.status = MATCHED if result.matched else DIFFERED
        replay.output = {"runs": [_summary(run) for run in result.runs]}
    _record_verdict(forge, result, plans)
    return result


def runs_below(session: Session, execution_id: str) -> list[Execution]:
    """The skill runs at or below ``execution_id``, in the order they ran."""
    root = root_of(session, execution_id)
    runs = session.exec(
        select(Execution).where((col(Execution.root_id) == root) | (col(Execution.id) == execution_id))
    ).all()
    nodes = session.exec(select(ExecutionNode).where(col(ExecutionNode.root_id) == root)).all()
    parents = {run.id: run.parent_id for run in runs} | {node.id: node.parent_id for node in nodes}

    def below(member: str | None) -> bool:
        seen = 0
        while member is not None and seen <= len(parents):
            if member == execution_id:
                return True
            member, seen = parents.get(member), seen + 1
        return False

    return sorted((run for run in runs if below(run.id)), key=lambda run: run.created_at)


def _is_chain_run(session: Session, run: Execution) -> bool:
    promotion = session.get(Promotion, run.promotion_id)
    proposal = session.get(Proposal, promotion.proposal_id) if promotion is not None else None
    return proposal is not None and kind_of(proposal.kind).composite


def _plan(forge: Forge, session: Session, run: Execution) -> _Plan:
    promotion = session.get(Promotion, run.promotion_id)
    assert promotion is not None  # a foreign key
    if promotion.status != VersionStatus.TRUSTED:
        why = f": {promotion.revoked_reason}" if promotion.revoked_reason else ""
        raise TransitionError(
            f"cannot replay {run.id}: {run.name} v{run.version} is {promotion.status}{why}; a replay runs only the"
            " TRUSTED version that ran, never another",
            hint=f"`kavi show {run.name}` says who revoked it and which versions are TRUSTED",
        )
    if promotion.skill_sha256 != run.skill_sha256:
        raise IntegrityError(
            f"{run.id} ran {run.skill_sha256[:12]} but {run.name} v{run.version} is {promotion.skill_sha256[:12]}",
            hint="run `kavi audit`",
        )
    return _Plan(run, recorded_payload(forge, run), promotion.proposal_id)


def recorded_payload(forge: Forge, run: Execution) -> dict[str, Any]:
    """The run's whole input: the row's input_json when it is all of it, else the artifact kept under its
    sha256; refused when only a preview was kept."""
    data = run.input_json.encode("utf-8")
    if run.input_sha256 is not None and hashlib.sha256(data).hexdigest() != run.input_sha256:
        try:
            data = forge.store.get(run.input_sha256)  # hash-checked on read
        except NotFoundError:
            raise TransitionError(
                f"cannot replay {run.id}: its input ({run.input_size} bytes) was not recorded whole, only a preview"
                f" of its first {INPUT_PREVIEW_CHARS} characters and its sha256",
                hint='set `record_input = "full"` under [run] in kavi.toml for runs you want to replay',
            ) from None
    payload = json.loads(data)
    assert isinstance(payload, dict)
    return payload


def _replay_one(forge: Forge, plan: _Plan, parent: str) -> ReplayedRun:
    run = plan.run
    result = run_trusted(
        forge.workspace, run.name, plan.payload, version=run.version, parent=parent, raise_on_failure=False
    )
    output_json = None if result.output is None else json.dumps(result.output, sort_keys=True)
    matched = output_json == run.output_json and result.error == run.error
    return ReplayedRun(
        run.id,
        result.execution_id,
        run.name,
        run.version,
        matched,
        {"output": None if run.output_json is None else json.loads(run.output_json), "error": run.error},
        {"output": result.output, "error": result.error},
    )


def _summary(run: ReplayedRun) -> dict[str, Any]:
    return {"original": run.original_id, "replay": run.replay_id, "name": run.name, "matched": run.matched}


def _record_verdict(forge: Forge, result: Replayed, plans: list[_Plan]) -> None:
    """One event for the whole replay, on each replayed skill's proposal when there is just one."""
    proposals = {plan.proposal_id for plan in plans}
    with forge.ledger.transaction() as session:
        append_event(
            session,
            "replay.matched" if result.matched else "replay.nondeterministic",
            {
                "original_id": result.original_id,
                "replay_id": result.replay_id,
                "differed": [_summary(run) for run in result.runs if not run.matched],
                "runs": len(result.runs),
            },
            proposal_id=next(iter(proposals)) if len(proposals) == 1 else None,
        )
