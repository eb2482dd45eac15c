"""The ``claude-code`` builder: the real Claude Code CLI, headless, confined to sandbox file tools.

The CLI runs with ``-p`` in the sandbox folder, offered only Read, Write, Edit, Glob and Grep (no
shell, no web), in ``acceptEdits`` mode, so it can change files under its working directory and
nothing else. Its environment is built from nothing: a fresh HOME in a private folder, the API key
it was given, and the switches that keep it off the network except for the API. A wall-clock
timeout kills its process group.

The CLI reports a refused tool call as a *successful* run with ``permission_denials`` listed, so a
non-empty list is a failed build here.

``ask`` (the planner's call) runs the same CLI, with the same environment, one turn and no tools at all,
in an empty private folder: the model can only answer text.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from pydantic import Field

from kavi import progress
from kavi.builders.base import (
    BuilderOptions,
    BuildOutcome,
    BuildPacket,
    BuildStatus,
    FailureKind,
    ModelAnswer,
    TokenUsage,
    TraceEvent,
)
from kavi.builders.options import load_options
from kavi.builders.tools import changed_files, snapshot
from kavi.errors import BuildError, BuilderUnavailableError

TOOLS = "Read,Write,Edit,Glob,Grep"
BINARY_ENV = "KAVI_CLAUDE_BIN"
INSTALL_HINT = (
    "install Claude Code (`npm install @anthropic-ai/claude-code`, or `npm ci` in the kavi "
    f"repository) or point the `binary` option or {BINARY_ENV} at the `claude` executable"
)
MAX_TRACE_TEXT = 20_000
_KILL_GRACE_S = 2.0
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_CONNECTION_WORDS = re.compile(
    r"connection error|ECONNREFUSED|ENOTFOUND|unable to connect|fetch failed|socket hang up|"
    r"authentication_error|invalid x-api-key|overloaded",
    re.IGNORECASE,
)

INSTRUCTION = """\
You are the builder of a kavi skill. Work only in the current working directory, with the file
tools you have. Create or change only the files listed under "Files you may create or change";
anything else you write is discarded. Follow every rule and the frozen spec exactly; you cannot
change the spec. There is no shell: do not try to run anything. When the files are written,
answer with a one-paragraph summary.

"""


class ClaudeCodeOptions(BuilderOptions):
    """Options of the claude-code builder; each can be overridden by ``KAVI_CLAUDE_<FIELD>``."""

    binary: str | None = Field(default=None, description="path or name of the `claude` executable")
    model: str | None = Field(default=None, description="passed as --model when set")
    max_turns: int = Field(default=20, ge=1, le=1000)
    timeout_s: float = Field(default=600.0, gt=0, le=24 * 3600)
    base_url: str | None = Field(default=None, description="ANTHROPIC_BASE_URL for the CLI")
    api_key_env: str = Field(default="ANTHROPIC_API_KEY", pattern=_ENV_NAME)
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="API retries (CLAUDE_CODE_MAX_RETRIES); the CLI's own "
        "default of 10 with backoff turns a server that is down into minutes of waiting",
    )


def find_claude_binary(option: str | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The ``claude`` executable: the option, KAVI_CLAUDE_BIN, PATH, then node_modules upward."""
    for candidate in (option, environ.get(BINARY_ENV)):
        if candidate:
            found = shutil.which(candidate, path=environ.get("PATH"))
            if found is None and Path(candidate).is_file() and os.access(candidate, os.X_OK):
                found = candidate
            return Path(found).resolve() if found else None
    on_path = shutil.which("claude", path=environ.get("PATH"))
    if on_path:
        return Path(on_path).resolve()
    for folder in (cwd.resolve(), *cwd.resolve().parents):
        local = folder / "node_modules" / ".bin" / "claude"
        if local.is_file() and os.access(local, os.X_OK):
            return local
    return None


