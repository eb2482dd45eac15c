"""A build's events as a transcript of turns, tool calls, results and denials (`kavi trace`, the dashboard).

The ledger keeps each event as JSON (``kavi trace --json`` prints it whole). A person reading why a build
went wrong wants the conversation: what the model said, which tool it called on which path, what came
back, what was refused, what it cost. Each builder names its fields a little differently (Claude Code's
``input.file_path``, the openai builder's JSON ``arguments``, the replay's ``path``); this module reads all
of them. Pure text in, text lines out: the command prints them without markup.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

TEXT_LINES = 6  # lines of a message or tool result shown; `--json` has everything
TEXT_WIDTH = 160
_TARGET_KEYS = ("file_path", "path", "notebook_path", "pattern", "command", "url", "query")
_TURN_STARTERS = {"assistant_message", "tool_call"}


def transcript(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """One readable block per event, turns numbered where the model starts speaking again."""
    lines: list[str] = []
    turn = 0
    previous = ""
    for event in events:
        kind, data = str(event.get("kind", "")), event.get("data") or {}
        clock = str(event.get("ts", ""))[11:19]
        short = kind.removeprefix("trace.")
        if short in _TURN_STARTERS and previous not in _TURN_STARTERS:
            turn += 1
            lines.append(f"── turn {turn}")
        render = _RENDERERS.get(short) if kind.startswith("trace.") else None
        body = render(data) if render else _ledger_event(kind, data)
        lines.extend(
            f"{clock}  {line}" if index == 0 else f"{' ' * len(clock)}  {line}" for index, line in enumerate(body)
        )
        previous = short
    return lines


def _excerpt(text: Any, prefix: str = "  ") -> list[str]:
    """The first lines of a text, each bounded, with a note of what was left out."""
    value = text if isinstance(text, str) else json.dumps(text, sort_keys=True)
    all_lines = value.strip().splitlines() or [""]
    shown = [
        prefix + (line if len(line) <= TEXT_WIDTH else line[: TEXT_WIDTH - 1] + "…") for line in all_lines[:TEXT_LINES]
    ]
    if len(all_lines) > TEXT_LINES:
        shown.append(f"{prefix}… {len(all_lines) - TEXT_LINES} more line(s) (`kavi trace --json` has all)")
    return shown


def _arguments(data: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call's arguments as a dict, whichever builder wrote them."""
    raw = data.get("input", data.get("arguments"))
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return dict(raw) if isinstance(raw, dict) else {}


def tool_target(data: Mapping[str, Any]) -> str:
    """What a tool call acts on: the path it writes or reads, the command it runs."""
    if data.get("path"):
        return str(data["path"])
    arguments = _arguments(data)
    for key in _TARGET_KEYS:
        if arguments.get(key):
            return str(arguments[key])
    return ""


def _tool_call(data: Mapping[str, Any]) -> list[str]:
    name = data.get("name") or data.get("tool") or "tool"
    target = tool_target(data)
    return [f"→ {name}" + (f" {target}" if target else "")]


def _tool_result(data: Mapping[str, Any]) -> list[str]:
    head = "← error" if data.get("is_error") else "← ok"
    return [head, *_excerpt(data.get("content", ""))]


def _assistant(data: Mapping[str, Any]) -> list[str]:
    return ["assistant:", *_excerpt(data.get("text", ""))]


def _prompt(data: Mapping[str, Any]) -> list[str]:
    return [f"prompt ({data.get('chars', len(str(data.get('text', ''))))} chars)", *_excerpt(data.get("text", ""))]


def _usage(data: Mapping[str, Any]) -> list[str]:
    tokens_in = data.get("input_tokens", "?")
    tokens_out = data.get("output_tokens", "?")
    scope = " in total" if data.get("scope") == "total" else ""
    finish = f", finished: {data['finish_reason']}" if data.get("finish_reason") else ""
    return [f"usage{scope}: {tokens_in} tokens in, {tokens_out} out{finish}"]


def _denied(data: Mapping[str, Any]) -> list[str]:
    name = data.get("tool_name") or data.get("name") or "tool"
    why = data.get("decision_reason") or data.get("message") or data.get("reason") or ""
    return [f"✗ denied {name}" + (f": {why}" if why else "")]


def _result(data: Mapping[str, Any]) -> list[str]:
    outcome = "error" if data.get("is_error") else str(data.get("subtype") or "done")
    lines = [f"result: {outcome}, {data.get('num_turns', '?')} turn(s), stop: {data.get('stop_reason') or '-'}"]
    for denial in data.get("permission_denials") or []:
        if isinstance(denial, dict):
            target = tool_target({"input": denial.get("tool_input")})
            lines.append(f"✗ denied {denial.get('tool_name', 'tool')}" + (f" {target}" if target else ""))
    if data.get("api_error"):
        lines.append(f"api error {data.get('api_error_status') or ''}: {data['api_error']}")
    if data.get("result"):
        lines.extend(_excerpt(data["result"]))
    return lines


def _files_changed(data: Mapping[str, Any]) -> list[str]:
    parts = [f"{how} {', '.join(paths)}" for how, paths in data.items() if paths]
    return ["files: " + ("; ".join(parts) if parts else "none changed")]


def _failure(data: Mapping[str, Any]) -> list[str]:
    return [f"failure {data.get('kind', '')}: {data.get('reason', '')}"]


def _init(data: Mapping[str, Any]) -> list[str]:
    tools = data.get("tools")
    listed = f", tools: {', '.join(map(str, tools))}" if isinstance(tools, list) else ""
    return [f"session: model {data.get('model', '?')}, permissions {data.get('permissionMode', '?')}{listed}"]


def _retry(data: Mapping[str, Any]) -> list[str]:
    return [f"API retry {data.get('attempt', '?')}/{data.get('max_retries', '?')}: {data.get('error', '')}"]


def _cost(data: Mapping[str, Any]) -> list[str]:
    return [f"cost: ${data.get('total_cost_usd')}"]


def _text(label: str) -> Callable[[Mapping[str, Any]], list[str]]:
    return lambda data: [f"{label}:", *_excerpt(data.get("text", ""))]


_RENDERERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "prompt": _prompt,
    "assistant_message": _assistant,
    "tool_call": _tool_call,
    "tool_result": _tool_result,
    "permission_denied": _denied,
    "usage": _usage,
    "result": _result,
    "files_changed": _files_changed,
    "failure": _failure,
    "init": _init,
    "api_retry": _retry,
    "cost": _cost,
    "stderr": _text("stderr"),
    "replay": lambda data: [f"replaying {data.get('recording', '')}"],
    "packet": lambda data: [f"packet written to {data.get('path', '')}"],
}


def _ledger_event(kind: str, data: Mapping[str, Any]) -> list[str]:
    """A stage's own event: its name and its short fields (hashes shortened, maps as counts)."""
    parts: list[str] = []
    for key, value in sorted(data.items()):
        if value is None or value == {} or value == []:
            continue
        if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            value = value[:12]
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" if not isinstance(v, str) or len(v) < 64 else str(k) for k, v in value.items())
        parts.append(f"{key}: {value}")
    return [kind + (" · " + " · ".join(parts) if parts else "")]
