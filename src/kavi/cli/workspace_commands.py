"""init, status and demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import console, emit_json, gate_table, styled


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="The folder to make a workspace.")] = Path(),
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="A server ledger for a new workspace, e.g. `postgresql://kavi@db.example/team` (default: a "
            "SQLite file in .kavi/). The database must exist; kavi creates its tables.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Make a folder a workspace: kavi.toml, skills/, kernels/ and .kavi/ (ledger, artifacts).

    In a clone that holds kavi.lock but no ledger, adopt the lock: check every installed file against it and
    record its TRUSTED versions (hashes, original approvers) in the new ledger."""
    from kavi.stages.adopt import adopt_lock, describe
    from kavi.stages.common import Forge
    from kavi.workspace import init_workspace

    workspace, created = init_workspace(path, ledger_url=ledger)
    adopted = adopt_lock(workspace) if workspace.runs_from_lock() else None
    if adopted is None:
        Forge.open(workspace).close()  # creates and migrates the ledger now, not on first use
    if json_output:
        extra = {"adopted": adopted.versions, "not_adopted": adopted.not_adopted} if adopted else {}
        emit_json({"ok": True, "workspace": str(workspace.root), "created": created, **extra})
        return
    verb = "Created" if created else "Already a"
    out = console()
    out.print(f"{verb} workspace at [bold]{workspace.root}[/bold]. Next: `kavi propose-skill --help`.")
    if adopted is not None:
        out.print(describe(adopted), markup=False)


@app.command()
def status(workspace: WorkspaceOption = None, json_output: JsonOption = False) -> None:
    """Show the workspace, the ledger and every proposal with its status (never creates a ledger)."""
    from kavi.stages.queries import status_here
    from kavi.workspace import find_workspace

    summary = status_here(find_workspace(workspace))
    if json_output:
        emit_json({"ok": True, **summary})
        return
    out = console()
    out.print(
        f"workspace [bold]{summary['workspace']}[/bold] · ledger {summary['ledger']} · {summary['events']} events"
    )
    if summary["note"]:
        out.print(summary["note"], markup=False)
    for entry in summary.get("locked", []):
        out.print(f"  {entry['proposal_id']}  {entry['name']:<24} {styled('TRUSTED')} v{entry['version']} (lock)")
    counts = ", ".join(f"{styled(k)} {v}" for k, v in summary["counts"].items() if v)
    if summary["source"] == "ledger":
        out.print(counts or "no proposals yet: `kavi propose-skill --help`")
    for proposal in summary["proposals"]:
        out.print(f"  {proposal['id']}  {proposal['name']:<24} {styled(proposal['status'])}")


@app.command()
def demo(
    path: Annotated[
        Path | None, typer.Option("--path", help="Where to create the demo workspace (default: a new temp folder).")
    ] = None,
    kernels: Annotated[bool, typer.Option("--kernels", help="Also forge a Triton kernel (needs kavi[gpu]).")] = False,
    json_output: JsonOption = False,
) -> None:
    """Run the whole pipeline on two example skills, with no API key: propose, build (replay), verify,
    promote, run, and a tampered file refused."""
    from kavi.demo import run_demo

    out = console()

    def narrate(stage: str, message: str, data: dict[str, Any]) -> None:
        if json_output:
            return
        out.print(f"[bold cyan]{stage:>8}[/bold cyan]  {message}")
        if stage == "verify":
            out.print(gate_table(data["gates"]))

    report = run_demo(path, narrate, kernels=kernels)
    if json_output:
        emit_json({"ok": report.ok, **report.__dict__})
    else:
        verdict = "Done" if report.ok else "The demo did NOT complete"
        out.print(f"\n{verdict}. Explore it: `kavi status --workspace {report.workspace}`")
    if not report.ok:
        raise typer.Exit(1)
