"""run: execute a TRUSTED skill.

The skill's bytes are read once, hashed and compared with the ledger before anything of them is imported;
those same bytes (never the path) go to an isolated child that validates input and output with the spec's
models. On a clone with kavi.lock but no ledger, the TRUSTED hash and frozen spec come from the lock and
the execution cannot be recorded (the result says ``recorded: false``). This module is on the hot path of
`kavi run-skill` and imports only the standard library and kavi's stdlib-only leaves; pydantic is paid
for in the child, where the skill needs it anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kavi.crash import crashpoint
from kavi.errors import (
    IntegrityError,
    KaviError,
    SideEffectViolation,
    SkillExecutionError,
    SkillInputError,
    TransitionError,
)
from kavi.integrity.lockdata import LOCK_FILE, load_lock, locked_entry
from kavi.ledger import fast, queries
from kavi.runtime.child import child_argv, read_report
from kavi.runtime.loader import check_bytes
from kavi.sandbox.executor import base_environment, policies_for_spec, recording_layers, run_isolated, weakest_layers
from kavi.side_effects import DeclaredEffects, SideEffect
from kavi.workspace import Workspace

DEFAULT_TIMEOUT_S = 60.0
REFUSAL_MARK = "EffectBlocked: refused by kavi's audit hook"
if TYPE_CHECKING:
    from collections.abc import Callable

    from kavi.sandbox.executor import ExecResult

    # run_isolated's signature: (argv, *, cwd, policy, stdin) -> ExecResult
    Launch = Callable[..., ExecResult]

# What the ledger keeps of a run's input (``[run] record_input``): "preview" keeps its sha256, its size and
# this many characters of its canonical JSON; "full" keeps all of it.
INPUT_PREVIEW_CHARS = 1024
RECORD_INPUT_MODES = ("preview", "full")
# An input longer than its preview and at most this many bytes is also kept whole in the artifact store
# (under its sha256, outside the ledger's rows), so `kavi replay` can run it again.
REPLAY_INPUT_MAX_BYTES = 1 << 20
RUN_INPUT_ARTIFACT = "run-input"


@dataclass(frozen=True)
class RecordedInput:
    """What the ledger keeps of a run's input: ``kept`` (input_json), its sha256 and size, and the whole
    canonical text when it is to be kept as an artifact too (None when ``kept`` is all of it, or too big)."""

    kept: str
    sha256: str
    size: int
    whole: bytes | None = None


@dataclass(frozen=True)
class RunResult:
    execution_id: str
    name: str
    version: int
    output: dict[str, Any] | None
    error: str | None
    duration_s: float
    isolation: str
    skill_sha256: str
    recorded: bool = True
    layers: tuple[str, ...] = ()  # the isolation layers in force for the skill's process

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class TrustedBytes:
    """A TRUSTED version's row, its frozen spec and its source, all hash-checked."""

    promotion: dict[str, Any]
    spec_json: bytes
    source: bytes
    filename: str


def load_trusted(workspace: Workspace, conn: Any, name: str, version: int | None) -> TrustedBytes:
    """Read the bytes to run once and check them against the ledger before anything imports them."""
    row, is_latest = fast.trusted_version(conn, name, version)
    promotion = row
    artifacts = workspace.artifacts_dir
    spec_json = _read_artifact(artifacts, promotion["spec_sha256"], "the frozen spec")
    if is_latest:
        path = workspace.skills_dir / f"{name}.py"
        try:
            source = path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(
                f"skills/{name}.py is missing although v{promotion['version']} is TRUSTED",
                hint=f"re-install it with `kavi promote-skill {promotion['proposal_id']}`",
            ) from None
        filename = str(path)
    else:
        source = _read_artifact(artifacts, promotion["skill_sha256"], f"{name} v{promotion['version']}")
        filename = f"<{name} v{promotion['version']}>"
    try:
        check_bytes(source, promotion["skill_sha256"], what=f"skills/{name}.py" if is_latest else filename)
    except IntegrityError as exc:
        fast.write(
            conn,
            [],
            [
                {
                    "kind": "run.refused",
                    "payload": {"name": name, "version": promotion["version"], "reason": exc.message},
                    "proposal_id": promotion["proposal_id"],
                }
            ],
        )
        raise
    return TrustedBytes(promotion, spec_json, source, filename)


