"""The work of `kavi run-skill`, free of Typer and rich so the fast entry path can call it directly."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MAX_JSON_DEPTH = 100  # deeper input is refused in one line, before any recursive code sees it


def load_json_argument(text: str, what: str) -> Any:
    """Parse a JSON command-line argument or input file: any malformed, too deep or non-finite input is a
    one-line usage error (exit 2), never a RecursionError."""
    from kavi.errors import UsageError

    def refuse_constant(name: str) -> Any:
        raise UsageError(f"{what} holds {name}, which is not a JSON number: give a finite number or null")

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise UsageError(f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise UsageError(f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of lists and objects, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_input_text(input_json: str | None, input_file: Path | None) -> str:
    """The input's text: --json, or --input-file (``-`` reads standard input), or ``{}``."""
    from kavi.errors import UsageError

    if input_json is not None and input_file is not None:
        raise UsageError("give the input with --json or --input-file, not both")
    if input_file is None:
        return input_json or "{}"
    try:
        if str(input_file) == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        return input_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --input-file {input_file}: {exc}") from None


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

    what = "--input-file" if input_file is not None else "the input"
    payload = load_json_argument(read_input_text(input_json, input_file), what)
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