def claude_environment(
    *, path: str, home: Path, api_key: str, base_url: str | None, max_retries: int = 2
) -> dict[str, str]:
    """The whole environment of the CLI, built from nothing: no variable of the caller leaks in."""
    env = {
        "PATH": path,
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_API_KEY": api_key,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": str(max_retries),
    }
    if base_url:
        env["ANTHROPIC_BASE_URL"] = base_url
    return env


ALLOWED_ENV_KEYS = frozenset(claude_environment(path="", home=Path(), api_key="", base_url="x").keys())


# --- the stream -----------------------------------------------------------------------------------


@dataclass
class StreamSummary:
    """What the stream-json output of one run said, as trace events plus the final result line."""

    events: list[TraceEvent] = field(default_factory=list)
    result: dict[str, Any] | None = None
    denials: list[dict[str, Any]] = field(default_factory=list)
    unparsed_lines: int = 0
    usage_seen: set[str] = field(default_factory=set)


def _cut(value: Any) -> Any:
    """Bound the size of texts kept in the trace (a Write carries a whole file)."""
    if isinstance(value, str) and len(value) > MAX_TRACE_TEXT:
        return value[:MAX_TRACE_TEXT] + f"[... cut, {len(value)} chars]"
    if isinstance(value, dict):
        return {str(k): _cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v) for v in value]
    return value


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _assistant_events(message: Mapping[str, Any], seen: set[str]) -> Iterable[TraceEvent]:
    """Text and tool calls of one assistant line; its usage once per message (the CLI writes one
    line per content block, each repeating the message's usage)."""
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and block.get("text"):
            yield TraceEvent("assistant_message", {"text": _cut(block["text"])})
        elif block.get("type") == "tool_use":
            data = {
                "id": block.get("id"),
                "name": block.get("name"),
                "input": _cut(block.get("input")),
            }
            yield TraceEvent("tool_call", data)
    usage, message_id = message.get("usage"), str(message.get("id", ""))
    if isinstance(usage, dict) and message_id not in seen:
        seen.add(message_id)
        yield TraceEvent("usage", {"scope": "message", **_cut(usage)})


def _user_events(message: Mapping[str, Any]) -> Iterable[TraceEvent]:
    content = message.get("content")
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            data = {
                "tool_use_id": block.get("tool_use_id"),
                "is_error": bool(block.get("is_error", False)),
                "content": _cut(_content_text(block.get("content"))),
            }
            yield TraceEvent("tool_result", data)


def _result_events(line: Mapping[str, Any]) -> Iterable[TraceEvent]:
    yield TraceEvent(
        "result",
        {
            "subtype": line.get("subtype"),
            "is_error": bool(line.get("is_error", False)),
            "num_turns": line.get("num_turns"),
            "stop_reason": line.get("stop_reason"),
            "result": _cut(line.get("result")),
            "permission_denials": _cut(line.get("permission_denials") or []),
            "api_error_status": line.get("api_error_status"),
            "api_error": line.get("api_error"),
            "terminal_reason": line.get("terminal_reason"),
        },
    )
    if isinstance(line.get("usage"), dict):
        yield TraceEvent("usage", {"scope": "total", **_cut(line["usage"])})
    if line.get("total_cost_usd") is not None:
        yield TraceEvent("cost", {"total_cost_usd": line.get("total_cost_usd")})


def parse_stream(lines: Iterable[str]) -> StreamSummary:
    """Turn the CLI's stream-json lines into trace events; skip lines that are not JSON objects."""
    summary = StreamSummary()
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            summary.unparsed_lines += 1
            continue
        if not isinstance(line, dict):
            summary.unparsed_lines += 1
            continue
        summary.events.extend(_line_events(line, summary))
    return summary


