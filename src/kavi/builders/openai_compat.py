"""The ``openai`` builder: any OpenAI-compatible chat server (Ollama, vLLM, llama.cpp, LM Studio).

The model works through three tools confined to the sandbox (read_file, list_files, write_file) in a
loop bounded by turns, tokens and wall-clock time. Transient errors (connection, 429, 5xx) are
retried with exponential backoff; what still fails becomes a FAILED outcome whose ``failure_kind``
says whether the server was unreachable (BACKEND_UNAVAILABLE) or answered nonsense (BUILD_ERROR).
The ``openai`` package is imported only when a build runs, so the CLI starts fast without it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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
from kavi.builders.tools import SANDBOX_TOOLS, call_tool, changed_files, snapshot
from kavi.errors import BuildError, BuilderUnavailableError

MAX_TRACE_TEXT = 20_000
PROBE_TIMEOUT_S = 2.0  # `kavi builders`, `kavi doctor` and each build ask the server this long at most
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

SYSTEM_PROMPT = """\
You are the builder of a kavi skill. You work in a sandbox folder through three tools: list_files,
read_file and write_file; paths are relative to the sandbox root. Write only the files listed under
"Files you may create or change"; anything else is discarded. Follow every rule and the frozen spec
exactly; you cannot change the spec. There is no shell. When the files are written, answer with a
short summary and no tool call: that ends the build.
"""


class OpenAIOptions(BuilderOptions):
    """Options of the openai builder; each can be overridden by ``KAVI_OPENAI_<FIELD>``."""

    base_url: str = Field(default="http://127.0.0.1:11434/v1", description="the /v1 endpoint")
    model: str | None = Field(default=None, description="the model name the server knows")
    api_key_env: str | None = Field(default=None, pattern=_ENV_NAME, description="none for local")
    max_turns: int = Field(default=20, ge=1, le=1000)
    max_tokens: int = Field(default=200_000, ge=1, description="token budget of the whole build")
    max_response_tokens: int = Field(default=4096, ge=1, description="per answer")
    timeout_s: float = Field(default=600.0, gt=0, le=24 * 3600)
    stream: bool = False
    retries: int = Field(default=3, ge=0, le=20, description="retries of a transient error")
    retry_backoff_s: float = Field(default=1.0, ge=0, le=60)
    temperature: float | None = Field(default=None, ge=0, le=2)


@dataclass
class Reply:
    """One answer of the model, whether it came streamed or whole."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    finish_reason: str | None = None


class BuildFailure(Exception):
    """Ends the loop with a FAILED outcome (internal: never leaves this module)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TRACE_TEXT else text[:MAX_TRACE_TEXT] + "[... cut]"


def _import_openai() -> Any:
    import openai  # deferred: only a build needs the SDK

    return openai


# --- reading answers ------------------------------------------------------------------------------


def _usage_of(raw: Any) -> TokenUsage:
    if raw is None:
        return TokenUsage()
    prompt = getattr(raw, "prompt_tokens", None) or 0
    completion = getattr(raw, "completion_tokens", None) or 0
    return TokenUsage(input_tokens=int(prompt), output_tokens=int(completion))


def _arguments_text(arguments: Any) -> str:
    """Tool arguments as JSON text (some servers send an object instead of a string)."""
    if isinstance(arguments, dict | list):
        return json.dumps(arguments)
    return str(arguments or "")


def reply_from_completion(completion: Any) -> Reply:
    """A non-streamed ChatCompletion as a Reply; raise ValueError for an answer without choices."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise ValueError(f"the server's answer has no choices: {str(completion)[:200]!r}")
    message = getattr(choices[0], "message", None)
    if message is None:
        raise ValueError("the server's answer has no message")
    calls = []
    for call in getattr(message, "tool_calls", None) or []:
        function = getattr(call, "function", None)
        calls.append(
            {
                "id": getattr(call, "id", None),
                "name": str(getattr(function, "name", "") or ""),
                "arguments": _arguments_text(getattr(function, "arguments", "")),
            }
        )
    return Reply(
        text=str(getattr(message, "content", None) or ""),
        tool_calls=calls,
        usage=_usage_of(getattr(completion, "usage", None)),
        finish_reason=getattr(choices[0], "finish_reason", None),
    )


