"""The Typer application: one module per command group registers its commands here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="kavi",
    help=(
        "kavi: a governed skill forge.\n\n"
        "A skill goes propose -> build -> verify -> promote -> run, and every step is recorded in the ledger. "
        "Start with `kavi demo` to see the whole pipeline, or `kavi init` to make this folder a workspace."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        envvar="KAVI_WORKSPACE",
        help="The workspace folder (default: the nearest folder above with kavi.toml).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object (for scripts and CI).")]