def _line_events(line: dict[str, Any], summary: StreamSummary) -> Iterable[TraceEvent]:
    kind, subtype = line.get("type"), line.get("subtype")
    raw_message = line.get("message")
    message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
    if kind == "system" and subtype == "init":
        keys = ("cwd", "model", "tools", "permissionMode", "claude_code_version")
        return [TraceEvent("init", {key: line.get(key) for key in keys})]
    if kind == "system" and subtype == "api_retry":
        retry = ("attempt", "max_retries", "retry_delay_ms", "error_status", "error")
        return [TraceEvent("api_retry", {key: line.get(key) for key in retry})]
    if kind == "system" and subtype == "permission_denied":
        fields = ("tool_name", "tool_use_id", "decision_reason", "message")
        return [TraceEvent("permission_denied", {key: _cut(line.get(key)) for key in fields})]
    if kind == "assistant":
        return list(_assistant_events(message, summary.usage_seen))
    if kind == "user":
        return list(_user_events(message))
    if kind == "result":
        summary.result = line
        summary.denials = [d for d in line.get("permission_denials") or [] if isinstance(d, dict)]
        return list(_result_events(line))
    return []


# --- running the CLI ------------------------------------------------------------------------------


@dataclass
class _Run:
    stdout_lines: list[str]
    stderr: str
    returncode: int | None
    timed_out: bool
    duration_s: float


def _pump(stream: IO[str], sink: list[str], watcher: progress.Sink | None = None) -> None:
    for line in stream:
        sink.append(line)
        if watcher is not None:
            _tell(watcher, line)


def _tell(watcher: progress.Sink, line: str) -> None:
    """Pass what one stream-json line says to a watcher, as the trace events it will be recorded as."""
    try:
        parsed = json.loads(line)
    except ValueError:
        return
    if not isinstance(parsed, dict):
        return
    for event in _line_events(parsed, StreamSummary()):
        progress.emit("builder.output", {"builder": "claude-code", "kind": event.kind, "data": event.data}, watcher)


def _feed(stream: IO[str], text: str) -> None:
    try:
        stream.write(text)
        stream.close()
    except (BrokenPipeError, OSError, ValueError):
        return


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Stop the CLI and every process it started: TERM, a short grace, then KILL for stragglers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    else:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_KILL_GRACE_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_cli(command: list[str], *, cwd: Path, env: Mapping[str, str], stdin_text: str, timeout_s: float) -> _Run:
    """Run ``command`` in its own process group, read output as it comes; kill at the timeout."""
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    assert process.stdin and process.stdout and process.stderr
    out: list[str] = []
    err: list[str] = []
    threads = [
        threading.Thread(target=_feed, args=(process.stdin, stdin_text), daemon=True),
        threading.Thread(target=_pump, args=(process.stdout, out, progress.current()), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, err), daemon=True),
    ]
    for thread in threads:
        thread.start()
    timed_out = False
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(process)  # also reaps anything a finished CLI left behind
    for thread in threads:
        thread.join(timeout=5)
    return _Run(out, "".join(err), process.returncode, timed_out, time.monotonic() - start)