def _read_artifact(root: Path, digest: str, what: str) -> bytes:
    try:
        data = (root / digest[:2] / digest).read_bytes()
    except FileNotFoundError:
        raise IntegrityError(
            f"{what} ({digest[:12]}) is missing from the artifact store", hint="run `kavi audit`"
        ) from None
    check_bytes(data, digest, what=what)
    return data


def run_skill(
    workspace: Workspace,
    name: str,
    payload: dict[str, Any],
    *,
    version: int | None = None,
    in_process: bool = False,
    require_isolation: bool | None = None,
    parent: str | None = None,
    raise_on_failure: bool = True,
    launch: Launch | None = None,
) -> RunResult:
    """Run one TRUSTED version and record the execution. ``parent`` is the execution it runs under (a chat, a
    chain run, a replay: see kavi.stages.executions); ``raise_on_failure`` False returns a failed run's result
    instead of raising (it is recorded either way). ``launch`` starts its child (default :func:`run_isolated`,
    a fresh isolated process; the server passes its warm zygote's, :meth:`kavi.sandbox.warm.Zygote.run`);
    everything else — the hash check, validation, recording — is the same whoever launches."""
    if workspace.runs_from_lock():
        if parent is not None:
            raise KaviError("a run under a parent execution needs a ledger", hint="run `kavi init` to adopt the lock")
        trusted = load_trusted_from_lock(workspace, name, version)
        return _execute(workspace, None, trusted, payload, in_process, require_isolation, Lineage(), launch)
    conn = fast.connect(workspace.ledger_url)
    try:
        lineage = Lineage(parent, fast.root_of(conn, parent) if parent else None, raise_on_failure)
        trusted = load_trusted(workspace, conn, name, version)
        return _execute(workspace, conn, trusted, payload, in_process, require_isolation, lineage, launch)
    finally:
        conn.close()


@dataclass(frozen=True)
class Lineage:
    """Where a run sits in its execution tree (None, None: at the top, its own root), and whether a failed
    run raises."""

    parent_id: str | None = None
    root_id: str | None = None
    raise_on_failure: bool = True


def load_trusted_from_lock(workspace: Workspace, name: str, version: int | None) -> TrustedBytes:
    """The installed version's bytes and frozen spec, checked against kavi.lock (a clone with no ledger)."""
    entry = locked_entry(load_lock(workspace.root), name, version)
    spec_json = entry["spec"].encode("utf-8")
    check_bytes(spec_json, entry["spec_sha256"], what=f"the frozen spec of {name} in {LOCK_FILE}")
    relative = f"skills/{name}.py"
    path = workspace.root / relative
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(
            f"{relative} is missing although {LOCK_FILE} lists it", hint="restore it from git"
        ) from None
    check_bytes(source, str(entry["files"].get(relative, "")), what=relative)
    promotion = {
        "id": entry["promotion_id"],
        "proposal_id": entry["proposal_id"],
        "name": name,
        "version": entry["version"],
        "skill_sha256": entry["files"][relative],
        "side_effect": entry["side_effect"],
    }
    return TrustedBytes(promotion, spec_json, source, str(path))


