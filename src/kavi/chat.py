"""kavi chat: a conversation with an OpenAI-compatible model whose tools are the workspace's TRUSTED skills.

The model is configured exactly as the ``openai`` builder is (``[build.options.openai]`` in kavi.toml and the
``KAVI_OPENAI_*`` overrides). Each tool is a TRUSTED skill's latest version, defined from its frozen spec as
`kavi serve` defines it; each call is the governed run of `kavi run-skill`, recorded under the chat's node of
the execution tree. A call whose side-effect class is not READ_ONLY waits for a person's yes first (or for
``--yes``, which is recorded with each call it let through); a declined call is a ``declined`` node: nothing
ran. Like the server, this is a front end above the stages: it owns no rule of its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kavi.builders.openai_compat import OpenAIBuilder, Reply, reply_from_completion, reply_from_stream
from kavi.errors import BuilderUnavailableError, KaviError
from kavi.ledger.models import Promotion
from kavi.ledger.store import append_event
from kavi.server.tools import ToolEntry, trusted_tools
from kavi.side_effects import DeclaredEffects, SideEffect
from kavi.stages.common import Forge, default_approver
from kavi.stages.dispatch import run_trusted
from kavi.stages.executions import begin_execution, finish_execution, record_execution

SYSTEM_PROMPT = """\
You are kavi's chat. Your tools are the TRUSTED skills of this workspace: each call runs the verified
version of a skill, isolated, with only the side effects it declared, and is recorded in the ledger. A
call that changes anything (not READ_ONLY) runs only after the person says yes; when they decline, say so
and do not try the same call another way. Answer briefly.
"""
MAX_TOOL_TEXT = 8_000  # what one tool result sends back to the model at most
ASSUMED_YES = "--yes"
PERSON = "person"


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for, as a person is asked to confirm it."""

    name: str
    version: int
    arguments: dict[str, Any]
    side_effect: str
    grants: str  # what the version may do, in words ("write under notes")


Confirm = Callable[[ToolCall], bool]
Notify = Callable[[str], None]


@dataclass(frozen=True)
class ChatTool:
    entry: ToolEntry
    side_effect: str  # the class, or a chain's union of its members' classes (READ_ONLY+FILE_WRITE)
    grants: str  # what it may do, in words
    read_only: bool  # every class READ_ONLY: runs without asking

    def openai_schema(self) -> dict[str, Any]:
        definition = self.entry.definition
        return {
            "type": "function",
            "function": {
                "name": definition["name"],
                "description": definition["description"],
                "parameters": definition["inputSchema"],
            },
        }


def grants_of(effects: DeclaredEffects) -> str:
    """What a declared class lets the skill do, from the spec's own fields."""
    parts = [
        (effects.write_roots, "write under"),
        (effects.allow_hosts, "connect to"),
        (effects.executables, "run"),
        (effects.secrets, "read the secret"),
    ]
    said = [f"{verb} {', '.join(values)}" for values, verb in parts if values]
    return "; ".join(said) or "nothing beyond computing its output"


def chat_tools(forge: Forge) -> dict[str, ChatTool]:
    tools: dict[str, ChatTool] = {}
    for entry in trusted_tools(forge):
        spec = json.loads(forge.store.get(entry.spec_sha256))
        tools[entry.name] = _tool_of(entry, spec)
    return tools


def _tool_of(entry: ToolEntry, spec: dict[str, Any]) -> ChatTool:
    """A skill declares one class and its grants; a chain (``side_effects``) runs members that each declared
    theirs, so it may do what any of them may, and asks first unless every one is READ_ONLY."""
    if "side_effects" in spec:
        classes = [SideEffect(value) for value in spec["side_effects"]]
        members = ", ".join(f"{step['skill']} v{step.get('version')}" for step in spec.get("steps", ()))
        label = "+".join(str(value) for value in classes)
        grants = f"run its steps ({members}), each only as its own version declared"
        return ChatTool(entry, label, grants, all(value is SideEffect.READ_ONLY for value in classes))
    effects = DeclaredEffects.from_spec_data(spec)
    read_only = effects.side_effect is SideEffect.READ_ONLY
    return ChatTool(entry, str(effects.side_effect), grants_of(effects), read_only)


