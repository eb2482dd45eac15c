"""propose-chain, verify-chain, promote-chain and run-chain: TRUSTED skills composed into a DAG."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import console, emit_json, escape, gate_table, styled
from kavi.cli.running import load_json_argument
from kavi.errors import UsageError

STEPS_HELP = (
    '{"steps": [{"id": "count", "skill": "word_count", "version": 1, "inputs": {"text": "input.text"}}, ...],'
    ' "output": {"words": "count.count"}}. Each input maps a member\'s input field to "input.FIELD" (the chain\'s'
    ' input) or "STEP.FIELD" (an earlier step\'s output); "version" defaults to the latest TRUSTED one and is'
    ' pinned with its hashes; "output" defaults to every field of the one step nothing reads.'
)


@app.command("propose-chain")
def propose_chain_command(
    name: Annotated[str, typer.Option(help="snake_case chain name (shares the namespace of skills).")],
    steps_json: Annotated[str, typer.Option(help=STEPS_HELP)],
    examples_json: Annotated[
        str, typer.Option(help='End-to-end examples, at least one: [{"input": {...}, "output": {...}}].')
    ],
    desc: Annotated[str | None, typer.Option("--desc", help="What the chain does (default: its steps).")] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Propose a chain of TRUSTED skills: every edge is checked against the members' frozen schemas, the
    chain's input and output schemas are derived, its side-effect classes are the union of its members'.

    Example: kavi propose-chain --name count_then_halve --examples-json '[{"input": {"text": "a b"},
    "output": {"half": 1}}]' --steps-json '[{"id": "count", "skill": "word_count", "inputs": {"text":
    "input.text"}}, {"id": "half", "skill": "halve", "inputs": {"n": "count.count"}}]'
    """
    from kavi.stages.chain import propose_chain
    from kavi.stages.common import Forge

    steps = load_json_argument(steps_json, "--steps-json")
    examples = load_json_argument(examples_json, "--examples-json")
    description = desc or _describe(steps)
    with Forge.opened(workspace) as forge:
        proposed = propose_chain(forge, name=name, description=description, steps=steps, examples=examples)
    if json_output:
        emit_json({"ok": True, **proposed.__dict__})
        return
    out = console()
    out.print(
        f"Proposed chain [bold]{escape(proposed.name)}[/bold]: {proposed.proposal_id} "
        f"(spec {proposed.spec_sha256[:12]}), side effects {'+'.join(proposed.side_effects)}"
    )
    for step in proposed.steps:
        out.print(
            f"  {step['id']}: {step['skill']} v{step['version']} {step['side_effect']} {step['skill_sha256'][:12]}"
        )
    out.print(f"Next: `kavi verify-chain {proposed.name}`")


def _describe(steps: object) -> str:
    listed = steps.get("steps") if isinstance(steps, dict) else steps
    if not isinstance(listed, list) or not listed:
        raise UsageError("--steps-json must list at least one step")
    names = [str(step.get("skill", "?")) if isinstance(step, dict) else "?" for step in listed]
    return "A chain of " + " -> ".join(names)


@app.command("verify-chain")
def verify_chain_command(
    reference: Annotated[str, typer.Argument(help="The chain's name or proposal id.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run the composition gate: each member TRUSTED at its pinned hash, and every end-to-end example through
    the steps, each isolated with its own side-effect class; a failing or blocked step is named."""
    from kavi.stages.chain import verify_chain
    from kavi.stages.common import Forge

    with Forge.opened(workspace) as forge:
        verified = verify_chain(forge, reference)
    if json_output:
        emit_json({"ok": verified.passed, **verified.__dict__})
    else:
        out = console()
        out.print(f"Verification {verified.verification_id} of chain {verified.name}: {styled(verified.status)}")
        out.print(gate_table(verified.gates))
        for gate in verified.gates:
            if gate["status"] != "pass" and gate["report"]:
                out.print(gate["report"][-2000:], markup=False)
        if verified.passed:
            out.print(f"Next: `kavi promote-chain {verified.name}`")
    if not verified.passed:
        raise typer.Exit(1)


@app.command("promote-chain")
def promote_chain_command(
    reference: Annotated[str, typer.Argument(help="The chain's name or proposal id.")],
    approver: Annotated[
        str | None, typer.Option(help="Who approves (default: git user.name, else the OS user).")
    ] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make the verified chain a TRUSTED version: its hash covers the definition and the members' hashes."""
    from kavi.stages.chain import promote_chain
    from kavi.stages.common import Forge

    with Forge.opened(workspace) as forge:
        promoted = promote_chain(forge, reference, approver=approver)
    if json_output:
        emit_json({"ok": True, **promoted.__dict__})
        return
    console().print(
        f"chain {promoted.name} v{promoted.version} is {styled('TRUSTED')}, approved by {promoted.approver}, "
        f"sha256 {promoted.skill_sha256[:12]}."
    )


@app.command("run-chain")
def run_chain_command(
    name: Annotated[str, typer.Argument(help="The chain to run (its latest TRUSTED version unless --version).")],
    input_json: Annotated[str, typer.Option("--json", help="The chain's input as a JSON object.")] = "{}",
    version: Annotated[int | None, typer.Option(help="Run this TRUSTED version.")] = None,
    require_isolation: Annotated[
        bool | None, typer.Option("--require-isolation/--allow-fallback", help="Refuse to run below full OS isolation.")
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Run a TRUSTED chain: each step a governed run of its pinned member (hash checked before import, its own
    isolated child and class, one execution recorded). Prints one JSON object."""
    from kavi.stages.run_chain import run_chain
    from kavi.workspace import find_workspace

    payload = load_json_argument(input_json, "--json")
    if not isinstance(payload, dict):
        raise UsageError("the input must be a JSON object")
    result = run_chain(find_workspace(workspace), name, payload, version=version, require_isolation=require_isolation)
    summary = {
        "ok": True,
        "execution_id": result.execution_id,
        "name": result.name,
        "version": result.version,
        "output": result.output,
        "duration_s": result.duration_s,
        "isolation": result.isolation,
        "layers": list(result.layers),
        "steps": list(result.steps),
    }
    sys.stdout.write(json.dumps(summary) + "\n")
