"""Executions as trees: every skill run, forge, attempt, chat, plan, chain run and replay records the execution
it ran under, so one question ("what happened when I asked for X?") has one tree as its answer.

A skill run is an ``executions`` row (written on the stdlib fast path, :mod:`kavi.stages.run`); every other
kind is an ``execution_nodes`` row written here, begun before its children and finished after them. A parent
may be either (ids never collide: each kind has its own prefix). What each kind is lives in
:data:`EXECUTION_KINDS`; code that runs things under a parent uses :func:`execution` (or
:func:`begin_execution` / :func:`finish_execution`) and passes the node's id on, e.g.
``run_skill(..., parent=node.id)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from kavi.errors import KaviError, NotFoundError, UsageError
from kavi.ledger.ids import new_id, utc_now
from kavi.ledger.models import Execution, ExecutionNode, GateRecord, Verification
from kavi.ledger.store import append_event
from kavi.stages.common import MIN_PREFIX, Forge

OUTPUT_PREVIEW_CHARS = 4096  # what show-execution prints of one input or output at most
RUNNING = "RUNNING"


@dataclass(frozen=True)
class ExecutionKind:
    """One kind of execution: what it is, and the prefix of its ids."""

    name: str
    description: str
    id_prefix: str


EXECUTION_KINDS: dict[str, ExecutionKind] = {
    kind.name: kind
    for kind in (
        ExecutionKind("skill", "one governed run of a TRUSTED version", "x"),
        ExecutionKind("chain", "a chain run: its steps are its children", "c"),
        ExecutionKind("forge", "a forge loop: its attempts are its children", "f"),
        ExecutionKind("attempt", "one build and its verification, inside a forge", "a"),
        ExecutionKind("chat", "a conversation: each tool call it made is a child", "h"),
        ExecutionKind("declined", "a tool call a person declined in a chat: nothing ran", "d"),
        ExecutionKind("plan", "a goal decomposed into skills: its sub-forges are its children", "n"),
        ExecutionKind("replay", "a recorded execution run again: the runs it made are its children", "r"),
    )
}
RUN_EVENTS = ("run.finished", "run.blocked")
NODE_EVENTS = ("execution.started", "execution.finished")


def kind_named(name: str) -> ExecutionKind:
    try:
        return EXECUTION_KINDS[name]
    except KeyError:
        raise UsageError(f"no execution kind {name!r}", hint=f"kinds: {', '.join(EXECUTION_KINDS)}") from None


# --- writing --------------------------------------------------------------------------------------------


@dataclass
class OpenExecution:
    """A node begun and not yet finished: set ``status``, ``output`` or ``error`` before the block ends."""

    id: str
    kind: str
    status: str = "OK"
    output: Any = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)


def begin_execution(
    forge: Forge,
    kind: str,
    name: str,
    *,
    input_data: Any = None,
    parent: str | None = None,
    replay_of: str | None = None,
) -> str:
    """Record a RUNNING node (its children can name it from now on) and return its id."""
    node_id = new_id(kind_named(kind).id_prefix)
    with forge.ledger.transaction() as session:
        root = root_of(session, parent) if parent else node_id
        session.add(
            ExecutionNode(
                id=node_id,
                kind=kind,
                name=name,
                parent_id=parent,
                root_id=root,
                replay_of=replay_of,
                status=RUNNING,
                input_json=json.dumps(input_data, sort_keys=True, default=str),
                created_at=utc_now(),
            )
        )
        append_event(
            session,
            "execution.started",
            {"execution_id": node_id, "kind": kind, "name": name, "parent_id": parent, "root_id": root},
        )
    return node_id


def finish_execution(
    forge: Forge,
    node_id: str,
    status: str,
    *,
    output: Any = None,
    error: str | None = None,
    duration_s: float | None = None,
) -> None:
    with forge.ledger.transaction() as session:
        node = session.get(ExecutionNode, node_id)
        if node is None:
            raise NotFoundError(f"no execution node {node_id!r}")
        node.status = status
        node.output_json = None if output is None else json.dumps(output, sort_keys=True, default=str)
        node.error = error
        node.finished_at = utc_now()
        node.duration_s = round(duration_s if duration_s is not None else _seconds_since(node.created_at), 6)
        session.add(node)
        append_event(
            session,
            "execution.finished",
            {"execution_id": node_id, "kind": node.kind, "name": node.name, "status": status, "error": error},
        )


@contextmanager
def execution(
    forge: Forge,
    kind: str,
    name: str,
    *,
    input_data: Any = None,
    parent: str | None = None,
    replay_of: str | None = None,
) -> Iterator[OpenExecution]:
    """A node around a block: FAILED with the error when the block raises, INTERRUPTED on Ctrl-C, else the
    status the block set."""
    node = OpenExecution(
        begin_execution(forge, kind, name, input_data=input_data, parent=parent, replay_of=replay_of), kind
    )
    try:
        yield node
    except KeyboardInterrupt:
        finish_execution(forge, node.id, "INTERRUPTED", duration_s=time.monotonic() - node.started)
        raise
    except Exception as exc:
        error = exc.message if isinstance(exc, KaviError) else f"{type(exc).__name__}: {exc}"
        finish_execution(forge, node.id, "FAILED", error=error, duration_s=time.monotonic() - node.started)
        raise
    finish_execution(
        forge, node.id, node.status, output=node.output, error=node.error, duration_s=time.monotonic() - node.started
    )


def record_execution(
    forge: Forge, kind: str, name: str, *, input_data: Any, parent: str | None, status: str, error: str | None = None
) -> str:
    """A node that is over as soon as it begins (a declined call)."""
    node_id = begin_execution(forge, kind, name, input_data=input_data, parent=parent)
    finish_execution(forge, node_id, status, error=error, duration_s=0.0)
    return node_id


def root_of(session: Session, execution_id: str) -> str:
    node = session.get(ExecutionNode, execution_id)
    if node is not None:
        return node.root_id
    run = session.get(Execution, execution_id)
    if run is None:
        raise NotFoundError(f"no execution {execution_id!r}", hint="`kavi executions` lists them")
    return run.root_id or run.id


def _seconds_since(stamp: str) -> float:
    return max(0.0, (datetime.fromisoformat(utc_now()) - datetime.fromisoformat(stamp)).total_seconds())


# --- reading --------------------------------------------------------------------------------------------


def run_status(error: str | None) -> str:
    """A skill run's status from its recorded error: OK, BLOCKED (an effect its class does not declare) or
    FAILED."""
    if error is None:
        return "OK"
    return "BLOCKED" if error.startswith("SideEffectViolation") else "FAILED"


def _run_row(run: Execution, *, detail: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": run.id,
        "kind": "skill",
        "name": run.name,
        "version": run.version,
        "status": run_status(run.error),
        "parent_id": run.parent_id,
        "root_id": run.root_id or run.id,
        "created_at": run.created_at,
        "duration_s": run.duration_s,
        "error": run.error,
    }
    if detail:
        whole = run.input_sha256 is None or run.input_size == len(run.input_json.encode("utf-8"))
        row.update(
            skill_sha256=run.skill_sha256,
            isolation=run.isolation,
            layers=[layer for layer in run.layers.split(",") if layer],
            blocked=run.error if row["status"] == "BLOCKED" else None,
            input=_bounded(run.input_json, complete=whole),
            input_sha256=run.input_sha256,
            input_size=run.input_size,
            output=_bounded(run.output_json),
        )
    return row


def _node_row(node: ExecutionNode, *, detail: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": node.id,
        "kind": node.kind,
        "name": node.name,
        "version": None,
        "status": node.status,
        "parent_id": node.parent_id,
        "root_id": node.root_id,
        "created_at": node.created_at,
        "duration_s": node.duration_s,
        "error": node.error,
    }
    if detail:
        row.update(
            input=_bounded(node.input_json),
            output=_bounded(node.output_json),
            finished_at=node.finished_at,
            replay_of=node.replay_of,
        )
    return row


def _bounded(data: str | None, *, complete: bool = True) -> dict[str, Any] | None:
    """A recorded JSON text as data when short and whole, else as a preview that says so."""
    if data is None:
        return None
    if complete and len(data) <= OUTPUT_PREVIEW_CHARS:
        try:
            return {"value": json.loads(data), "truncated": False}
        except ValueError:
            pass
    return {"preview": data[:OUTPUT_PREVIEW_CHARS], "truncated": True}


def list_executions(forge: Forge, *, skill: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest executions: the roots of their trees, or with ``skill`` every execution of that name at any
    depth (its runs, its forges, its replays)."""
    with forge.ledger.reading() as session:
        runs = select(Execution).order_by(col(Execution.created_at).desc()).limit(limit)
        nodes = select(ExecutionNode).order_by(col(ExecutionNode.created_at).desc()).limit(limit)
        if skill is None:
            runs = runs.where(col(Execution.parent_id).is_(None))
            nodes = nodes.where(col(ExecutionNode.parent_id).is_(None))
        else:
            runs = runs.where(col(Execution.name) == skill)
            nodes = nodes.where(col(ExecutionNode.name) == skill)
        rows = [_run_row(r, detail=False) for r in session.exec(runs).all()]
        rows += [_node_row(n, detail=False) for n in session.exec(nodes).all()]
        rows.sort(key=lambda row: row["created_at"], reverse=True)
        rows = rows[:limit]
        sizes = _tree_sizes(session, [row["id"] for row in rows if row["root_id"] == row["id"]])
    for row in rows:
        row["children"] = sizes.get(row["id"], 0)
    return rows