def reply_from_stream(chunks: Any) -> Reply:
    """Accumulate a streamed answer: text deltas, tool-call pieces by index, the usage chunk."""
    reply = Reply()
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    saw_chunk = False
    for chunk in chunks:
        saw_chunk = True
        if getattr(chunk, "usage", None) is not None:
            reply.usage = _usage_of(chunk.usage)
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            if getattr(choice, "finish_reason", None):
                reply.finish_reason = choice.finish_reason
            if delta is None:
                continue
            if getattr(delta, "content", None):
                text.append(delta.content)
            for piece in getattr(delta, "tool_calls", None) or []:
                slot = calls.setdefault(int(getattr(piece, "index", 0) or 0), {"id": None, "name": "", "arguments": ""})
                slot["id"] = getattr(piece, "id", None) or slot["id"]
                function = getattr(piece, "function", None)
                if function is not None:
                    slot["name"] += getattr(function, "name", None) or ""
                    slot["arguments"] += getattr(function, "arguments", None) or ""
    if not saw_chunk:
        raise ValueError("the server's stream ended without a single chunk")
    reply.text = "".join(text)
    reply.tool_calls = [calls[index] for index in sorted(calls)]
    return reply


# --- the builder --------------------------------------------------------------------------------


class OpenAIBuilder:
    """Build with a model behind an OpenAI-compatible chat-completions endpoint."""

    name: ClassVar[str] = "openai"
    options_model: ClassVar[type[BuilderOptions]] = OpenAIOptions
    env_prefix: ClassVar[str] = "KAVI_OPENAI_"

    def __init__(
        self,
        options: OpenAIOptions | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = options or OpenAIOptions()
        self._environ = environ
        self._sleep = sleep

    @classmethod
    def from_config(
        cls, configured: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> OpenAIBuilder:
        """Options from kavi.toml (``configured``) with KAVI_OPENAI_* overrides applied."""
        options = load_options(OpenAIOptions, configured, prefix=cls.env_prefix, environ=environ)
        return cls(options, environ=environ)

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def configured(self) -> tuple[bool, str]:
        """The SDK, a model and the key are there (no network)."""
        try:
            _import_openai()
        except ImportError:
            return False, "the `openai` package is missing: `pip install openai` (or `uv sync`)"
        if not self.options.model:
            return False, (
                "no model set for the openai builder: set `model` in its table of kavi.toml "
                "or KAVI_OPENAI_MODEL (e.g. the name `ollama list` shows)"
            )
        key_env = self.options.api_key_env
        if key_env and not self.environ.get(key_env, "").strip():
            return False, f"{key_env} is not set: export the server's API key there"
        return True, ""

    def available(self) -> tuple[bool, str]:
        """Configured, and the server answers a brief probe."""
        ok, why = self.configured()
        if not ok:
            return ok, why
        unreachable = self.probe()
        if unreachable:
            return False, (
                f"configured ({self.options.model} at {self.options.base_url}), not reachable: {unreachable}; "
                "start the server or set base_url (KAVI_OPENAI_BASE_URL)"
            )
        return True, f"{self.options.model} at {self.options.base_url}"

    def probe(self) -> str | None:
        """Ask the server for ``/models`` with a short timeout: None when it answers at all (any HTTP status),
        else why not. A dead server is found here in a second, not after a build's retries."""
        import urllib.error
        import urllib.request

        url = self.options.base_url.rstrip("/") + "/models"
        if not url.startswith(("http://", "https://")):
            return f"base_url {self.options.base_url!r} is not an http(s) URL"
        key_env = self.options.api_key_env
        headers = {"Authorization": f"Bearer {self.environ.get(key_env, '')}"} if key_env else {}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http(s) checked above)
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S):  # noqa: S310
                return None
        except urllib.error.HTTPError:
            return None  # it answered: reachable (a gateway may not list models)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"{type(reason).__name__}: {reason}" if not isinstance(reason, str) else reason

    def client(self) -> Any:
        """An SDK client with its own retries off: tenacity retries here, within the deadline."""
        openai = _import_openai()
        key_env = self.options.api_key_env
        api_key = self.environ.get(key_env, "") if key_env else ""
        return openai.OpenAI(
            base_url=self.options.base_url,
            api_key=api_key or "not-needed",
            max_retries=0,
            timeout=self.options.timeout_s,
        )

    def ask(self, system: str, user: str) -> ModelAnswer:
        """One chat completion with no tools: the model's text answer (``kavi plan`` asks its planner so)."""
        ok, reason = self.configured()
        if not ok:
            raise BuilderUnavailableError(reason)
        openai = _import_openai()
        client = self.client()
        try:
            completion = client.chat.completions.create(
                model=self.options.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                max_tokens=self.options.max_response_tokens,
                **({} if self.options.temperature is None else {"temperature": self.options.temperature}),
            )
            reply = reply_from_completion(completion)
        except (openai.OpenAIError, ValueError) as error:
            where = f"{self.options.model} at {self.options.base_url}"
            raise BuilderUnavailableError(f"{type(error).__name__} from {where}: {error}") from None
        finally:
            client.close()
        return ModelAnswer(reply.text, reply.usage)

    def build(self, packet: BuildPacket, sandbox: Path) -> BuildOutcome:
        ok, reason = self.configured()  # the stage probed the server; a refusal from here on fails at once
        if not ok:
            raise BuilderUnavailableError(reason)
        if not sandbox.is_dir():
            raise BuildError(f"the sandbox {sandbox} is not a folder", hint="a bug in the caller")
        start = time.monotonic()
        # the one line a person waiting on a build needs first: where it is talking to
        sys.stderr.write(f"openai builder: {self.options.model} at {self.options.base_url}\n")
        before = snapshot(sandbox)
        prompt = packet.render_markdown()
        session = _Session(self, sandbox, deadline=start + self.options.timeout_s)
        session.events.append(TraceEvent("prompt", {"text": _cut(prompt), "chars": len(prompt)}))
        status, kind, why = BuildStatus.SUCCEEDED, None, None
        try:
            session.run(prompt)
        except BuildFailure as failure:
            status, kind, why = BuildStatus.FAILED, failure.kind, failure.reason
            session.events.append(TraceEvent("failure", {"kind": kind, "reason": why}))
        finally:
            session.client.close()
        session.events.append(TraceEvent("files_changed", changed_files(before, snapshot(sandbox))))
        return BuildOutcome(
            status=status,
            reason=why,
            trace=tuple(session.events),
            usage=session.usage,
            cost_usd=None,
            duration_s=round(time.monotonic() - start, 3),
            failure_kind=kind,
        )


