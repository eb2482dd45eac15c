"""`kavi run-skill` through a running `kavi serve` of the workspace (:mod:`kavi.server.local`).

On the hot path of every `kavi run-skill`, before argparse, pathlib or anything of the run stage is
imported: the whole process through the server must stay within 0.15 s. Only the standard library's os,
sys, json and socket. Anything unusual (an option it does not know, an input it cannot read, no server)
means "not here": the caller takes its ordinary path, which may still reach the server, and reports every
error itself, in its own order and words.
"""

# string paths on purpose: pathlib is not imported on this path.
# ruff: noqa: PTH109, PTH111, PTH113, PTH118, PTH120

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

CONFIG_FILE = "kavi.toml"  # kavi.workspace.CONFIG_FILE, without importing it
STATE_DIR = ".kavi"  # kavi.workspace.STATE_DIR
_VALUE_OPTIONS = {
    "--json": "input_json",
    "--input-file": "input_file",
    "--version": "version",
    "--workspace": "workspace",
}
_VALUE_OPTIONS["-w"] = "workspace"
_FLAGS = {"--require-isolation": ("require_isolation", True), "--allow-fallback": ("require_isolation", False)}


def run_fast(args: list[str]) -> tuple[int | None, str | None]:
    """The exit code of ``kavi run-skill ARGS`` answered by the server, or (None, the input's text if it was
    read) for the caller to run it. Only the plain forms of the options are recognised here."""
    parsed = _parse(args)
    if parsed is None:
        return None, None
    input_file = parsed.get("input_file")
    if parsed.get("input_json") is not None and input_file is not None:
        return None, None

    def read_text() -> str:
        if input_file is None:
            return str(parsed.get("input_json") or "{}")
        if input_file == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        with open(input_file, encoding="utf-8") as handle:
            return handle.read()

    try:
        version = int(parsed["version"]) if parsed.get("version") is not None else None
    except ValueError:
        return None, None
    what = "--input-file" if input_file is not None else "the input"
    workspace = parsed.get("workspace", os.environ.get("KAVI_WORKSPACE"))
    return via_server(str(parsed["name"]), read_text, what, version, parsed.get("require_isolation"), workspace)


def _parse(args: list[str]) -> dict[str, Any] | None:
    parsed: dict[str, Any] = {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        option, equals, value = arg.partition("=")
        if option in _VALUE_OPTIONS and option.startswith("--") and equals:
            parsed[_VALUE_OPTIONS[option]] = value
        elif arg in _VALUE_OPTIONS and rest:
            parsed[_VALUE_OPTIONS[arg]] = rest.pop(0)
        elif arg in _FLAGS:
            key, flag = _FLAGS[arg]
            parsed[key] = flag
        elif not arg.startswith("-") and "name" not in parsed:
            parsed["name"] = arg
        else:
            return None  # --in-process, --no-server, an abbreviation, a second name...: argparse decides
    return parsed if "name" in parsed else None


def via_server(
    name: str,
    read_text: Callable[[], str],
    what: str,
    version: int | None,
    require_isolation: object,
    workspace: str | os.PathLike[str] | None,
) -> tuple[int | None, str | None]:
    """Send the call to the workspace's server and print its answer: (exit code, None); or (None, text) when
    no server answers (text None: the input was not read) or the server hands the call back (SECRET_READ).
    A caller that forces an isolation level (``KAVI_ISOLATION``) is not sent: the server's level is its own."""
    if os.environ.get("KAVI_ISOLATION", "").strip().lower() not in ("", "auto"):
        return None, None
    root = _workspace_root(workspace)
    if root is None:
        return None, None
    from kavi.server.local import SOCKET_NAME, connect, exchange

    connection = connect(os.path.join(root, STATE_DIR, SOCKET_NAME))
    if connection is None:
        return None, None
    with connection:
        try:
            text = read_text()
        except (OSError, UnicodeDecodeError):
            return None, None  # the caller reads it again and reports the error in its own words
        request = {
            "name": name,
            "text": text,
            "what": what,
            "version": version,
            "require_isolation": require_isolation,
        }
        answer = exchange(connection, request)
    if "fallback" in answer:
        return None, text
    sys.stdout.write(str(answer.get("stdout", "")))
    sys.stdout.flush()
    sys.stderr.write(str(answer.get("stderr", "")))
    return int(answer.get("code", 1)), None


def _workspace_root(explicit: str | os.PathLike[str] | None) -> str | None:
    """The folder `kavi.workspace.find_workspace` would choose, or None where it would raise (it then does)."""
    if explicit:
        root = os.path.realpath(os.path.expanduser(os.fspath(explicit)))
        return root if os.path.isfile(os.path.join(root, CONFIG_FILE)) else None
    if os.environ.get("KAVI_TESTING") == "1":
        return None
    here = os.path.realpath(os.getcwd())
    while True:
        if os.path.isfile(os.path.join(here, CONFIG_FILE)):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
