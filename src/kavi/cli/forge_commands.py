"""builders, trace, research-skill and forge: the commands around LLM builds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import aligned_rows, console, emit_json, escape, styled
from kavi.cli.worker_commands import QueueOption, enqueue_command
from kavi.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from kavi.stages.verify import GateProgress


@app.command()
def builders(workspace: WorkspaceOption = None, json_output: JsonOption = False) -> None:
    """List the installed builders and whether each can run here, with this workspace's kavi.toml options
    and KAVI_* overrides (as `build-skill` uses them); a configured server is probed briefly."""
    from kavi.builders.availability import builder_availability
    from kavi.errors import WorkspaceError
    from kavi.workspace import find_workspace

    try:
        configured = find_workspace(workspace).config.build.options
    except WorkspaceError:  # outside a workspace: defaults and environment only (a bad kavi.toml still fails)
        configured = None
    rows = builder_availability(configured)
    if json_output:
        emit_json({"ok": True, "builders": rows})
        return
    aligned_rows(
        [
            (
                "[green]  available[/green]" if row["available"] else "[yellow]unavailable[/yellow]",
                row["name"],
                row["detail"],
            )
            for row in rows
        ]
    )


@app.command()
def trace(
    build_id: Annotated[str, typer.Argument(help="The build id (or a unique prefix).")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a build's full trace: prompts, messages, tool calls and results, usage, cost, transitions."""
    from kavi.stages.common import Forge
    from kavi.stages.research import build_trace
    from kavi.workspace import find_workspace

    forge = Forge.open_existing(find_workspace(workspace))  # read-only: never creates a ledger
    try:
        result = build_trace(forge, build_id)
    finally:
        forge.close()
    if json_output:
        emit_json({"ok": True, **result})
        return
    from kavi.cli.transcript import transcript

    out = console()
    build = result["build"]
    out.print(f"build {build['id']} attempt {build['attempt']} {build['builder']} {styled(build['status'])}")
    for line in transcript(result["events"]):
        out.print(line, markup=False)