def _execute(
    workspace: Workspace,
    conn: Any,
    trusted: TrustedBytes,
    payload: dict[str, Any],
    in_process: bool,
    require_isolation: bool | None,
    lineage: Lineage,
    launch: Launch | None = None,
) -> RunResult:
    promotion = trusted.promotion
    effect = SideEffect(promotion["side_effect"])
    if in_process and effect is not SideEffect.READ_ONLY:
        raise TransitionError(f"--in-process is only for READ_ONLY skills; {promotion['name']} is {effect}")
    recorded = recorded_input(workspace, payload)  # a bad [run] record_input fails before anything runs
    started = time.perf_counter()
    layers: tuple[str, ...] = ("hook",)  # in-process: the hook only, not a boundary
    if in_process:
        response, isolation = _run_in_process(workspace, trusted, payload), "in-process"
    else:
        with recording_layers() as runs:
            response, isolation = _run_in_child(workspace, trusted, payload, require_isolation, launch)
        layers = weakest_layers(runs)
    duration = round(time.perf_counter() - started, 6)
    if conn is not None:
        keep_whole_input(workspace, recorded)
    return _record(conn, promotion, recorded, response, duration, isolation, layers, lineage)


def keep_whole_input(workspace: Workspace, recorded: RecordedInput) -> None:
    """Store the bytes of an input kept whole (for replay) before the row that names them is written."""
    if recorded.whole is not None:
        from kavi.artifacts import ArtifactStore  # stdlib only

        ArtifactStore(workspace.artifacts_dir).put(recorded.whole)


def recorded_input(workspace: Workspace, payload: dict[str, Any]) -> RecordedInput:
    """What the ledger keeps of the canonical input: a 10 MB input must not grow the ledger by 10 MB unless
    ``[run] record_input = "full"`` asks for it; up to REPLAY_INPUT_MAX_BYTES it is kept whole as an
    artifact, so the run can be replayed."""
    import hashlib

    from kavi.errors import ConfigError

    mode = workspace.raw_setting("run", "record_input", "preview")
    if mode not in RECORD_INPUT_MODES:
        raise ConfigError(f"[run] record_input is {mode!r}; use one of {', '.join(RECORD_INPUT_MODES)}")
    canonical = json.dumps(payload, sort_keys=True)
    data = canonical.encode("utf-8")
    kept = canonical if mode == "full" or len(canonical) <= INPUT_PREVIEW_CHARS else canonical[:INPUT_PREVIEW_CHARS]
    whole = data if kept != canonical and len(data) <= REPLAY_INPUT_MAX_BYTES else None
    return RecordedInput(kept, hashlib.sha256(data).hexdigest(), len(data), whole)


def request_for(trusted: TrustedBytes, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": trusted.promotion["name"],
        "sha256": trusted.promotion["skill_sha256"],
        "source": trusted.source.decode("utf-8"),
        "filename": trusted.filename,
        "spec": trusted.spec_json.decode("utf-8"),
        "input": payload,
    }


def _run_in_child(
    workspace: Workspace,
    trusted: TrustedBytes,
    payload: dict[str, Any],
    require_isolation: bool | None,
    launch: Launch | None = None,
) -> tuple[dict[str, Any], str]:
    spec_data = json.loads(trusted.spec_json)
    declared = DeclaredEffects.from_spec_data(spec_data)
    check_programs(trusted.promotion["name"], spec_data.get("programs", ()))
    secrets = {name: os.environ[name] for name in declared.secrets if name in os.environ}
    required = workspace.raw_setting("isolation", "require", False) if require_isolation is None else require_isolation
    policy, effects = policies_for_spec(
        declared,
        workspace.root,
        secrets=secrets,
        timeout_s=float(workspace.raw_setting("run", "timeout_s", DEFAULT_TIMEOUT_S)),
        require_isolation=bool(required),
        read_workspace=False,
    )
    for root in effects.write_roots:
        Path(root).mkdir(parents=True, exist_ok=True)
    request = json.dumps({**request_for(trusted, payload), "policy": effects.as_dict()}).encode()
    result = (launch or run_isolated)(child_argv(), cwd=workspace.root, policy=policy, stdin=request)
    isolation = str(result.isolation)
    if result.blocked:
        block = result.blocked[0]
        detail = (
            f"{block.get('effect', 'an effect')} ({block.get('detail', '')}) is not allowed for {declared.side_effect}"
        )
        return {"ok": False, "phase": "side_effect", "error_type": "SideEffectViolation", "error": detail}, isolation
    if result.timed_out or result.killed_reason:
        reason = result.killed_reason or "timeout"
        return {
            "ok": False,
            "phase": "limits",
            "error_type": "Stopped",
            "error": f"stopped by the {reason} limit",
        }, isolation
    # The reporter's one line; the skill's own prints are on stderr and never read as a response.
    response = read_report(result.stdout)
    if response is None:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        response = {
            "ok": False,
            "error_type": "Crash",
            "error": f"the skill process exited {result.returncode} without one report: {tail}",
        }
    return response, isolation


