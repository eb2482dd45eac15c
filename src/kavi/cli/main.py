"""The assembled Typer application: importing the command modules registers their commands."""

from __future__ import annotations

from kavi.cli import (
    forge_commands,
    integrity_commands,
    kernel_commands,
    ledger_commands,
    run_command,
    serve_commands,
    skill_commands,
    workspace_commands,
)
from kavi.cli.app import app

__all__ = [
    "app",
    "forge_commands",
    "integrity_commands",
    "kernel_commands",
    "ledger_commands",
    "run_command",
    "serve_commands",
    "skill_commands",
    "workspace_commands",
]