@app.command("research-skill")
def research_skill_command(
    build_id: Annotated[str, typer.Argument(help="The failed build (or a build whose verification failed).")],
    advise: Annotated[bool, typer.Option(help="Also ask the configured openai builder's model for advice.")] = False,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Classify why a build failed (deterministic), record a RESEARCH_NOTE, and optionally get checked advice."""
    from kavi.stages.common import Forge
    from kavi.stages.research import research_build

    with Forge.opened(workspace) as forge:
        options = forge.workspace.config.build.options.get("openai", {}) if advise else None
        note = research_build(forge, build_id, advice_options=options)
    if json_output:
        emit_json({"ok": True, **note.__dict__})
        return
    out = console()
    out.print(f"[bold]{note.kind}[/bold] {escape(note.summary)}  (note {note.note_sha256[:12]})")
    for line in research_lines(note.facts):
        out.print(line, markup=False, highlight=False)
    if note.advice_status:
        out.print(f"advice: {note.advice_status}", markup=False)
    if note.advice:
        out.print(note.advice, markup=False)


def research_lines(facts: dict[str, Any]) -> list[str]:
    """A research note's fixes for people: each problem where it is, in the tool's words, and what to do."""
    lines: list[str] = []
    kinds = facts.get("kinds") or []
    if len(kinds) > 1:
        lines.append("also failing: " + ", ".join(kinds[1:]))
    for fix in facts.get("fixes") or []:
        indent = " " * 13
        lines += [f"  {fix['gate']:<10} {fix['where']}", f"{indent}{fix['problem']}", f"{indent}fix: {fix['fix']}"]
    if not facts.get("fixes") and facts.get("build_reason"):
        lines.append(f"  the build failed: {facts['build_reason']}")
    return lines


def _progress(json_output: bool, out: Console, gates: GateProgress) -> Any:
    def show(stage: str, record: dict[str, Any]) -> None:
        if json_output:
            return
        from kavi.cli.progress import LiveGates

        if isinstance(gates, LiveGates):
            if stage == "building":
                gates.step(f"attempt {record['attempt']}: building")
            elif stage == "build" and record["build"] == "SUCCEEDED":
                gates.step(f"attempt {record['attempt']}: verifying")
        if stage == "building":
            return
        if stage in ("measure", "remeasure"):
            out.print(speed_line(stage, record), markup=False, highlight=False)
            return
        detail = record.get("verification") if stage == "verify" else record.get("build")
        if stage == "research":
            detail = f"{record['kind']}: {record['summary']}"
        elif stage == "build" and record.get("builder"):
            detail = f"{detail} ({record['builder']}: no model call)"
        out.print(f"attempt {record['attempt']} [bold cyan]{stage:>8}[/bold cyan] {escape(str(detail))}")

    return show


def speed_line(stage: str, record: dict[str, Any]) -> str:
    """One measurement of forge --optimize for people: speedup [interval], roofline, the slowest size."""
    if "unmeasured" in record:
        return f"attempt {record['attempt']}  measure unmeasured: {record['unmeasured']}"
    low, high = record["speedup_interval"]
    roofline = record.get("roofline_fraction")
    slowest = record["slowest_size"]
    text = (
        f"speedup {record['speedup']:.3f} [{low:.3f}, {high:.3f}] at {record['confidence']:.4f}, "
        f"roofline {'-' if roofline is None else f'{roofline:.0%}'}, slowest {slowest['size']} {slowest['dtype']}"
    )
    if stage == "remeasure":
        return (
            f"re-measured attempt {record['search_attempt']} on fresh seeds ({record['comparisons']} candidates, "
            f"Šidák): {text}"
        )
    return f"attempt {record['attempt']}  measure {text}" + ("" if record.get("trustworthy", True) else " (untrusted)")


@app.command()
def forge(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id (or a unique prefix, or the skill name).")],
    builder: Annotated[str | None, typer.Option(help="An automatic builder (default: kavi.toml's [build]).")] = None,
    replay_from: Annotated[str | None, typer.Option(help="For --builder replay: the recording folder.")] = None,
    max_attempts: Annotated[int, typer.Option(help="Stop after this many builds (with --optimize: in all).")] = 3,
    max_cost_usd: Annotated[float | None, typer.Option(help="Stop when the builds have cost this much.")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Stop after this many minutes.")] = None,
    advise: Annotated[bool, typer.Option(help="Ask the openai builder's model for advice between attempts.")] = False,
    optimize: Annotated[
        bool,
        typer.Option(
            help="A kernel: after it verifies, keep building faster candidates (GPU only); keep the fastest, and "
            "re-measure it on fresh seeds with an interval corrected for the attempts."
        ),
    ] = False,
    target_speedup: Annotated[
        float | None, typer.Option(help="With --optimize: stop once every size's speedup lower bound reaches this.")
    ] = None,
    queue: QueueOption = False,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Build, verify, research and build again until VERIFIED, or ESCALATED with the reason. Never promotes.

    With --optimize (kernels, on a CUDA GPU) the search goes on after the kernel verifies: each next packet
    carries the best candidate's speedup interval, roofline fraction and slowest size; it stops at
    --target-speedup, a plateau or the budget, and the fastest verified candidate is the one left to promote."""
    from kavi.cli.progress import gate_progress
    from kavi.stages.common import Forge
    from kavi.stages.forge import Budget, Forged, forge_skill

    if target_speedup is not None and not optimize:
        raise UsageError("--target-speedup needs --optimize")

    if queue:
        if optimize:
            raise UsageError("--optimize measures on this machine's GPU: run it without --queue")
        if advise:
            raise UsageError("--advise reads this machine's builder settings: run it without --queue")
        budget = {"max_attempts": max_attempts, "max_cost_usd": max_cost_usd, "max_minutes": max_minutes}
        source = {"source": str(Path(replay_from).resolve())} if replay_from else {}
        queued: dict[str, Any] = {"builder": builder or ("replay" if replay_from else None), **budget, **source}
        enqueue_command(workspace, "forge", proposal_id, queued, json_output)
        return

    out = console()
    with (
        Forge.opened(workspace) as opened,
        gate_progress(f"forging {proposal_id}", json_output=json_output, out=out) as gates,
    ):
        options = {"source": replay_from} if replay_from else None
        advice = opened.workspace.config.build.options.get("openai", {}) if advise else None
        common: dict[str, Any] = {
            "builder_name": builder or ("replay" if replay_from else None),
            "builder_options": options,
            "budget": Budget(max_attempts, max_cost_usd, max_minutes),
            "advice_options": advice,
            "progress": _progress(json_output, out, gates),
            "gate_progress": gates,
        }
        result: Forged
        if optimize:
            from kavi.stages.optimize import gpu_optimize

            result = gpu_optimize(opened, proposal_id, target_speedup=target_speedup, **common)
        else:
            result = forge_skill(opened, proposal_id, **common)
    if json_output:
        emit_json({"ok": result.status == "VERIFIED", **result.__dict__})
    else:
        out.print(f"{result.name}: {styled(result.status)} — {result.reason}")
        out.print(f"The whole forge: `kavi show-execution {result.execution_id}`")
    if result.status != "VERIFIED":
        raise typer.Exit(1)
