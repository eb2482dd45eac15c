"""`kavi ledger ...`: the ledger itself (today: copying it to a server)."""

from __future__ import annotations

from typing import Annotated

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import console, emit_json

ledger_app = typer.Typer(
    name="ledger",
    help="The ledger itself: copy a workspace's SQLite ledger to a PostgreSQL server.",
    no_args_is_help=True,
)
app.add_typer(ledger_app)


@ledger_app.command()
def migrate(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The empty database to copy into, e.g. `postgresql://kavi@db.example/team` (create it first).",
            show_default=False,
        ),
    ],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Copy this workspace's SQLite ledger, every row and the whole hash chain, into an empty database, then
    audit the copy. The artifacts' bytes stay in .kavi/artifacts. kavi.toml is not changed: point
    `[ledger] url` at the copy when the audit is clean. A target that holds anything is refused."""
    from kavi.integrity.migrate import migrate_ledger
    from kavi.ledger.connection import safe_url
    from kavi.workspace import find_workspace

    result = migrate_ledger(find_workspace(workspace), to)
    if json_output:
        emit_json(result.to_json())
    else:
        out = console()
        rows = ", ".join(f"{n} {table}" for table, n in result.copy.rows.items() if n)
        out.print(
            f"copied {rows or 'an empty ledger'} to {result.copy.target}; head {result.copy.head[:12]}", markup=False
        )
        verdict = "clean" if result.ok else f"{len(result.audit.findings)} finding(s)"
        out.print(f"audit of the copy: {verdict}", markup=False)
        for finding in result.audit.findings:
            out.print(f"  {finding.line()}", markup=False)
        if result.ok:
            out.print(f'next: set [ledger] url = "{safe_url(to)}" in kavi.toml', markup=False)
    if not result.ok:
        raise typer.Exit(1)
