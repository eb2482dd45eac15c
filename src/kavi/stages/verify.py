"""verify: judge the exact candidate bytes with every gate, in a fresh sandbox, gates in parallel."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from kavi import progress
from kavi.builders.base import BuildStatus
from kavi.crash import crashpoint
from kavi.errors import TransitionError
from kavi.gates.base import GateResult, GateSettings, GateStatus, timed
from kavi.kinds import kind_of, unmeasurable_gates
from kavi.ledger.fast import layers_text
from kavi.ledger.ids import new_id, utc_now
from kavi.ledger.models import GateRecord, Proposal, ProposalStatus, Verification
from kavi.ledger.store import append_event
from kavi.sandbox.copy import remove_sandbox
from kavi.sandbox.executor import weakest_layers
from kavi.spec import Example, load_hidden_examples
from kavi.stages.common import AnySpec, Forge, get_proposal, latest_build, require_status, set_status
from kavi.workspace import Workspace

PASSED = "PASSED"
FAILED = "FAILED"
INCOMPLETE = "INCOMPLETE"
# Isolation levels from weakest to strongest; a verification is as isolated as its weakest gate.
_ISOLATION_ORDER = ("none", "process", "fallback", "full")


class GateProgress(Protocol):
    """Told as each gate starts and ends, from the thread that runs it, so a front end can show which gate
    runs and which finished during a long verification. The core only reports; whether and how to show it
    (a live display on a terminal, nothing on a pipe or under --json) is the front end's business."""

    def gate_started(self, gate: str) -> None: ...

    def gate_finished(self, result: GateResult) -> None: ...


class _Unobserved:
    def gate_started(self, gate: str) -> None:
        pass

    def gate_finished(self, result: GateResult) -> None:
        pass


UNOBSERVED: GateProgress = _Unobserved()


class GateEvents:
    """Gate progress as :mod:`kavi.progress` events (``gate.started``, ``gate.finished``) for the watcher of
    the context that made it: the sink is taken here, because gates report from the verification's threads."""

    def __init__(self) -> None:
        self._sink = progress.current()

    def gate_started(self, gate: str) -> None:
        progress.emit("gate.started", {"gate": gate}, self._sink)

    def gate_finished(self, result: GateResult) -> None:
        data = {
            "gate": result.gate,
            "status": result.status.value,
            "summary": result.summary,
            "duration_s": result.duration_s,
        }
        progress.emit("gate.finished", data, self._sink)


def _observed(progress: GateProgress, gate: str, check: Callable[[], GateResult]) -> GateResult:
    progress.gate_started(gate)
    result = timed(gate, check)
    progress.gate_finished(result)
    return result


@dataclass(frozen=True)
class Verified:
    verification_id: str
    proposal_id: str
    name: str
    build_id: str
    candidate_sha256: str
    status: str
    isolation: str
    duration_s: float
    gates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def verify_skill(forge: Forge, reference: str, *, progress: GateProgress = UNOBSERVED) -> Verified:
    with forge.ledger.reading() as session:
        proposal = get_proposal(session, reference)
        require_status(
            proposal,
            (ProposalStatus.BUILT, ProposalStatus.VERIFIED, ProposalStatus.VERIFY_FAILED, ProposalStatus.TRUSTED),
            "verify",
            "build it first with `kavi build-skill`",
        )
        build = latest_build(session, proposal.id)
        if build is None or build.status != BuildStatus.SUCCEEDED or build.candidate_sha256 is None:
            raise TransitionError(f"{proposal.name} has no successful build to verify", hint="run `kavi build-skill`")
        spec = forge.spec_of(proposal)
        hidden = hidden_examples_of(forge, proposal)
        proposal_id, build_id, candidate = proposal.id, build.id, build.candidate_sha256
    files = candidate_files(forge, candidate)
    started = time.perf_counter()
    results = run_gates(forge.workspace, spec, files, progress=progress, hidden_examples=hidden)
    duration = round(time.perf_counter() - started, 4)
    crashpoint("verify.gated")
    return _record(forge, proposal_id, build_id, candidate, results, duration)


def candidate_files(forge: Forge, candidate_sha256: str) -> dict[str, bytes]:
    """The candidate's files, each read back from the store with its hash checked."""
    manifest = json.loads(forge.store.get(candidate_sha256))
    return {path: forge.store.get(digest) for path, digest in manifest["files"].items()}


def hidden_examples_of(forge: Forge, proposal: Proposal) -> tuple[Example, ...]:
    """The proposal's hidden examples, read back hash-checked (none for most proposals)."""
    if proposal.hidden_examples_sha256 is None:
        return ()
    return load_hidden_examples(forge.store.get(proposal.hidden_examples_sha256))


