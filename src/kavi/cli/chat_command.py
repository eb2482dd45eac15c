"""chat: a terminal conversation with a model whose tools are the TRUSTED skills."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from kavi.cli.app import WorkspaceOption, app

if TYPE_CHECKING:
    from kavi.chat import ToolCall

PROMPT = "you> "
EXIT_WORDS = {"/exit", "/quit"}


@app.command("chat")
def chat_command(
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            help="Run calls that change something (any class but READ_ONLY) without asking; the ledger records"
            " that --yes let each one through.",
        ),
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Talk with an OpenAI-compatible model whose tools are this workspace's TRUSTED skills.

    The model is the openai builder's ([build.options.openai] in kavi.toml, KAVI_OPENAI_* overrides). Every
    tool call is a governed run recorded under the chat's execution (`kavi show-execution ID` prints it); a
    call that is not READ_ONLY asks you first. End with /exit or Ctrl-D.
    """
    from kavi.chat import ChatSession
    from kavi.stages.common import Forge

    with Forge.opened(workspace) as forge:
        session = ChatSession.start(forge, confirm=_ask_person, notify=_notify, assume_yes=yes)
        status = "OK"
        try:
            tools = ", ".join(session.tools) or "none (promote a skill first)"
            print(f"chat {session.node_id} with {session.builder.options.model}; tools: {tools}. /exit ends it.")
            while (line := _read_line(PROMPT)) is not None and line.strip() not in EXIT_WORDS:
                if line.strip():
                    print(f"model> {session.say(line)}", flush=True)
        except KeyboardInterrupt:
            status = "INTERRUPTED"
            raise
        except Exception:  # the model's server went away, a bug: the chat's node says it did not end well
            status = "FAILED"
            raise
        finally:
            session.close(status)
    print(f"The whole conversation: `kavi show-execution {session.node_id}`")


def _read_line(prompt: str) -> str | None:
    """One line from the person, or None at the end of input."""
    try:
        return input(prompt)
    except EOFError:
        return None


def _notify(text: str) -> None:
    print(f"  [{text}]", flush=True)


def _ask_person(call: ToolCall) -> bool:
    print(f"  {call.name} v{call.version} is {call.side_effect}: it may {call.grants}.")
    print(f"  input: {json.dumps(call.arguments, sort_keys=True)[:400]}")
    answer = _read_line(f"  run {call.name}? [y/N] ")
    sys.stdout.flush()
    return (answer or "").strip().lower() in ("y", "yes")