def check_programs(name: str, programs: Any) -> None:
    """Refuse to run when a declared program is no longer the file frozen at propose time.

    Each SUBPROCESS program was recorded as the absolute path the child's PATH gives it and that file's hash;
    a program replaced since (a package upgrade, a planted file earlier on PATH) would run with the skill's
    trust without anyone having looked at it.
    """
    path_variable = base_environment()["PATH"]
    for program in programs:
        found = _which(program["name"], path_variable)
        digest = ""
        if found:
            with open(found, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if found != program["path"] or digest != program["sha256"]:
            now = f"{found} ({digest[:12]})" if found else "nothing"
            raise IntegrityError(
                f"{name} may run {program['name']}, frozen as {program['path']} ({program['sha256'][:12]}), but "
                f"{program['name']} is now {now}; nothing was run",
                hint="if the new program is trusted, propose the skill again so that a person reviews it",
            )


def _which(name: str, path_variable: str) -> str:
    for folder in path_variable.split(os.pathsep):
        candidate = os.path.join(folder or ".", name)  # noqa: PTH118
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):  # noqa: PTH113
            return os.path.realpath(candidate)
    return ""


def _run_in_process(workspace: Workspace, trusted: TrustedBytes, payload: dict[str, Any]) -> dict[str, Any]:
    """READ_ONLY only: the hook goes on in this process (for good) before the skill's bytes execute.

    That is all it promises: the audit hook, not a boundary (no namespaces, seccomp, Landlock or limits).
    The skill's module is dropped and collected right after the call, while the hook is still on, so what it
    holds is finalized under the hook rather than after CPython clears the hooks at exit; an object the skill
    handed to a process-wide registry (``codecs.register``, ``atexit``, a thread) can still run then.
    """
    from kavi.runtime.audit import EffectPolicy
    from kavi.runtime.child import handle

    effects = EffectPolicy.from_spec(DeclaredEffects(SideEffect.READ_ONLY), workspace.root)
    request = {**request_for(trusted, payload), "policy": effects.as_dict()}
    spec_name = json.loads(trusted.spec_json)["name"]
    try:
        response = handle(request)
    finally:
        _finalize_now(spec_name)
    if not response.get("ok") and REFUSAL_MARK in str(response.get("error", "")):
        # the hook refuses with a TypeError raised from C (no hook frame in its traceback) naming EffectBlocked
        response = {**response, "phase": "side_effect", "error_type": "SideEffectViolation"}
    return response


def _finalize_now(module_name: str) -> None:
    """Drop the skill's module and collect it, so its objects' ``__del__`` runs now, under the hook."""
    import gc

    module = sys.modules.pop(module_name, None)
    if module is not None:
        namespace = vars(module)
        del module
        namespace.clear()
        del namespace
    gc.collect()


def _record(
    conn: Any,
    promotion: dict[str, Any],
    recorded: RecordedInput,
    response: dict[str, Any],
    duration: float,
    isolation: str,
    layers: tuple[str, ...],
    lineage: Lineage,
) -> RunResult:
    """Append the execution to the ledger (``conn`` None: no ledger, nothing recorded) and raise on failure
    (unless the lineage says a failed run is returned)."""
    result = record_execution(conn, promotion, recorded, response, duration, isolation, layers, lineage=lineage)
    if lineage.raise_on_failure:
        note = f"execution {result.execution_id}" if conn is not None else "not recorded: no ledger"
        _raise_on_error(result, response, note)
    return result