def run_gates(
    workspace: Workspace,
    spec: AnySpec,
    files: dict[str, bytes],
    *,
    progress: GateProgress = UNOBSERVED,
    hidden_examples: tuple[Example, ...] = (),
) -> list[GateResult]:
    """Materialise the candidate in a fresh sandbox (never the workspace) and run its kind's gates on it:
    in parallel, or one after the other where the kind says so. Reads only the workspace's settings.
    ``hidden_examples`` reach the examples gate only (never a file in the sandbox)."""
    kind = kind_of(spec.kind)
    sandbox = Path(tempfile.mkdtemp(prefix="kavi-verify-"))
    try:
        for path, content in files.items():
            target = sandbox / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        workspace.cache_dir.mkdir(parents=True, exist_ok=True)
        settings = GateSettings(
            cache_dir=workspace.cache_dir,
            timeout_s=workspace.config.verify.timeout_s,
            require_isolation=workspace.config.isolation.require,
            hidden_examples=hidden_examples,
            workspace_root=workspace.root,
        )
        context = kind.gate_context(spec, sandbox, settings)
        gates = [gate for gate in kind.gates() if gate.applies_to(spec)]
        if kind.gates_in_order:
            return [_observed(progress, gate.name, partial(gate.run, context)) for gate in gates]
        with ThreadPoolExecutor(max_workers=max(len(gates), 1)) as pool:
            futures = [pool.submit(_observed, progress, gate.name, partial(gate.run, context)) for gate in gates]
            return [future.result() for future in futures]
    finally:
        remove_sandbox(sandbox)


def verification_status(results: list[GateResult]) -> str:
    """PASSED when every gate passed; a skip of a gate that may be unmeasured (a kernel's speed without a
    GPU) is allowed, and promotion then has to accept it explicitly. Any other skip means the candidate
    could not be judged here: INCOMPLETE, which never promotes."""
    if any(result.status in (GateStatus.FAIL, GateStatus.ERROR) for result in results):
        return FAILED
    unmeasurable = unmeasurable_gates()
    skipped = [r for r in results if r.status is GateStatus.SKIPPED and r.gate not in unmeasurable]
    return INCOMPLETE if skipped else PASSED


def overall_isolation(results: list[GateResult]) -> str:
    levels = [result.isolation for result in results if result.isolation]
    if not levels:
        return "none"
    return min(levels, key=lambda level: _ISOLATION_ORDER.index(level) if level in _ISOLATION_ORDER else 0)


def _record(
    forge: Forge, proposal_id: str, build_id: str, candidate: str, results: list[GateResult], duration: float
) -> Verified:
    status = verification_status(results)
    passed = status == PASSED
    isolation = overall_isolation(results)
    layers = layers_text(weakest_layers([r.layers for r in results if r.layers is not None]))
    gates: list[dict[str, Any]] = []
    with forge.ledger.transaction() as session:
        proposal = session.get(Proposal, proposal_id)
        assert proposal is not None
        build = latest_build(session, proposal_id)
        if proposal.status == ProposalStatus.REJECTED or build is None or build.id != build_id:
            raise TransitionError(
                f"{proposal.name} changed while it was being verified (now {proposal.status})",
                hint="run `kavi verify-skill` again",
            )
        verification = Verification(
            id=new_id("v"),
            proposal_id=proposal_id,
            build_id=build_id,
            candidate_sha256=candidate,
            status=status,
            isolation=isolation,
            duration_s=duration,
            created_at=utc_now(),
            layers=layers,
        )
        session.add(verification)
        session.flush()
        for result in results:
            report_sha = forge.put_artifact(session, result.report.encode(), "GATE_REPORT") if result.report else None
            session.add(
                GateRecord(
                    verification_id=verification.id,
                    gate=result.gate,
                    status=result.status,
                    summary=result.summary,
                    duration_s=result.duration_s,
                    isolation=result.isolation,
                    report_sha256=report_sha,
                    layers=None if result.layers is None else layers_text(result.layers),
                )
            )
            gates.append(gate_dict(result, report_sha))
        append_event(
            session,
            "verification.finished",
            {
                "verification_id": verification.id,
                "status": status,
                "candidate_sha256": candidate,
                "isolation": isolation,
                "layers": layers,
                "gates": {r.gate: str(r.status) for r in results},
            },
            proposal_id=proposal_id,
            build_id=build_id,
        )
        set_status(
            session,
            proposal,
            ProposalStatus.VERIFIED if passed else ProposalStatus.VERIFY_FAILED,
            verification_id=verification.id,
        )
        crashpoint("verify.commit")
        return Verified(
            verification.id, proposal_id, proposal.name, build_id, candidate, status, isolation, duration, gates
        )


def gate_dict(result: GateResult, report_sha: str | None) -> dict[str, Any]:
    return {
        "gate": result.gate,
        "status": str(result.status),
        "summary": result.summary,
        "duration_s": result.duration_s,
        "isolation": result.isolation,
        "layers": None if result.layers is None else list(result.layers),
        "report_sha256": report_sha,
        "facts": result.facts,
        "report": result.report,
    }
