"""The assembled Typer application: importing the command modules registers their commands."""

from __future__ import annotations

from kavi.cli import integrity_commands, run_command, skill_commands, workspace_commands
from kavi.cli.app import app

__all__ = ["app", "integrity_commands", "run_command", "skill_commands", "workspace_commands"]