def record_execution(
    conn: Any,
    promotion: dict[str, Any],
    recorded: RecordedInput,
    response: dict[str, Any],
    duration: float,
    isolation: str,
    layers: tuple[str, ...] = (),
    *,
    execution_id: str | None = None,
    context: dict[str, Any] | None = None,
    lineage: Lineage | None = None,
) -> RunResult:
    """Append one execution and its event (``conn`` None: nothing recorded) and return it, failed or not.
    ``context`` joins the event's payload (a chain's step names its chain execution and its step); ``lineage``
    places it in its execution tree. The bytes of an input kept whole must be stored first
    (:func:`keep_whole_input`)."""
    lineage = lineage or Lineage()
    error = None if response.get("ok") else f"{response.get('error_type', 'Error')}: {response.get('error', '')}"
    output = response.get("output") if response.get("ok") else None
    execution_id = "" if conn is None else (execution_id or fast.new_id("x"))
    crashpoint("run.executed")  # the skill ran; nothing of it is in the ledger yet
    if conn is not None:
        fast.write(
            conn,
            [
                *_input_artifact(recorded),
                (
                    queries.INSERT_EXECUTION,
                    (
                        execution_id,
                        promotion["id"],
                        promotion["name"],
                        promotion["version"],
                        promotion["skill_sha256"],
                        recorded.kept,
                        recorded.sha256,
                        recorded.size,
                        json.dumps(output, sort_keys=True) if output is not None else None,
                        error,
                        duration,
                        isolation,
                        fast.utc_now(),
                        fast.layers_text(layers),
                        lineage.parent_id,
                        lineage.root_id or execution_id,
                    ),
                ),
            ],
            [
                {
                    "kind": "run.blocked" if response.get("phase") == "side_effect" else "run.finished",
                    "payload": {
                        "execution_id": execution_id,
                        "name": promotion["name"],
                        "version": promotion["version"],
                        "ok": error is None,
                        "error": error,
                        "isolation": isolation,
                        "layers": fast.layers_text(layers),
                        "parent_id": lineage.parent_id,
                        **(context or {}),
                    },
                    "proposal_id": promotion["proposal_id"],
                }
            ],
        )
        crashpoint("run.recorded")
    return RunResult(
        execution_id,
        promotion["name"],
        promotion["version"],
        output,
        error,
        duration,
        isolation,
        promotion["skill_sha256"],
        recorded=conn is not None,
        layers=layers,
    )


def _input_artifact(recorded: RecordedInput) -> list[tuple[str, tuple[Any, ...]]]:
    """The statement that records the whole input's artifact (its bytes are stored before, see _execute)."""
    if recorded.whole is None:
        return []
    return [
        (
            queries.INSERT_ARTIFACT_IF_NEW,
            (recorded.sha256, RUN_INPUT_ARTIFACT, recorded.size, fast.utc_now()),
        )
    ]


def _raise_on_error(result: RunResult, response: dict[str, Any], note: str) -> None:
    if result.error is not None:
        phase = response.get("phase")
        cls = {"input": SkillInputError, "side_effect": SideEffectViolation}.get(str(phase), SkillExecutionError)
        raise cls(f"{result.name} v{result.version} failed: {result.error} ({note})")


def run_isolated_step(
    workspace: Workspace,
    trusted: TrustedBytes,
    payload: dict[str, Any],
    require_isolation: bool | None = None,
    launch: Launch | None = None,
) -> tuple[dict[str, Any], str, tuple[str, ...]]:
    """One TRUSTED version in an isolated child of its own, with its own class and nothing more (a chain's
    step): the child's response, the isolation level and the layers in force."""
    with recording_layers() as runs:
        response, isolation = _run_in_child(workspace, trusted, payload, require_isolation, launch)
    return response, isolation, weakest_layers(runs)
