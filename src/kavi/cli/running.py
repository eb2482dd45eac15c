"""The work of `kavi run-skill`, free of Typer and rich so the fast entry path can call it directly."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def execute(
    name: str,
    input_json: str | None,
    input_file: Path | None,
    version: int | None,
    in_process: bool,
    require_isolation: bool | None,
    workspace: Path | None,
) -> int:
    """Parse the input, run the skill, print one JSON object. Shared by the Typer command and the fast path."""
    from kavi.errors import UsageError
    from kavi.stages.run import run_skill
    from kavi.workspace import find_workspace

    if input_json is not None and input_file is not None:
        raise UsageError("give the input with --json or --input-file, not both")
    try:
        text = input_file.read_text(encoding="utf-8") if input_file is not None else (input_json or "{}")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --input-file {input_file}: {exc}") from None
    try:
        payload: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the input is not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(payload, dict):
        raise UsageError("the input must be a JSON object")
    result = run_skill(
        find_workspace(workspace),
        name,
        payload,
        version=version,
        in_process=in_process,
        require_isolation=require_isolation,
    )
    sys.stdout.write(
        json.dumps(
            {
                "ok": True,
                "execution_id": result.execution_id or None,
                "recorded": result.recorded,
                "name": result.name,
                "version": result.version,
                "output": result.output,
                "duration_s": result.duration_s,
                "isolation": result.isolation,
                "layers": list(result.layers),
            }
        )
        + "\n"
    )
    return 0