@dataclass
class ChatSession:
    """One conversation: its messages, its tools and its node in the execution tree."""

    forge: Forge
    builder: OpenAIBuilder
    confirm: Confirm
    notify: Notify = lambda _text: None
    assume_yes: bool = False
    max_turns: int = 8  # model answers per message of the person
    tools: dict[str, ChatTool] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    node_id: str = ""
    calls: int = 0
    client: Any = None

    @classmethod
    def start(
        cls,
        forge: Forge,
        *,
        confirm: Confirm,
        notify: Notify = lambda _text: None,
        assume_yes: bool = False,
    ) -> ChatSession:
        builder = OpenAIBuilder.from_config(forge.workspace.config.build.options.get("openai"))
        ok, why = builder.configured()
        if not ok:
            raise BuilderUnavailableError(why)
        unreachable = builder.probe()
        if unreachable:
            raise BuilderUnavailableError(
                f"the model's server at {builder.options.base_url} is not reachable: {unreachable}",
                hint="start it, or set [build.options.openai] base_url (KAVI_OPENAI_BASE_URL)",
            )
        session = cls(forge, builder, confirm, notify, assume_yes, tools=chat_tools(forge))
        session.messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        tools = {name: tool.entry.sha256 for name, tool in session.tools.items()}
        request = {"model": builder.options.model, "base_url": builder.options.base_url, "tools": tools}
        session.node_id = begin_execution(
            forge, "chat", str(builder.options.model), input_data={**request, "assume_yes": assume_yes}
        )
        session.client = builder.client()
        return session

    def close(self, status: str = "OK") -> None:
        if self.client is not None:
            self.client.close()
        turns = sum(1 for message in self.messages if message["role"] == "user")
        finish_execution(self.forge, self.node_id, status, output={"turns": turns, "calls": self.calls})

    def say(self, text: str) -> str:
        """The person's message in; the model's answer out, after every tool call it made on the way."""
        self.messages.append({"role": "user", "content": text})
        for _ in range(self.max_turns):
            reply = self._ask()
            if not reply.tool_calls:
                self.messages.append({"role": "assistant", "content": reply.text})
                return reply.text
            calls = [{**call, "id": call["id"] or f"call_{self.calls}_{n}"} for n, call in enumerate(reply.tool_calls)]
            self.messages.append(_assistant_message(reply.text, calls))
            for call in calls:
                answer = self._call(call["name"], call["arguments"])
                self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": answer[:MAX_TOOL_TEXT]})
        note = f"(the model made tool calls for {self.max_turns} answers in a row without replying; stopped)"
        self.messages.append({"role": "assistant", "content": note})
        return note

    def _ask(self) -> Reply:
        import openai  # the builder's SDK; configured() checked it is there

        options = self.builder.options
        arguments: dict[str, Any] = {
            "model": options.model,
            "messages": self.messages,
            "max_tokens": options.max_response_tokens,
        }
        if self.tools:
            arguments["tools"] = [tool.openai_schema() for tool in self.tools.values()]
        if options.temperature is not None:
            arguments["temperature"] = options.temperature
        try:
            if options.stream:
                stream = self.client.chat.completions.create(
                    stream=True, stream_options={"include_usage": True}, **arguments
                )
                return reply_from_stream(stream)
            return reply_from_completion(self.client.chat.completions.create(**arguments))
        except openai.OpenAIError as error:
            raise BuilderUnavailableError(
                f"the model's server at {options.base_url} failed: {type(error).__name__}: {str(error)[:300]}",
                hint="check the server, or set [build.options.openai] in kavi.toml",
            ) from None
        except ValueError as error:
            raise BuilderUnavailableError(f"the model's answer is not a usable chat completion: {error}") from None

    def _call(self, name: str, arguments_text: str) -> str:
        """Run one tool call as a governed run under the chat; the text the model reads back."""
        self.calls += 1
        tool = self.tools.get(name)
        if tool is None:
            return f"error: there is no TRUSTED skill named {name!r}; the tools are: {', '.join(self.tools)}"
        try:
            arguments = json.loads(arguments_text or "{}")
        except ValueError as error:
            return f"error: the arguments are not JSON ({error})"
        if not isinstance(arguments, dict):
            return "error: the arguments must be a JSON object"
        request = ToolCall(name, tool.entry.version, arguments, tool.side_effect, tool.grants)
        if not tool.read_only:
            confirmed_by = ASSUMED_YES if self.assume_yes else PERSON if self.confirm(request) else None
            self._record_decision(request, confirmed_by)
            if confirmed_by is None:
                record_execution(
                    self.forge, "declined", name, input_data=arguments, parent=self.node_id, status="DECLINED"
                )
                self.notify(f"declined: {name} did not run")
                return "the person declined this call: nothing ran"
        try:
            result = run_trusted(
                self.forge.workspace,
                name,
                arguments,
                version=tool.entry.version,
                parent=self.node_id,
                raise_on_failure=False,
            )
        except KaviError as error:  # refused before it ran (integrity, a revoked version): the model hears why
            self.notify(f"{name} refused: {error}")
            return f"error: {error}"
        if result.error is not None:
            self.notify(f"{name} v{result.version} failed: {result.error} ({result.execution_id})")
            return f"error: {result.error}"
        output = json.dumps(result.output, sort_keys=True)
        self.notify(f"{name} v{result.version} -> {output} ({result.execution_id})")
        return output

    def _record_decision(self, request: ToolCall, confirmed_by: str | None) -> None:
        """Who let a call that changes something run (``--yes`` or a person), or that it was declined."""
        canonical = json.dumps(request.arguments, sort_keys=True).encode("utf-8")
        with self.forge.ledger.transaction() as session:
            proposal_id = _proposal_of(session, self.tools[request.name].entry.promotion_id)
            append_event(
                session,
                "chat.call.confirmed" if confirmed_by else "chat.call.declined",
                {
                    "chat_id": self.node_id,
                    "name": request.name,
                    "version": request.version,
                    "side_effect": request.side_effect,
                    "input_sha256": hashlib.sha256(canonical).hexdigest(),
                    "confirmed_by": confirmed_by,
                    "user": default_approver(),
                },
                proposal_id=proposal_id,
            )


def _proposal_of(session: Any, promotion_id: str) -> str | None:
    promotion = session.get(Promotion, promotion_id)
    return None if promotion is None else str(promotion.proposal_id)


def _assistant_message(text: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            for call in calls
        ],
    }
