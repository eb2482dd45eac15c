"""The work of `kavi run-skill`, free of Typer and rich so the fast entry path can call it directly."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from kavi.stages.run import Launch

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
    *,
    no_server: bool = False,
) -> int:
    """Read the input, run the skill, print one JSON object. Shared by the Typer command and the fast path.

    Through a running `kavi serve` of the workspace when there is one (its warm runner, same output and exit
    code), else, or with ``no_server``, in a fresh isolated child of this process. ``--in-process`` never goes
    to a server: it means this process."""
    what = "--input-file" if input_file is not None else "the input"
    text: str | None = None
    if not (no_server or in_process):
        from kavi.cli.through_server import via_server

        code, text = via_server(
            name, lambda: read_input_text(input_json, input_file), what, version, require_isolation, workspace
        )
        if code is not None:
            return code
    if text is None:
        text = read_input_text(input_json, input_file)
    return run_text(name, text, what, version, in_process, require_isolation, workspace)


def run_text(
    name: str,
    text: str,
    what: str,
    version: int | None,
    in_process: bool,
    require_isolation: bool | None,
    workspace: Path | None,
    *,
    launch: Launch | None = None,
    out: TextIO | None = None,
) -> int:
    """Parse the input's text, run the skill (its child started by ``launch``, default a cold one), print."""
    from kavi.errors import UsageError
    from kavi.stages.run import run_skill
    from kavi.workspace import find_workspace

    payload = load_json_argument(text, what)
    if not isinstance(payload, dict):
        raise UsageError("the input must be a JSON object")
    result = run_skill(
        find_workspace(workspace),
        name,
        payload,
        version=version,
        in_process=in_process,
        require_isolation=require_isolation,
        launch=launch,
    )
    (out or sys.stdout).write(
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


def failure_output(code: int, message: str, kind: str) -> tuple[str, str]:
    """What `kavi run-skill` prints when it fails: one JSON object on stdout, the message on stderr."""
    body = json.dumps({"ok": False, "error": message, "error_type": kind, "exit_code": code})
    return body + "\n", f"error: {message}\n"


def write_crash_log(args: list[str]) -> Path:
    """The traceback of the exception being handled, with versions, in a log file; its path."""
    import platform
    import tempfile
    import time
    import traceback

    from kavi import __version__

    folder = Path(tempfile.gettempdir()) / "kavi-logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path.write_text(
        f"kavi {__version__} on Python {platform.python_version()} ({platform.platform()})\n"
        f"argv: {args}\n\n{traceback.format_exc()}",
        encoding="utf-8",
    )
    return path


# --- the server's half of run-skill through a running server (kavi.server.local) -------------------------


class RunLocally(Exception):
    """The server hands the call back: it must run in the caller's own process."""


def answer_request(request: dict[str, Any], *, workspace: Path, launch: Launch) -> dict[str, Any]:
    """The server's half: run one request from the socket exactly as `kavi run-skill` would, and return the
    exit code and the text it would have printed. A SECRET_READ skill is handed back (its secrets are the
    caller's to give, from the caller's environment)."""
    import io

    from kavi.errors import KaviError

    out = io.StringIO()
    version = request.get("version")
    require_isolation = request.get("require_isolation")
    try:
        code = run_text(
            str(request["name"]),
            str(request["text"]),
            str(request.get("what", "the input")),
            int(version) if version is not None else None,
            False,
            bool(require_isolation) if require_isolation is not None else None,
            workspace,
            launch=_unless_secret(launch),
            out=out,
        )
    except RunLocally as exc:
        return {"fallback": str(exc)}
    except KaviError as exc:
        stdout, stderr = failure_output(exc.exit_code, str(exc), type(exc).__name__)
        return {"code": exc.exit_code, "stdout": stdout, "stderr": stderr}
    except Exception:
        log = write_crash_log(["run-skill", str(request.get("name"))])
        stdout, stderr = failure_output(3, f"kavi hit a bug; the details are in {log} (please report it)", "Bug")
        return {"code": 3, "stdout": stdout, "stderr": stderr}
    return {"code": code, "stdout": out.getvalue(), "stderr": ""}


def _unless_secret(launch: Launch) -> Launch:
    from kavi.side_effects import SideEffect

    def launch_here(argv: Any, *, cwd: Path, policy: Any, stdin: bytes | None = None) -> Any:
        if policy.side_effect == SideEffect.SECRET_READ:
            raise RunLocally("a SECRET_READ skill takes its secrets from the caller's environment")
        return launch(argv, cwd=cwd, policy=policy, stdin=stdin)

    return launch_here
