"""build: run a builder in a sandbox copy of the workspace and keep only what the allowlist accepts.

Three transactions, so a slow builder never holds the ledger: start the attempt, (builder runs), finish it.
A crash between them leaves a RUNNING attempt that the next build marks ABANDONED.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from kavi.builders.base import Builder, BuildOutcome, BuildPacket, BuildStatus, TraceEvent
from kavi.builders.registry import create_builder
from kavi.crash import crashpoint
from kavi.errors import BuildError, BuilderUnavailableError, KaviError, TransitionError
from kavi.kinds import kind_of
from kavi.ledger.ids import new_id, utc_now
from kavi.ledger.models import Build, Proposal, ProposalStatus
from kavi.ledger.store import append_event
from kavi.sandbox.allowlist import DiffVerdict, judge_files, judge_sandbox, snapshot_to_bytes, snapshot_tree
from kavi.sandbox.copy import make_build_sandbox, remove_sandbox
from kavi.spec import canonical_json
from kavi.stages.common import AnySpec, Forge, get_proposal, latest_build, require_status, set_status

RUNNING = "RUNNING"
ABANDONED = "ABANDONED"

BUILDABLE = (
    ProposalStatus.PROPOSED,
    ProposalStatus.BUILT,
    ProposalStatus.BUILD_FAILED,
    ProposalStatus.VERIFIED,
    ProposalStatus.VERIFY_FAILED,
    ProposalStatus.TRUSTED,
    ProposalStatus.ESCALATED,
)


@dataclass(frozen=True)
class Built:
    build_id: str
    proposal_id: str
    name: str
    attempt: int
    builder: str
    status: str
    reason: str | None = None
    failure_kind: str | None = None
    candidate_sha256: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    sandbox: str | None = None
    packet: str | None = None
    cost_usd: float | None = None


def make_packet(proposal: Proposal, spec: AnySpec, attempt: int, **extra: Any) -> BuildPacket:
    rules = kind_of(spec.kind).build_rules(spec)
    return BuildPacket(
        proposal_id=proposal.id,
        attempt=attempt,
        spec=spec.model_dump(mode="json"),
        allowed_paths=spec.allowed_paths,
        rules=rules,
        previous_failure=extra.get("previous_failure"),
        advice=extra.get("advice"),
        performance=extra.get("performance"),
        guide=kind_of(spec.kind).build_guide(spec),
    )


def build_skill(
    forge: Forge,
    reference: str,
    *,
    builder_name: str | None = None,
    builder_options: dict[str, Any] | None = None,
    previous_failure: dict[str, Any] | None = None,
    advice: str | None = None,
    keep_sandbox: bool = False,
    builder: Builder | None = None,
    performance: dict[str, Any] | None = None,
) -> Built:
    """Start a new attempt with ``builder_name`` (default from kavi.toml) and judge what it produced.
    ``builder``, when given, is used as it is (forge's own lint fixer, which no configuration names).
    ``performance`` (forge --optimize) is the measured speed of the candidate to beat, for the packet."""
    if builder is None:
        name = builder_name or forge.workspace.config.build.builder
        options = {**forge.workspace.config.build.options.get(name, {}), **(builder_options or {})}
        builder = create_builder(name, options)
    name = builder.name
    ok, why = builder.available()
    if not ok:
        raise BuilderUnavailableError(f"builder {name!r} is not available: {why}")
    build, spec, packet = _start_attempt(forge, reference, name, previous_failure, advice, performance)
    crashpoint("build.started")
    sandbox = make_build_sandbox(forge.workspace.root, prefix=f"build-{build.id}")
    keep = keep_sandbox  # a sandbox outlives its build only when asked to, or while a person fills it in
    try:
        started = time.perf_counter()
        try:
            packet_path = packet.write_into(sandbox)
            before = snapshot_tree(sandbox)
            outcome = builder.build(packet, sandbox)
        except KaviError as exc:
            outcome = BuildOutcome(BuildStatus.FAILED, reason=str(exc), failure_kind="BUILD_ERROR")
        except BaseException:
            _finish(
                forge,
                build.id,
                spec,
                BuildOutcome(BuildStatus.FAILED, "the builder crashed", failure_kind="BUILD_ERROR"),
                None,
            )
            raise
        outcome = _with_duration(outcome, time.perf_counter() - started)
        crashpoint("build.built")
        if outcome.status is BuildStatus.AWAITING_INPUT:
            result = _await_input(forge, build.id, outcome, sandbox, before, packet_path)
            keep = True  # until `--resume` or `reject` ends the build
            return result
        verdict = (
            judge_sandbox(sandbox, before, spec.allowed_paths, required=spec.allowed_paths)
            if outcome.status is BuildStatus.SUCCEEDED
            else None
        )
        return _finish(forge, build.id, spec, outcome, verdict, sandbox=str(sandbox) if keep_sandbox else None)
    finally:
        if not keep:
            remove_sandbox(sandbox)


def resume_build(forge: Forge, reference: str, *, source: Path | None = None) -> Built:
    """Finish a manual build: judge the files in ``source`` (or in the build's own sandbox)."""
    with forge.ledger.reading() as session:
        proposal = get_proposal(session, reference)
        build = latest_build(session, proposal.id)
        if (
            proposal.status != ProposalStatus.AWAITING_INPUT
            or build is None
            or build.status != BuildStatus.AWAITING_INPUT
        ):
            raise TransitionError(
                f"{proposal.name} ({proposal.id}) has no build waiting for input (it is {proposal.status})",
                hint="start one with `kavi build-skill ID --builder manual`",
            )
        spec = forge.spec_of(proposal)
    if source is not None:
        if not source.is_dir():
            raise BuildError(f"--from {source} is not a folder")
        verdict = judge_files(source, spec.allowed_paths, required=spec.allowed_paths)
        outcome = BuildOutcome(BuildStatus.SUCCEEDED, trace=(TraceEvent("resume", {"from": str(source)}),))
    else:
        sandbox = Path(build.sandbox or "")
        if not build.sandbox or not sandbox.is_dir() or build.snapshot_sha256 is None:
            raise BuildError(
                f"the sandbox of build {build.id} is gone",
                hint="pass the files with --from DIR, or start a new build",
            )
        before = json.loads(forge.store.get(build.snapshot_sha256))
        verdict = judge_sandbox(sandbox, before, spec.allowed_paths, required=spec.allowed_paths)
        outcome = BuildOutcome(BuildStatus.SUCCEEDED, trace=(TraceEvent("resume", {"sandbox": str(sandbox)}),))
    result = _finish(forge, build.id, spec, outcome, verdict, expected_status=BuildStatus.AWAITING_INPUT)
    if build.sandbox:  # the waiting build has ended, whichever folder its files came from
        remove_sandbox(Path(build.sandbox))
    return result


def _start_attempt(
    forge: Forge,
    reference: str,
    builder: str,
    previous_failure: dict[str, Any] | None,
    advice: str | None,
    performance: dict[str, Any] | None = None,
) -> tuple[Build, AnySpec, BuildPacket]:
    with forge.ledger.transaction() as session:
        proposal = get_proposal(session, reference)
        if proposal.status == ProposalStatus.AWAITING_INPUT:
            waiting = latest_build(session, proposal.id)
            where = f" in {waiting.sandbox}" if waiting and waiting.sandbox else ""
            raise TransitionError(
                f"{proposal.name} has a manual build waiting for input{where}; no other build starts until it ends",
                hint=f"write the files there and run `kavi build-skill {proposal.id} --resume`, or take them from "
                f"a folder with `kavi build-skill {proposal.id} --resume --from DIR`, or end the proposal with "
                f"`kavi reject {proposal.id}` and propose it again",
            )
        require_status(proposal, BUILDABLE, "build", "a rejected proposal cannot be built; propose again")
        spec = forge.spec_of(proposal)
        if kind_of(spec.kind).built_at_propose is not None:
            noun = kind_of(spec.kind).noun
            raise TransitionError(
                f"{proposal.name} is a {noun}: nothing is built, its candidate was recorded when it was proposed",
                hint=f"verify it with `kavi verify-{noun} {proposal.name}`",
            )
        _abandon_running(session, proposal.id)
        previous = latest_build(session, proposal.id)
        attempt = (previous.attempt + 1) if previous else 1
        packet = make_packet(
            proposal, spec, attempt, previous_failure=previous_failure, advice=advice, performance=performance
        )
        packet_sha = forge.put_artifact(session, canonical_json(packet.to_json()), "BUILD_PACKET")
        build = Build(
            id=new_id("b"),
            proposal_id=proposal.id,
            attempt=attempt,
            parent_build_id=previous.id if previous else None,
            builder=builder,
            status=RUNNING,
            packet_sha256=packet_sha,
            created_at=utc_now(),
        )
        session.add(build)
        session.flush()
        append_event(
            session,
            "build.started",
            {"attempt": attempt, "builder": builder, "packet_sha256": packet_sha, "parent": build.parent_build_id},
            proposal_id=proposal.id,
            build_id=build.id,
        )
    return build, spec, packet


def _abandon_running(session: Session, proposal_id: str) -> None:
    for stale in session.exec(select(Build).where(Build.proposal_id == proposal_id, col(Build.status) == RUNNING)):
        stale.status = ABANDONED
        stale.reason = "the process running this build stopped before it finished"
        stale.finished_at = utc_now()
        session.add(stale)
        append_event(session, "build.abandoned", {"attempt": stale.attempt}, proposal_id=proposal_id, build_id=stale.id)


def _await_input(
    forge: Forge, build_id: str, outcome: BuildOutcome, sandbox: Path, before: dict[str, str], packet_path: Path
) -> Built:
    with forge.ledger.transaction() as session:
        build = _load_build(session, build_id, RUNNING)
        proposal = session.get(Proposal, build.proposal_id)
        assert proposal is not None
        build.status = BuildStatus.AWAITING_INPUT
        build.reason = outcome.reason
        build.sandbox = str(sandbox)
        build.snapshot_sha256 = forge.put_artifact(session, snapshot_to_bytes(before), "SNAPSHOT")
        session.add(build)
        _record_trace(session, build, outcome.trace)
        set_status(session, proposal, ProposalStatus.AWAITING_INPUT, build_id=build.id, sandbox=str(sandbox))
        return _built(proposal, build, packet=str(packet_path))


def _finish(
    forge: Forge,
    build_id: str,
    spec: AnySpec,
    outcome: BuildOutcome,
    verdict: DiffVerdict | None,
    *,
    sandbox: str | None = None,
    expected_status: str = RUNNING,
) -> Built:
    with forge.ledger.transaction() as session:
        build = _load_build(session, build_id, expected_status)
        proposal = session.get(Proposal, build.proposal_id)
        assert proposal is not None
        build.finished_at = utc_now()
        build.duration_s = outcome.duration_s or build.duration_s
        build.input_tokens, build.output_tokens = outcome.usage.input_tokens, outcome.usage.output_tokens
        build.cost_usd = outcome.cost_usd
        build.sandbox = sandbox
        _record_trace(session, build, outcome.trace)
        files: dict[str, str] = {}
        if outcome.status is not BuildStatus.SUCCEEDED:
            build.status = BuildStatus.FAILED
            build.reason = outcome.reason or "the builder reported a failure"
            build.failure_kind = outcome.failure_kind or "BUILD_ERROR"
        elif verdict is None or not verdict.accepted:
            build.status = BuildStatus.FAILED
            build.reason = "; ".join(verdict.violations if verdict else ["no files were judged"])
            build.failure_kind = "GATE_VIOLATION"
        else:
            for path, content in sorted(verdict.files.items()):
                files[path] = forge.put_artifact(session, content, "SOURCE")
            manifest = {"kind": spec.kind, "name": spec.name, "files": files}
            build.candidate_sha256 = forge.put_artifact(session, canonical_json(manifest), "CANDIDATE")
            build.status = BuildStatus.SUCCEEDED
            build.reason = None  # a resumed manual build no longer waits for anyone
        session.add(build)
        payload = {
            "attempt": build.attempt,
            "status": build.status,
            "reason": build.reason,
            "failure_kind": build.failure_kind,
            "candidate_sha256": build.candidate_sha256,
            "files": files,
        }
        append_event(session, "build.finished", payload, proposal_id=proposal.id, build_id=build.id)
        succeeded = build.status == BuildStatus.SUCCEEDED
        set_status(
            session, proposal, ProposalStatus.BUILT if succeeded else ProposalStatus.BUILD_FAILED, build_id=build.id
        )
        crashpoint("build.commit")
        return _built(proposal, build, files=files)


def _load_build(session: Session, build_id: str, expected_status: str) -> Build:
    build = session.get(Build, build_id)
    if build is None or build.status != expected_status:
        raise TransitionError(
            f"build {build_id} changed while it ran (now {build.status if build else 'missing'})",
            hint="another kavi process took it over; see `kavi show`",
        )
    return build


def _record_trace(session: Session, build: Build, trace: tuple[TraceEvent, ...]) -> None:
    for event in trace:
        append_event(session, f"trace.{event.kind}", event.data, proposal_id=build.proposal_id, build_id=build.id)


def _with_duration(outcome: BuildOutcome, duration: float) -> BuildOutcome:
    return BuildOutcome(
        status=outcome.status,
        reason=outcome.reason,
        trace=outcome.trace,
        usage=outcome.usage,
        cost_usd=outcome.cost_usd,
        duration_s=outcome.duration_s or round(duration, 4),
        failure_kind=outcome.failure_kind,
    )


def _built(
    proposal: Proposal, build: Build, *, files: dict[str, str] | None = None, packet: str | None = None
) -> Built:
    return Built(
        build_id=build.id,
        proposal_id=proposal.id,
        name=proposal.name,
        attempt=build.attempt,
        builder=build.builder,
        status=build.status,
        reason=build.reason,
        failure_kind=build.failure_kind,
        candidate_sha256=build.candidate_sha256,
        files=files or {},
        sandbox=build.sandbox,
        packet=packet,
        cost_usd=build.cost_usd,
    )
