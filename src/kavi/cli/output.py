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


def styled(status: str) -> str:
    style = STATUS_STYLE.get(status, "cyan")
    return f"[{style}]{status}[/{style}]"


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
            gate.get("isolation") or "-",
            gate["summary"],
        )
    return table
