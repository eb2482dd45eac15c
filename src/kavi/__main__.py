"""The `kavi` entry point and its single error handler.

Exit codes: 0 success, 1 an expected failure (the message names the fix), 2 a usage error, 3 a bug (the
traceback goes to a log file whose path is printed), 130 interrupted.

`kavi run-skill` is dispatched before Typer and rich are imported: they cost more at start-up than the
whole run budget. The Typer command of the same name shares :func:`kavi.cli.run_command.execute`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from kavi.errors import KaviError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from types import FrameType
    from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # run-skill always answers with JSON (its --json option is the input), and also tells people on stderr.
    fast_run = bool(args) and args[0] == "run-skill" and not {"-h", "--help"} & set(args)
    json_mode = "--json" in args or fast_run
    _interrupted.clear()
    previous = _stop_children_on_interrupt()
    try:
        if fast_run:
            return _run_skill_fast(args[1:])
        code = _run_typer(args)
        if _interrupted.is_set():  # Typer turns KeyboardInterrupt into a silent exit code 130
            raise KeyboardInterrupt
        return code
    except KaviError as exc:
        return _report(exc.exit_code, str(exc), json_mode, type(exc).__name__, also_stderr=fast_run)
    except KeyboardInterrupt:
        return _report(130, "interrupted", json_mode, "KeyboardInterrupt", also_stderr=fast_run)
    except Exception:
        log = _write_crash_log(args)
        message = f"kavi hit a bug; the details are in {log} (please report it)"
        return _report(3, message, json_mode, "Bug", also_stderr=fast_run)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


_interrupted = threading.Event()


def _stop_children_on_interrupt() -> Any:
    """Ctrl-C kills every supervised child at once, then raises KeyboardInterrupt as Python would.

    Gates run in worker threads while the signal reaches the main thread only; without this the
    interrupt would wait for every running gate to end. Returns the handler it replaced (None when
    this is not the main thread, where Python allows no handler).
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        _interrupted.set()
        executor = sys.modules.get("kavi.sandbox.executor")  # not loaded yet: no child to stop
        if executor is not None:
            executor.stop_all_children()
        raise KeyboardInterrupt

    return signal.signal(signal.SIGINT, on_interrupt)


def _run_typer(args: list[str]) -> int:
    """Run the Typer app; its usage errors become kavi's one-line UsageError (exit 2) instead of a box."""
    import typer

    from kavi.cli.main import app
    from kavi.errors import UsageError

    try:
        result = app(args=args, prog_name="kavi", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except typer.Abort:
        return _report(1, "aborted", "--json" in args, "Abort")
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            return int(getattr(exc, "exit_code", 2))  # the help is already printed
        known = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
        command = next((a for a in args if not a.startswith("-")), "")
        where = f"kavi {command} --help" if command in known else "kavi --help"
        raise UsageError(f"{exc.format_message()} (see `{where}`)") from None
    return result if isinstance(result, int) else 0


def _run_skill_fast(args: list[str]) -> int:
    """run-skill without Typer: first through a running server (only os, json and socket imported on the way),
    then argparse and the cold path."""
    from kavi.cli.through_server import run_fast

    code, text = run_fast(args)
    if code is not None:
        return code
    import argparse
    from pathlib import Path

    from kavi.cli.running import execute, run_text

    class _ArgumentParser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            from kavi.errors import UsageError

            raise UsageError(f"run-skill: {message} (see `kavi run-skill --help`)")

    parser = _ArgumentParser(prog="kavi run-skill", add_help=False)
    parser.add_argument("name")
    parser.add_argument("--json", dest="input_json")
    parser.add_argument("--input-file", type=Path)
    parser.add_argument("--version", type=int)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--require-isolation", dest="require_isolation", action="store_true", default=None)
    parser.add_argument("--allow-fallback", dest="require_isolation", action="store_false")
    parser.add_argument("--workspace", "-w", type=Path, default=os.environ.get("KAVI_WORKSPACE"))
    parser.add_argument("--no-server", action="store_true")
    parsed = parser.parse_args(args)
    if text is not None:  # the server handed the call back after the input was read (stdin is consumed)
        what = "--input-file" if parsed.input_file is not None else "the input"
        return run_text(parsed.name, text, what, parsed.version, False, parsed.require_isolation, parsed.workspace)
    return execute(
        parsed.name,
        parsed.input_json,
        parsed.input_file,
        parsed.version,
        parsed.in_process,
        parsed.require_isolation,
        parsed.workspace,
        no_server=parsed.no_server,
    )


def _report(code: int, message: str, json_mode: bool, kind: str, *, also_stderr: bool = False) -> int:
    from kavi.cli.running import failure_output

    stdout, stderr = failure_output(code, message, kind)
    if json_mode:
        sys.stdout.write(stdout)
    if also_stderr or not json_mode:
        sys.stderr.write(stderr)
    return code


def _write_crash_log(args: list[str]) -> Path:
    from kavi.cli.running import write_crash_log

    return write_crash_log(args)


if __name__ == "__main__":
    raise SystemExit(main())