class _Session:
    """One build's conversation: messages, trace, token count and deadline."""

    def __init__(self, builder: OpenAIBuilder, sandbox: Path, *, deadline: float) -> None:
        self.builder = builder
        self.options = builder.options
        self.sandbox = sandbox
        self.deadline = deadline
        self.events: list[TraceEvent] = []
        self.denials: list[dict[str, str]] = []
        self.usage = TokenUsage()
        self.openai = _import_openai()
        self.client = builder.client()

    def run(self, prompt: str) -> None:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ]
        for turn in range(self.options.max_turns):
            reply = self._ask(messages)
            self._record(reply)
            if not reply.tool_calls:
                self._check_denials()
                return
            calls = [
                {**call, "id": call["id"] or f"call_{turn}_{index}"} for index, call in enumerate(reply.tool_calls)
            ]
            messages.append(_assistant_message(reply.text, calls))
            messages.extend(self._run_tools(calls))
        raise BuildFailure(
            FailureKind.BUILD_ERROR,
            f"the model did not finish within max_turns={self.options.max_turns}",
        )

    def _note(self, event: TraceEvent) -> None:
        """Keep ``event`` for the trace, and tell a watcher (the server's event stream) as it happens."""
        self.events.append(event)
        progress.emit("builder.output", {"builder": "openai", "kind": event.kind, "data": event.data})

    def _check_denials(self) -> None:
        """Like Claude Code's permission denials: trying to leave the sandbox fails the build."""
        if self.denials:
            raise BuildFailure(
                FailureKind.GATE_VIOLATION,
                f"the model was refused {len(self.denials)} tool call(s) that left the sandbox: "
                + "; ".join(d["reason"] for d in self.denials[:3]),
            )

    def _remaining(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise BuildFailure(FailureKind.TIMEOUT, f"the build did not finish within {self.options.timeout_s:g}s")
        return remaining

    def _ask(self, messages: list[dict[str, Any]]) -> Reply:
        """One completion, retried on transient errors with backoff, inside the deadline."""
        import tenacity

        openai = self.openai
        transient = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)

        def is_transient(error: BaseException) -> bool:
            # a request timeout already used what was left of the build's time, and a refused connection
            # means no server is listening: neither is retried
            return (
                isinstance(error, transient)
                and not isinstance(error, openai.APITimeoutError)
                and not _connection_refused(error)
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.options.retries + 1)
            | tenacity.stop_after_delay(max(self.deadline - time.monotonic(), 0)),
            wait=tenacity.wait_exponential(multiplier=self.options.retry_backoff_s, max=30),
            retry=tenacity.retry_if_exception(is_transient),
            sleep=self.builder._sleep,
            reraise=True,
        )
        try:
            return retrying(self._complete_once, messages)
        except BuildFailure:
            raise
        except openai.APITimeoutError:
            raise BuildFailure(
                FailureKind.TIMEOUT,
                f"the server did not answer within the build's {self.options.timeout_s:g}s",
            ) from None
        except openai.APIConnectionError as error:
            raise self._unavailable(f"cannot reach the server: {error}") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            raise self._unavailable(f"the server refused the key ({error.status_code})") from None
        except openai.NotFoundError as error:
            raise self._unavailable(f"the server has no such endpoint or model {self.options.model!r} (404)") from error
        except (openai.RateLimitError, openai.InternalServerError) as error:
            raise self._unavailable(f"the server kept failing ({error.status_code})") from None
        except (openai.OpenAIError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise BuildFailure(
                FailureKind.BUILD_ERROR,
                f"the server's answer is not a usable chat completion: {type(error).__name__}: {str(error)[:300]}",
            ) from None

    def _unavailable(self, detail: str) -> BuildFailure:
        return BuildFailure(
            FailureKind.BACKEND_UNAVAILABLE,
            f"{detail} at {self.options.base_url}: start the server or set the builder's "
            "base_url (KAVI_OPENAI_BASE_URL)",
        )

    def _complete_once(self, messages: list[dict[str, Any]]) -> Reply:
        remaining = self._remaining()
        arguments: dict[str, Any] = {
            "model": self.options.model,
            "messages": messages,
            "tools": [tool.openai_schema() for tool in SANDBOX_TOOLS],
            "max_tokens": self.options.max_response_tokens,
            "timeout": min(remaining, self.options.timeout_s),
        }
        if self.options.temperature is not None:
            arguments["temperature"] = self.options.temperature
        if self.options.stream:
            arguments["stream_options"] = {"include_usage": True}
            stream = self.client.chat.completions.create(stream=True, **arguments)
            return reply_from_stream(stream)
        return reply_from_completion(self.client.chat.completions.create(**arguments))

    def _record(self, reply: Reply) -> None:
        if reply.text:
            self._note(TraceEvent("assistant_message", {"text": _cut(reply.text)}))
        for call in reply.tool_calls:
            self._note(
                TraceEvent(
                    "tool_call",
                    {"id": call["id"], "name": call["name"], "arguments": _cut(call["arguments"])},
                )
            )
        self.usage = TokenUsage(
            input_tokens=self.usage.input_tokens + reply.usage.input_tokens,
            output_tokens=self.usage.output_tokens + reply.usage.output_tokens,
        )
        self._note(
            TraceEvent(
                "usage",
                {
                    "input_tokens": reply.usage.input_tokens,
                    "output_tokens": reply.usage.output_tokens,
                    "finish_reason": reply.finish_reason,
                },
            )
        )
        spent = self.usage.input_tokens + self.usage.output_tokens
        if spent > self.options.max_tokens:
            raise BuildFailure(
                FailureKind.BUILD_ERROR,
                f"the build spent {spent} tokens, over max_tokens={self.options.max_tokens}",
            )

    def _run_tools(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answers = []
        for call in calls:
            try:
                arguments = json.loads(call["arguments"] or "{}")
                if not isinstance(arguments, dict):
                    raise ValueError("arguments must be a JSON object")
            except ValueError as error:
                ok, text = False, f"error: the arguments are not a JSON object ({error})"
            else:
                result = call_tool(self.sandbox, call["name"], arguments)
                ok, text = result.ok, result.text
                if result.denied:
                    self.denials.append({"tool_name": call["name"], "reason": text})
            self._note(
                TraceEvent(
                    "tool_result",
                    {"tool_call_id": call["id"], "is_error": not ok, "content": _cut(text)},
                )
            )
            answers.append({"role": "tool", "tool_call_id": call["id"], "content": text})
        return answers


def _connection_refused(error: BaseException) -> bool:
    """Whether a connection error was a refusal (nothing listens there), looking through its causes."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "connection refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _assistant_message(text: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"] or "{}"},
            }
            for call in calls
        ],
    }
