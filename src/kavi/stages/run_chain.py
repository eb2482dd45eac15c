"""run-chain: run a TRUSTED chain, each step a governed run of its pinned member.

Before anything runs, every member is resolved at the version the chain pins and its bytes are read from the
artifact store and checked against both the ledger's TRUSTED row and the hash frozen in the chain: a member
revoked since suspends the chain (nothing runs), a member whose bytes differ is an integrity error. Each step
then runs exactly as `kavi run-skill` runs a skill: its own isolated child with its own side-effect class (a
READ_ONLY step of a chain that also writes still cannot write), input and output validated with its frozen
spec, one execution recorded. Data passes from step to step through this process, never through files. The
chain's output is validated against its derived schema, and the chain run is recorded as an execution of its
own whose event lists the steps.

The composition gate runs the same steps through :func:`isolated_step_runner` without recording anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kavi.artifacts import ArtifactStore
from kavi.chain import ChainOutcome, ChainSpec, ChainStep, StepOutcome, StepRunner, execute_chain
from kavi.errors import (
    IntegrityError,
    KaviError,
    NotFoundError,
    SideEffectViolation,
    SkillExecutionError,
    SkillInputError,
    TransitionError,
    UsageError,
)
from kavi.ledger import fast
from kavi.runtime.loader import check_bytes
from kavi.stages.run import (
    Lineage,
    RunResult,
    TrustedBytes,
    keep_whole_input,
    record_execution,
    recorded_input,
    run_isolated_step,
)
from kavi.workspace import Workspace

if TYPE_CHECKING:
    from kavi.stages.run import Launch


class ChainSuspendedError(TransitionError):
    """A member a chain pins is no longer TRUSTED at that version: the chain runs nothing until re-proposed."""


@dataclass(frozen=True)
class ChainRunResult(RunResult):
    steps: tuple[dict[str, Any], ...] = ()


def load_chain(
    workspace: Workspace, conn: Any, name: str, version: int | None = None
) -> tuple[dict[str, Any], ChainSpec]:
    """The chain's TRUSTED row and its frozen definition, hash-checked (the definition is what was promoted)."""
    row, _ = fast.trusted_version(conn, name, version)
    promotion = dict(row)
    store = ArtifactStore(workspace.artifacts_dir)
    data = store.get(promotion["spec_sha256"])
    try:
        spec = ChainSpec.model_validate_json(data)
    except ValueError:
        raise UsageError(f"{name} is not a chain", hint=f"run it with `kavi run-skill {name}`") from None
    check_bytes(spec.canonical_json(), promotion["skill_sha256"], what=f"the definition of chain {name}")
    return promotion, spec


def resolve_members(workspace: Workspace, conn: Any, spec: ChainSpec) -> dict[str, TrustedBytes]:
    """Each step's member at its pinned version, bytes read once and checked against the pinned hashes."""
    store = ArtifactStore(workspace.artifacts_dir)
    members: dict[str, TrustedBytes] = {}
    for step in spec.steps:
        try:
            row, _ = fast.trusted_version(conn, step.skill, step.version)
        except (TransitionError, NotFoundError) as exc:
            raise ChainSuspendedError(
                f"chain {spec.name} is suspended: its member {step.skill} v{step.version} (step {step.id}) is no "
                f"longer TRUSTED ({exc.message})",
                hint=f"propose the chain again pinning a TRUSTED version (`kavi propose-chain`), or reinstate "
                f"{step.skill} v{step.version}",
            ) from None
        promotion = dict(row)
        if promotion["skill_sha256"] != step.skill_sha256 or promotion["spec_sha256"] != step.spec_sha256:
            raise IntegrityError(
                f"{step.skill} v{step.version} is recorded with other hashes than chain {spec.name} pinned",
                hint="run `kavi audit`",
            )
        source = store.get(step.skill_sha256)
        check_bytes(source, promotion["skill_sha256"], what=f"{step.skill} v{step.version}")
        spec_json = store.get(step.spec_sha256)
        members[step.id] = TrustedBytes(promotion, spec_json, source, f"<{step.skill} v{step.version}>")
    return members


