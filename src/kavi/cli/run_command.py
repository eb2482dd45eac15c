"""run-skill. `kavi.__main__` also reaches it without Typer, so its work lives in
:func:`kavi.cli.running.execute`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kavi.cli.app import WorkspaceOption, app
from kavi.cli.running import execute


@app.command("run-skill")
def run_skill_command(
    name: Annotated[str, typer.Argument(help="The skill to run (its latest TRUSTED version unless --version).")],
    input_json: Annotated[str | None, typer.Option("--json", help="The input as a JSON object.")] = None,
    input_file: Annotated[
        Path | None, typer.Option(help="Read the input JSON from a file (`-`: standard input).")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Run this TRUSTED version.")] = None,
    in_process: Annotated[
        bool,
        typer.Option(
            help="READ_ONLY only: run inside this process. It promises the audit hook only, not a boundary: no"
            " namespaces, seccomp, Landlock or limits, and code the skill leaves behind can run unchecked when"
            " the process exits."
        ),
    ] = False,
    require_isolation: Annotated[
        bool | None, typer.Option("--require-isolation/--allow-fallback", help="Refuse to run below full OS isolation.")
    ] = None,
    no_server: Annotated[
        bool,
        typer.Option(
            "--no-server",
            help="Run in a fresh isolated child of this command even when `kavi serve` runs for the workspace"
            " (by default a running server's warm runner takes the call: same output, a fraction of the time).",
        ),
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Run a TRUSTED skill: its hash is checked before any byte is imported. Prints one JSON object."""
    code = execute(name, input_json, input_file, version, in_process, require_isolation, workspace, no_server=no_server)
    if code:
        raise typer.Exit(code)