def _tree_sizes(session: Session, roots: list[str]) -> dict[str, int]:
    """How many executions each root's tree holds below the root."""
    if not roots:
        return {}
    sizes: dict[str, int] = {}
    for table in (Execution, ExecutionNode):
        query = select(table.root_id, table.id).where(col(table.root_id).in_(roots))
        for root, member in session.exec(query).all():
            if root is not None and member != root:
                sizes[root] = sizes.get(root, 0) + 1
    return sizes


def execution_tree(forge: Forge, execution_id: str) -> dict[str, Any]:
    """One execution and everything below it, each with its inputs, outputs (bounded), timings, isolation
    layers and blocked effects; the replays made of it; and where it sits (its parent and root)."""
    with forge.ledger.reading() as session:
        execution_id = resolve_execution(session, execution_id)
        root = root_of(session, execution_id)
        members = [_run_row(r, detail=True) for r in session.exec(select(Execution).where(_in_tree(Execution, root)))]
        members += [
            _node_row(n, detail=True) for n in session.exec(select(ExecutionNode).where(_in_tree(ExecutionNode, root)))
        ]
        by_id = {row["id"]: row for row in members}
        for row in sorted(members, key=lambda row: row["created_at"]):
            row.setdefault("children", [])
            parent = by_id.get(row["parent_id"] or "")
            if parent is not None:
                parent.setdefault("children", []).append(row)
        replays = session.exec(select(ExecutionNode).where(col(ExecutionNode.replay_of).in_(list(by_id)))).all()
        for row in members:
            if row["kind"] == "attempt":
                _add_gates(session, row)
            row["replays"] = [
                {"id": n.id, "status": n.status, "created_at": n.created_at}
                for n in replays
                if n.replay_of == row["id"]
            ]
    return by_id[execution_id]


