"""executions, show-execution and replay: the execution trees the ledger records, and running them again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import console, emit_json, escape, styled, to_data

if TYPE_CHECKING:
    from kavi.stages.common import Forge

TEXT_PREVIEW_CHARS = 160  # what one line of show-execution prints of an input or output


@contextmanager
def _existing(workspace: Path | None) -> Iterator[Forge]:
    """The workspace's ledger, never created by looking at it."""
    from kavi.stages.common import Forge
    from kavi.workspace import find_workspace

    forge = Forge.open_existing(find_workspace(workspace))
    try:
        yield forge
    finally:
        forge.close()


@app.command("executions")
def executions_command(
    skill: Annotated[
        str | None, typer.Option(help="Only executions of this skill, at any depth (runs, forges, replays).")
    ] = None,
    tail: Annotated[
        bool, typer.Option("--tail", help="Keep watching: print each execution as it starts or finishes (Ctrl-C).")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many of the newest to list.", min=1)] = 20,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the newest executions, each the root of its tree (a run, a forge, a chat, a plan, a replay ...).

    `kavi show-execution ID` prints one tree; with --tail and --json, one JSON object per line.
    """
    from kavi.stages.executions import event_head, follow_executions, list_executions

    with _existing(workspace) as forge:
        if tail:
            for event in follow_executions(forge, after=event_head(forge), skill=skill):
                _print_event(event, json_output)
            return
        rows = list_executions(forge, skill=skill, limit=limit)
    if json_output:
        emit_json({"ok": True, "executions": rows})
        return
    out = console()
    if not rows:
        out.print("No executions yet: `kavi run-skill NAME --json '{...}'` records one.")
    for row in rows:
        out.print(_line(row) + (f"  ({row['children']} below)" if row["children"] else ""))


def _print_event(event: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print(json.dumps(event, sort_keys=True), flush=True)
        return
    kind = event["event_kind"]
    if kind == "execution.started":
        status = "RUNNING"
    elif kind == "execution.finished":
        status = str(event.get("status"))
    else:
        status = "OK" if event.get("ok") else "BLOCKED" if kind == "run.blocked" else "FAILED"
    version = f" v{event['version']}" if "version" in event else ""
    parent = f"  under {event['parent_id']}" if event.get("parent_id") else ""
    what = f"{event.get('kind', 'skill')} {escape(event['name'])}{version}"
    console().print(f"{event['ts'][11:19]}  {event['execution_id']}  {what} {styled(status)}{parent}")


def _line(row: dict[str, Any]) -> str:
    version = f" v{row['version']}" if row.get("version") is not None else ""
    seconds = f"{row['duration_s']:.2f}s" if row.get("duration_s") is not None else "-"
    return (
        f"{row['created_at'][:19].replace('T', ' ')}  {row['id']}  {row['kind']} {escape(row['name'])}{version}  "
        f"{styled(row['status'])}  {seconds}"
    )


@app.command("show-execution")
def show_execution_command(
    execution_id: Annotated[str, typer.Argument(help="An execution id (or a unique prefix) from `kavi executions`.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print one execution and everything below it: inputs, outputs (bounded), timings, isolation layers,
    blocked effects, an attempt's gates, and the replays made of it."""
    from kavi.stages.executions import execution_tree

    with _existing(workspace) as forge:
        tree = execution_tree(forge, execution_id)
    if json_output:
        emit_json({"ok": True, "execution": tree})
        return
    out = console()
    if tree["parent_id"]:
        out.print(f"(under {tree['parent_id']}; the whole tree: `kavi show-execution {tree['root_id']}`)")
    for line in _tree_lines(tree, ""):
        out.print(line)


def _tree_lines(row: dict[str, Any], indent: str) -> list[str]:
    lines = [indent + _line(row)]
    inner = indent + "    "
    for label in ("input", "output"):
        if row.get(label) is not None:
            lines.append(f"{inner}{label}: {escape(_preview(row[label]))}")
    if row.get("error"):
        lines.append(f"{inner}{'blocked' if row['status'] == 'BLOCKED' else 'error'}: {escape(row['error'])}")
    if row["kind"] == "skill":
        layers = ",".join(row.get("layers") or []) or "none recorded"
        lines.append(f"{inner}isolation: {row.get('isolation')}  layers: {layers}")
    verification = row.get("verification")
    if verification:
        gates = ", ".join(f"{g['gate']} {g['status']} ({','.join(g['layers']) or '-'})" for g in verification["gates"])
        lines.append(f"{inner}verification {verification['id']} {styled(str(verification['status']))}: {gates}")
    for replay in row.get("replays") or []:
        lines.append(f"{inner}replayed by {replay['id']}: {styled(replay['status'])}")
    for child in row.get("children") or []:
        lines.extend(_tree_lines(child, inner))
    return lines


def _preview(bounded: dict[str, Any]) -> str:
    text = json.dumps(bounded["value"], sort_keys=True) if "value" in bounded else str(bounded["preview"])
    cut = len(text) > TEXT_PREVIEW_CHARS or bounded.get("truncated")
    return text[:TEXT_PREVIEW_CHARS] + (" …" if cut else "")


@app.command("replay")
def replay_command(
    execution_id: Annotated[
        str, typer.Argument(help="A skill run, or an execution whose skill runs to replay (a chat, a chain run).")
    ],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run a recorded execution again with its recorded inputs against the same TRUSTED versions, and compare.

    An output that differs from the recorded one is non-determinism: it is recorded in the ledger (a replay
    execution linked to the original, and a `replay.nondeterministic` event) and the exit code is 1. A version
    revoked since, or an input kept only as a preview, is refused before anything runs.
    """
    from kavi.stages.common import Forge
    from kavi.stages.replay import replay_execution

    with Forge.opened(workspace) as forge:
        replayed = replay_execution(forge, execution_id)
    if json_output:
        emit_json({"ok": replayed.matched, **to_data(replayed), "matched": replayed.matched})
    else:
        out = console()
        for run in replayed.runs:
            head = f"{run.original_id} -> {run.replay_id}  {escape(run.name)} v{run.version}"
            if run.matched:
                out.print(f"{head}  [green]same[/green]")
                continue
            out.print(f"{head}  [red]DIFFERENT[/red]")
            out.print(f"    recorded: {escape(_outcome(run.recorded))}\n    now:      {escape(_outcome(run.replayed))}")
        verdict = "every output matched" if replayed.matched else "NON-DETERMINISM: an output differed"
        out.print(f"Replay {replayed.replay_id} of {replayed.original_id}: {verdict}.")
    if not replayed.matched:
        raise typer.Exit(1)


def _outcome(outcome: dict[str, Any]) -> str:
    text = f"error {outcome['error']}" if outcome.get("error") else json.dumps(outcome.get("output"), sort_keys=True)
    return text[:TEXT_PREVIEW_CHARS] + (" …" if len(text) > TEXT_PREVIEW_CHARS else "")