def isolated_step_runner(
    workspace: Workspace,
    members: dict[str, TrustedBytes],
    *,
    require_isolation: bool | None = None,
    conn: Any = None,
    context: dict[str, Any] | None = None,
    launch: Launch | None = None,
    lineage: Lineage | None = None,
) -> StepRunner:
    """Run each step in a child of its own with its member's class; record it when ``conn`` is given."""

    def run_step(step: ChainStep, payload: dict[str, Any]) -> StepOutcome:
        trusted = members[step.id]
        started = time.perf_counter()
        response, isolation, layers = run_isolated_step(workspace, trusted, payload, require_isolation, launch)
        duration = round(time.perf_counter() - started, 6)
        execution_id = ""
        if conn is not None:
            kept = recorded_input(workspace, payload)
            keep_whole_input(workspace, kept)
            recorded = record_execution(
                conn,
                trusted.promotion,
                kept,
                response,
                duration,
                isolation,
                layers,
                context={**(context or {}), "step": step.id},
                lineage=lineage,
            )
            execution_id = recorded.execution_id
        ok = bool(response.get("ok"))
        return StepOutcome(
            output=response.get("output") if ok else None,
            error=None if ok else f"{response.get('error_type', 'Error')}: {response.get('error', '')}",
            phase=None if ok else str(response.get("phase") or "execute"),
            error_type=None if ok else str(response.get("error_type", "Error")),
            isolation=isolation,
            layers=layers,
            execution_id=execution_id,
            duration_s=duration,
        )

    return run_step


def run_chain(
    workspace: Workspace,
    name: str,
    payload: dict[str, Any],
    *,
    version: int | None = None,
    require_isolation: bool | None = None,
    launch: Launch | None = None,
    parent: str | None = None,
    raise_on_failure: bool = True,
) -> ChainRunResult:
    """Run a TRUSTED chain; raise (after recording) when a step fails or is blocked, naming the step.
    ``launch`` starts each step's child, as for :func:`kavi.stages.run.run_skill` (the server's warm zygote)."""
    if not workspace.has_ledger():
        raise KaviError(
            "run-chain reads the workspace's ledger, and there is none here",
            hint="run `kavi init`, then propose, verify and promote the chain",
        )
    conn = fast.connect(workspace.ledger_url)
    try:
        promotion, spec = load_chain(workspace, conn, name, version)
        members = resolve_members(workspace, conn, spec)
        recorded = recorded_input(workspace, payload)
        chain_execution = fast.new_id("x")
        # the chain's run is a node of its caller's tree (a chat, a replay) or a root; its steps are its children
        chain_lineage = Lineage(parent, fast.root_of(conn, parent) if parent else None)
        steps_lineage = Lineage(chain_execution, chain_lineage.root_id or chain_execution)
        runner = isolated_step_runner(
            workspace,
            members,
            require_isolation=require_isolation,
            conn=conn,
            launch=launch,
            lineage=steps_lineage,
            context={"chain": name, "chain_version": promotion["version"], "chain_execution_id": chain_execution},
        )
        started = time.perf_counter()
        keep_whole_input(workspace, recorded)
        outcome = execute_chain(spec, payload, runner)
        duration = round(time.perf_counter() - started, 6)
        isolation, layers = _weakest(outcome)
        result = record_execution(
            conn,
            promotion,
            recorded,
            _response(outcome),
            duration,
            isolation,
            layers,
            execution_id=chain_execution,
            context={"chain_steps": [step["execution_id"] for step in outcome.steps]},
            lineage=chain_lineage,
        )
    finally:
        conn.close()
    chain_result = ChainRunResult(**{**result.__dict__, "steps": tuple(outcome.steps)})
    if not outcome.ok and raise_on_failure:
        cls = {"input": SkillInputError, "side_effect": SideEffectViolation}.get(
            str(outcome.phase), SkillExecutionError
        )
        if outcome.phase == "input" and outcome.failed_step is not None:
            cls = SkillExecutionError  # a step refusing what an earlier step produced is the chain's fault
        raise cls(f"chain {name} v{promotion['version']} failed: {outcome.error} (execution {chain_execution})")
    return chain_result


def _response(outcome: ChainOutcome) -> dict[str, Any]:
    if outcome.ok:
        return {"ok": True, "output": outcome.output}
    return {"ok": False, "phase": outcome.phase, "error_type": outcome.error_type or "Error", "error": outcome.error}


def _weakest(outcome: ChainOutcome) -> tuple[str, tuple[str, ...]]:
    """A chain run is as isolated as its least isolated step."""
    from kavi.sandbox.executor import weakest_layers

    order = ("none", "in-process", "process", "fallback", "full")
    levels = [step["isolation"] for step in outcome.steps if step["isolation"]]
    isolation = min(levels, key=lambda level: order.index(level) if level in order else 0) if levels else "none"
    layers = weakest_layers([tuple(step["layers"]) for step in outcome.steps])
    return isolation, layers
