"""The assembled Typer application: importing the command modules registers their commands."""

from __future__ import annotations

from kavi.cli import (
    chain_commands,
    chat_command,
    execution_commands,
    forge_commands,
    integrity_commands,
    kernel_commands,
    ledger_commands,
    plan_command,
    run_command,
    serve_commands,
    skill_commands,
    worker_commands,
    workspace_commands,
)
from kavi.cli.app import app

__all__ = [
    "app",
    "chain_commands",
    "chat_command",
    "execution_commands",
    "forge_commands",
    "integrity_commands",
    "kernel_commands",
    "ledger_commands",
    "plan_command",
    "run_command",
    "serve_commands",
    "skill_commands",
    "worker_commands",
    "workspace_commands",
]