class ClaudeCodeBuilder:
    """Build with the Claude Code CLI (``claude -p``), offered file tools only."""

    name: ClassVar[str] = "claude-code"
    options_model: ClassVar[type[BuilderOptions]] = ClaudeCodeOptions
    env_prefix: ClassVar[str] = "KAVI_CLAUDE_"

    def __init__(
        self,
        options: ClaudeCodeOptions | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.options = options or ClaudeCodeOptions()
        self._environ = environ

    @classmethod
    def from_config(
        cls, configured: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> ClaudeCodeBuilder:
        """Options from kavi.toml (``configured``) with KAVI_CLAUDE_* overrides applied."""
        options = load_options(ClaudeCodeOptions, configured, prefix=cls.env_prefix, environ=environ)
        return cls(options, environ=environ)

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def binary(self) -> Path | None:
        return find_claude_binary(self.options.binary, self.environ, Path.cwd())

    def available(self) -> tuple[bool, str]:
        binary = self.binary()
        if binary is None:
            return False, f"no `claude` executable found: {INSTALL_HINT}"
        if not self.environ.get(self.options.api_key_env, "").strip():
            return False, (
                f"{self.options.api_key_env} is not set: export your Anthropic API key there, "
                "or set the builder's `api_key_env` option (KAVI_CLAUDE_API_KEY_ENV) to the "
                "variable that holds it"
            )
        return True, f"claude at {binary}"

    def command(self, binary: Path) -> list[str]:
        """The CLI's argument list (no shell, so nothing in it is interpreted)."""
        command = [
            str(binary),
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--tools",
            TOOLS,
            "--permission-mode",
            "acceptEdits",
            "--max-turns",
            str(self.options.max_turns),
            "--no-session-persistence",
            "--strict-mcp-config",  # no MCP server from the sandbox's .mcp.json
            "--setting-sources",  # settings only from the private HOME: none of the workspace's
            "user",
        ]
        if self.options.model:
            command += ["--model", self.options.model]
        return command

    def ask_command(self, binary: Path, system: str) -> list[str]:
        """The CLI's argument list for one question: no tools, one turn, ``system`` as the system prompt."""
        command = [
            str(binary),
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--tools",
            "",  # none: the answer is text only
            "--system-prompt",
            system,
            "--max-turns",
            "1",
            "--no-session-persistence",
            "--strict-mcp-config",
            "--setting-sources",
            "user",
        ]
        if self.options.model:
            command += ["--model", self.options.model]
        return command

    def _ready(self) -> Path:
        ok, reason = self.available()
        binary = self.binary()
        if not ok or binary is None:
            raise BuilderUnavailableError(reason)
        return binary

    def _run_private(self, binary: Path, command: list[str], *, cwd: Path | None, stdin_text: str) -> _Run:
        """Run the CLI with a fresh HOME in a private temporary folder (its working directory too when
        ``cwd`` is None), removed afterwards."""
        private = Path(tempfile.mkdtemp(prefix="kavi-claude-"))
        try:
            home = private / "home"
            (home / "tmp").mkdir(parents=True)
            work = cwd
            if work is None:
                work = private / "work"
                work.mkdir()
            env = claude_environment(
                path=self.environ.get("PATH", os.defpath),
                home=home,
                api_key=self.environ[self.options.api_key_env],
                base_url=self.options.base_url,
                max_retries=self.options.max_retries,
            )
            return run_cli(command, cwd=work, env=env, stdin_text=stdin_text, timeout_s=self.options.timeout_s)
        except OSError as error:  # not executable, wrong architecture, a broken install
            raise BuilderUnavailableError(f"cannot start {binary}: {error}; {INSTALL_HINT}") from None
        finally:
            shutil.rmtree(private, ignore_errors=True)

    def build(self, packet: BuildPacket, sandbox: Path) -> BuildOutcome:
        binary = self._ready()
        if not sandbox.is_dir():
            raise BuildError(f"the sandbox {sandbox} is not a folder", hint="a bug in the caller")
        prompt = INSTRUCTION + packet.render_markdown()
        before = snapshot(sandbox)
        run = self._run_private(binary, self.command(binary), cwd=sandbox, stdin_text=prompt)
        return self._outcome(run, prompt, sandbox, before)

    def ask(self, system: str, user: str) -> ModelAnswer:
        """Ask the model one question through the CLI, with no tools: its final text answer and cost.

        A model that cannot be reached (or a run killed at the timeout) is a BuilderUnavailableError; any
        other failed run a BuildError, with the CLI's own words."""
        binary = self._ready()
        run = self._run_private(binary, self.ask_command(binary, system), cwd=None, stdin_text=user)
        summary = parse_stream(run.stdout_lines)
        _, kind, reason = self._judge(run, summary)
        if summary.result is not None and summary.result.get("subtype") == "error_max_turns":
            reason = "claude did not answer in its one turn (it has no tools here: it must answer in text)"
        if kind is not None:
            setup = "`kavi builders` shows the claude-code builder's options"
            if kind in (FailureKind.BACKEND_UNAVAILABLE, FailureKind.TIMEOUT):
                where = self.options.base_url or "the Anthropic API"
                hint = f"check that {where} answers and that {self.options.api_key_env} holds a key it takes; {setup}"
                raise BuilderUnavailableError(reason or "claude failed", hint=hint)
            raise BuildError(reason or "claude failed", hint=setup)
        assert summary.result is not None  # _judge: a clean finish has a result line
        usage, cost = _usage_and_cost(summary.result)
        return ModelAnswer(str(summary.result.get("result") or ""), usage, cost)

    def _outcome(self, run: _Run, prompt: str, sandbox: Path, before: Mapping[str, str]) -> BuildOutcome:
        summary = parse_stream(run.stdout_lines)
        events = [
            TraceEvent("prompt", {"text": _cut(prompt), "chars": len(prompt)}),
            *summary.events,
        ]
        events.append(TraceEvent("files_changed", changed_files(before, snapshot(sandbox))))
        if run.stderr.strip():
            events.append(TraceEvent("stderr", {"text": run.stderr[-4000:]}))
        status, failure_kind, reason = self._judge(run, summary)
        usage, cost = _usage_and_cost(summary.result)
        if failure_kind is not None:
            events.append(TraceEvent("failure", {"kind": failure_kind, "reason": reason}))
        return BuildOutcome(
            status=status,
            reason=reason,
            trace=tuple(events),
            usage=usage,
            cost_usd=cost,
            duration_s=round(run.duration_s, 3),
            failure_kind=failure_kind,
        )

    def _judge(self, run: _Run, summary: StreamSummary) -> tuple[BuildStatus, str | None, str | None]:
        """SUCCEEDED only for a clean finish: a result line, no error, no denial, no timeout."""
        failed = BuildStatus.FAILED
        if run.timed_out:
            limit = self.options.timeout_s
            return failed, FailureKind.TIMEOUT, f"claude did not finish within {limit:g}s; killed"
        result = summary.result
        if result is None:
            tail = run.stderr.strip().splitlines()[-1:] or ["no output"]
            return (
                failed,
                FailureKind.BUILD_ERROR,
                (f"claude exited with code {run.returncode} without a result: {tail[0][:300]}"),
            )
        if summary.denials:
            names = ", ".join(sorted({str(d.get("tool_name", "?")) for d in summary.denials}))
            return (
                failed,
                FailureKind.GATE_VIOLATION,
                (
                    f"claude was refused {len(summary.denials)} tool call(s) ({names}); "
                    "a build must stay inside its sandbox and tools"
                ),
            )
        subtype = str(result.get("subtype", ""))
        if subtype == "error_max_turns":
            return (
                failed,
                FailureKind.BUILD_ERROR,
                (f"claude stopped after max_turns={self.options.max_turns} without finishing"),
            )
        if result.get("is_error") or subtype != "success" or run.returncode not in (0, None):
            text = str(result.get("result") or subtype or "error")[:300]
            kind = FailureKind.BUILD_ERROR
            api_failed = result.get("api_error") or result.get("terminal_reason") == "api_error"
            if api_failed or result.get("api_error_status") or _CONNECTION_WORDS.search(text):
                kind = FailureKind.BACKEND_UNAVAILABLE
            return failed, kind, f"claude reported an error ({subtype}): {text}"
        return BuildStatus.SUCCEEDED, None, None


def _usage_and_cost(result: Mapping[str, Any] | None) -> tuple[TokenUsage, float | None]:
    if not result:
        return TokenUsage(), None
    usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    tokens = TokenUsage(
        input_tokens=int(usage.get("input_tokens") or 0)
        + int(usage.get("cache_read_input_tokens") or 0)
        + int(usage.get("cache_creation_input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
    )
    cost = result.get("total_cost_usd")
    return tokens, float(cost) if isinstance(cost, int | float) else None
