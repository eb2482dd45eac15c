"""Rendering: one JSON object for machines (``--json``), rich text for people. Rich loads only when used."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def to_data(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_data(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_data(value), indent=2, sort_keys=True, default=str) + "\n")


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


STATUS_STYLE = {
    "pass": "green",
    "PASSED": "green",
    "TRUSTED": "green",
    "SUCCEEDED": "green",
    "VERIFIED": "green",
    "fail": "red",
    "FAILED": "red",
    "VERIFY_FAILED": "red",
    "BUILD_FAILED": "red",
    "error": "red",
    "REJECTED": "dim",
    "REVOKED": "dim",
    "skipped": "yellow",
    "AWAITING_INPUT": "yellow",
    "ESCALATED": "magenta",
}


def escape(text: str) -> str:
    """Text from the ledger or a tool, safe inside rich markup (``[bold]`` in a report stays literal)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def styled(status: str) -> str:
    style = STATUS_STYLE.get(status, "cyan")
    return f"[{style}]{status}[/{style}]"


STATIC = "static"  # the isolation column of a gate that reads the candidate and never executes it


def isolation_label(isolation: str | None, status: str) -> str:
    """What the isolation column says: the level a gate ran the candidate under; ``static`` for a gate that
    only reads it; ``-`` for a gate that did not run."""
    return isolation or ("-" if status == "skipped" else STATIC)


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``1 entry``, ``2 entries``: people read counts, not ``entr(y/ies)``."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


def aligned_rows(rows: list[tuple[str, str, str]], *, label_width: int = 0) -> None:
    """Print (styled status, name, detail) rows aligned. On a terminal the detail wraps at word boundaries
    under its own column; on a pipe each row stays one line, so `grep` still finds it whole."""
    from rich.table import Table

    out = console()
    if not out.is_terminal:
        name_width = max([label_width, *(len(name) for _, name, _ in rows)])
        for status, name, detail in rows:
            out.print(f"{status}  {escape(name):<{name_width}}  {escape(detail)}")
        return
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for status, name, detail in rows:
        table.add_row(status, escape(name), escape(detail))
    out.print(table)


def gate_table(gates: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("gate", "status", "seconds", "isolation", "summary"):
        table.add_column(column)
    for gate in gates:
        table.add_row(
            gate["gate"],
            styled(gate["status"]),
            f"{gate['duration_s']:.2f}",
            isolation_label(gate.get("isolation"), str(gate["status"])),
            gate["summary"],
        )
    return table