def _in_tree(table: Any, root: str) -> Any:
    """Rows of ``root``'s tree (a run from before m007 has no root_id: it is its own tree)."""
    if table is Execution:
        return (col(Execution.root_id) == root) | ((col(Execution.id) == root) & col(Execution.root_id).is_(None))
    return col(ExecutionNode.root_id) == root


def resolve_execution(session: Session, reference: str) -> str:
    """An execution id, or a unique prefix of one."""
    if session.get(ExecutionNode, reference) is not None or session.get(Execution, reference) is not None:
        return reference
    if len(reference) < MIN_PREFIX:
        raise UsageError(f"{reference!r} is too short to name an execution: give at least {MIN_PREFIX} characters")
    like = f"{reference}%"
    found = list(session.exec(select(Execution.id).where(col(Execution.id).like(like)).limit(2)))
    found += list(session.exec(select(ExecutionNode.id).where(col(ExecutionNode.id).like(like)).limit(2)))
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFoundError(f"no execution {reference!r}", hint="`kavi executions` lists them")
    raise UsageError(f"{reference!r} is the start of more than one execution id; give more of it")


def _add_gates(session: Session, row: dict[str, Any]) -> None:
    """An attempt's verification: each gate's status, isolation and layers."""
    value = (row.get("output") or {}).get("value") or {}
    verification_id = value.get("verification_id") if isinstance(value, dict) else None
    if not verification_id:
        return
    verification = session.get(Verification, verification_id)
    gates = session.exec(select(GateRecord).where(GateRecord.verification_id == verification_id)).all()
    row["verification"] = {
        "id": verification_id,
        "status": verification.status if verification else None,
        "gates": [
            {
                "gate": gate.gate,
                "status": gate.status,
                "duration_s": gate.duration_s,
                "isolation": gate.isolation,
                "layers": [layer for layer in (gate.layers or "").split(",") if layer],
            }
            for gate in gates
        ],
    }


def event_head(forge: Forge) -> int:
    with forge.ledger.engine.connect() as conn:
        return int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM events")).scalar_one())


def follow_executions(
    forge: Forge,
    *,
    after: int,
    skill: str | None = None,
    poll_s: float = 0.5,
    keep_going: Callable[[], bool] = lambda: True,
) -> Iterator[dict[str, Any]]:
    """Each execution event after event ``after`` as it is appended (a run finished or blocked, a node
    started or finished), read from the hash-chained log itself."""
    kinds = ", ".join(f"'{kind}'" for kind in RUN_EVENTS + NODE_EVENTS)
    query = text(f"SELECT id, ts, kind, payload FROM events WHERE id > :after AND kind IN ({kinds}) ORDER BY id")  # noqa: S608
    while keep_going():
        with forge.ledger.engine.connect() as conn:
            rows = conn.execute(query, {"after": after}).fetchall()
        for event_id, ts, kind, payload in rows:
            after = event_id
            data = json.loads(payload)
            if skill is not None and data.get("name") != skill:
                continue
            yield {"event": event_id, "ts": ts, "event_kind": kind, **data}
        if not rows:
            time.sleep(poll_s)
