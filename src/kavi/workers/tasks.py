"""What a worker does with each kind of job: open its own workspace on the shared ledger, run the stage
exactly as the local command would (so results land in the ledger the same way), and say how it goes.

Every event a job appends records the worker (name, host, pid, job, attempt) through
:data:`kavi.ledger.store.EVENT_ORIGIN`; the verification and gate rows record the isolation layers as a local
run does. A job retried after its worker died first looks for the event that already finished it, so a
worker killed between the ledger's commit and the queue's acknowledgement does not verify twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import procrastinate
from procrastinate.job_context import JobContext
from sqlmodel import col, select

from kavi.config import IsolationSettings
from kavi.errors import KaviError
from kavi.gates.base import GateResult
from kavi.ledger.jobs import add_progress
from kavi.ledger.models import Event
from kavi.ledger.store import EVENT_ORIGIN
from kavi.stages.common import Forge
from kavi.workers.host import Host
from kavi.workspace import find_workspace

TASK_PREFIX = "kavi."
# A job a worker refuses (it lacks what the job requires) goes back to the queue for another worker.
REFUSED_RETRY_WAIT_S = 2
REFUSED_MAX_ATTEMPTS = 10


class WorkerRefused(KaviError):
    """This worker lacks what the job requires (bubblewrap for full isolation); another may take it."""


@dataclass(frozen=True)
class WorkerState:
    """What a worker process hands every job: where its own workspace is, and what its machine is."""

    workspace_root: Path
    host: Host


class JobProgress:
    """Tells `kavi wait` (on any machine) what the job does: one row per gate start and end."""

    def __init__(self, forge: Forge, job_id: int, worker: str) -> None:
        self.engine = forge.ledger.engine
        self.job_id = job_id
        self.worker = worker

    def say(self, kind: str, message: str) -> None:
        add_progress(self.engine, self.job_id, self.worker, kind, message)

    def gate_started(self, gate: str) -> None:
        self.say("gate", f"{gate} started")

    def gate_finished(self, result: GateResult) -> None:
        isolation = f", isolation {result.isolation}" if result.isolation else ""
        self.say("gate", f"{result.gate} {result.status} in {result.duration_s:.2f} s{isolation}")

    def forge_step(self, stage: str, data: dict[str, Any]) -> None:
        shown = {key: data[key] for key in ("attempt", "status", "build_id", "verification_id") if key in data}
        self.say("step", f"{stage} {json.dumps(shown, sort_keys=True)}")


def _verify(forge: Forge, arguments: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
    from kavi.stages.verify import verify_skill

    verified = verify_skill(forge, arguments["proposal_id"], progress=progress)
    summary = {key: value for key, value in verified.__dict__.items() if key != "gates"}
    gates = [{k: gate[k] for k in ("gate", "status", "summary", "isolation", "layers")} for gate in verified.gates]
    return {"ok": verified.passed, **summary, "gates": gates}


def _build(forge: Forge, arguments: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
    from kavi.stages.build import build_skill

    options = dict(arguments["options"])
    builder = options.pop("builder", None)
    progress.say("step", f"building with {builder or forge.workspace.config.build.builder}")
    built = build_skill(forge, arguments["proposal_id"], builder_name=builder, builder_options=options or None)
    return {"ok": built.status == "SUCCEEDED", **built.__dict__}


def _forge(forge: Forge, arguments: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
    from kavi.stages.forge import Budget, forge_skill

    options = dict(arguments["options"])
    builder = options.pop("builder", None)
    budget = Budget(options.pop("max_attempts", 3), options.pop("max_cost_usd", None), options.pop("max_minutes", None))
    forged = forge_skill(
        forge,
        arguments["proposal_id"],
        builder_name=builder,
        builder_options=options or None,
        budget=budget,
        progress=progress.forge_step,
        gate_progress=progress,
    )
    return {"ok": forged.status == "VERIFIED", **forged.__dict__}


@dataclass(frozen=True)
class JobKind:
    run: Callable[[Forge, dict[str, Any], JobProgress], dict[str, Any]]
    # The event that finishes such a job: found with this job's id, it was already done before a retry.
    finished_event: str | None


JOB_KINDS: dict[str, JobKind] = {
    "verify": JobKind(_verify, "verification.finished"),
    "build": JobKind(_build, "build.finished"),
    "forge": JobKind(_forge, None),  # several steps: a retry forges on from where the ledger stands
}


def run_job(context: JobContext, task: str, arguments: dict[str, Any]) -> None:
    state: WorkerState = context.additional_context["kavi"]
    host = state.host
    job = context.job
    assert job.id is not None
    forge = _open_forge(state.workspace_root, require_full=bool(arguments["require_full_isolation"]))
    try:
        progress = JobProgress(forge, job.id, host.name)
        if arguments["require_full_isolation"] and not host.full_isolation:
            progress.say("refused", f"{host.name} cannot give full isolation ({host.isolation_detail})")
            raise WorkerRefused(f"{host.name} has no working bubblewrap and this job requires full isolation")
        progress.say("started", f"{task} {arguments['proposal_id']} on {host.name} (attempt {job.attempts + 1})")
        done = _already_finished(forge, JOB_KINDS[task].finished_event, arguments["proposal_id"], job.id)
        if done is not None:
            progress.say("result", json.dumps({"ok": done.get("status") in ("PASSED", "SUCCEEDED"), **done}))
            return
        token = EVENT_ORIGIN.set(host.origin(job.id, job.attempts + 1, task))
        try:
            result = JOB_KINDS[task].run(forge, arguments, progress)
        except KaviError as exc:
            progress.say("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            EVENT_ORIGIN.reset(token)
        progress.say("result", json.dumps(result, default=str))
    finally:
        forge.close()


def _open_forge(root: Path, *, require_full: bool) -> Forge:
    """The worker's own workspace (its folder is a cache; the ledger is shared). A job that requires full
    isolation gets it whatever this workspace's kavi.toml says."""
    workspace = find_workspace(root)
    if require_full and not workspace.config.isolation.require:
        config = workspace.config.model_copy(update={"isolation": IsolationSettings(require=True)})
        workspace = replace(workspace, _config=config)
    return Forge.open(workspace)


def _already_finished(forge: Forge, kind: str | None, proposal_id: str, job_id: int) -> dict[str, Any] | None:
    if kind is None:
        return None
    with forge.ledger.reading() as session:
        events = session.exec(
            select(Event).where(Event.kind == kind, Event.proposal_id == proposal_id).order_by(col(Event.id))
        )
        for event in events:
            payload = json.loads(event.payload)
            if payload.get("worker", {}).get("job_id") == job_id:
                return dict(payload)
    return None


def queue_app(connector: Any) -> procrastinate.App:
    """A procrastinate app with kavi's tasks, on ``connector`` (sync for deferring, async for a worker)."""
    app = procrastinate.App(connector=connector)
    retry = procrastinate.RetryStrategy(
        max_attempts=REFUSED_MAX_ATTEMPTS, wait=REFUSED_RETRY_WAIT_S, retry_exceptions={WorkerRefused}
    )
    for task in JOB_KINDS:
        app.task(name=TASK_PREFIX + task, pass_context=True, retry=retry)(_task_body(task))
    return app


def _task_body(task: str) -> Callable[..., None]:
    def body(context: JobContext, **arguments: Any) -> None:
        run_job(context, task, arguments)

    body.__name__ = f"{task}_job"
    return body
