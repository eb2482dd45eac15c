"""propose-skill, build-skill, verify-skill, promote-skill, list-skills, show, revoke and reject."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import console, emit_json, escape, gate_table, styled
from kavi.cli.running import load_json_argument
from kavi.cli.worker_commands import QueueOption, enqueue_command
from kavi.errors import UsageError


def parse_json(text: str, option: str) -> Any:
    return load_json_argument(text, option)


@app.command("propose-skill")
def propose_skill_command(
    name: Annotated[str, typer.Option(help="snake_case skill name; also the module name in skills/.")],
    desc: Annotated[str, typer.Option("--desc", help="What the skill does, for the builder.")],
    side_effect: Annotated[str, typer.Option(help="READ_ONLY, FILE_WRITE, NETWORK, SUBPROCESS or SECRET_READ.")],
    io_schema_json: Annotated[str, typer.Option(help='{"input": {...}, "output": {...}}: short form or JSON Schema.')],
    examples_json: Annotated[
        str, typer.Option(help='[{"input": {...}, "output": {...}} or {..., "error": "ValueError"}]')
    ] = "[]",
    hidden_examples_json: Annotated[
        str,
        typer.Option(
            help="Examples like --examples-json, frozen now but never shown to a builder; the examples gate runs"
            " them too. `show` prints only their count until the skill is promoted."
        ),
    ] = "[]",
    write_root: Annotated[list[str], typer.Option(help="FILE_WRITE: a folder the skill may write under.")] = [],  # noqa: B006
    allow_host: Annotated[list[str], typer.Option(help="NETWORK: a host the skill may connect to.")] = [],  # noqa: B006
    secret: Annotated[list[str], typer.Option(help="SECRET_READ: an environment variable the skill may read.")] = [],  # noqa: B006
    allow_exec: Annotated[
        list[str],
        typer.Option(help="SUBPROCESS: a program the skill may run (frozen as its absolute path and hash)."),
    ] = [],  # noqa: B006
    read_root: Annotated[
        list[str],
        typer.Option(help="A workspace folder the skill may read (default: none beyond the runtime and the skill)."),
    ] = [],  # noqa: B006
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Propose a skill: validate its contract and freeze it as a content-addressed spec.

    Example: kavi propose-skill --name word_count --desc "Count words" --side-effect READ_ONLY
    --io-schema-json '{"input": {"text": "str"}, "output": {"count": "int"}}'
    """
    from kavi.stages.common import Forge
    from kavi.stages.propose import propose_skill

    io_schema = parse_json(io_schema_json, "--io-schema-json")
    examples = parse_json(examples_json, "--examples-json")
    hidden_examples = parse_json(hidden_examples_json, "--hidden-examples-json")
    with Forge.opened(workspace) as forge:
        proposed = propose_skill(
            forge,
            name=name,
            description=desc,
            side_effect=side_effect.upper(),
            io_schema=io_schema,
            examples=examples,
            hidden_examples=hidden_examples,
            write_roots=tuple(write_root),
            allow_hosts=tuple(allow_host),
            secrets=tuple(secret),
            executables=tuple(allow_exec),
            read_roots=tuple(read_root),
        )
    if json_output:
        emit_json({"ok": True, **proposed.__dict__})
        return
    console().print(
        f"Proposed [bold]{proposed.name}[/bold]: {proposed.proposal_id} (spec {proposed.spec_sha256[:12]}). "
        f"Next: `kavi build-skill {proposed.proposal_id}`"
    )


@app.command("build-skill")
def build_skill_command(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id (or a unique prefix, or the skill name).")],
    builder: Annotated[
        str | None, typer.Option(help="manual, replay, ... (default: kavi.toml's [build] builder).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Finish a manual build that is waiting for input.")] = False,
    from_dir: Annotated[Path | None, typer.Option("--from", help="With --resume: a folder holding the files.")] = None,
    replay_from: Annotated[Path | None, typer.Option(help="For --builder replay: the recording folder.")] = None,
    keep_sandbox: Annotated[bool, typer.Option(help="Keep the build sandbox for inspection.")] = False,
    queue: QueueOption = False,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Build a candidate in a sandbox; only skills/NAME.py and skills/test_NAME.py may come out (for a kernel,
    kernels/NAME.py and kernels/test_NAME.py), where NAME is the proposal's name."""
    from kavi.stages.build import build_skill, resume_build
    from kavi.stages.common import Forge

    if from_dir is not None and not resume:
        raise UsageError("--from only goes with --resume")
    if queue:
        if resume or keep_sandbox:
            raise UsageError("--queue builds on a worker: --resume and --keep-sandbox need this machine")
        queued: dict[str, Any] = {"builder": builder or ("replay" if replay_from else None)}
        if replay_from:  # a path the worker reads: the same recording must be there (kavi's demo recordings are)
            queued["source"] = str(replay_from.resolve())
        enqueue_command(workspace, "build", proposal_id, queued, json_output)
        return
    with Forge.opened(workspace) as forge:
        if resume:
            built = resume_build(forge, proposal_id, source=from_dir)
        else:
            options = {"source": str(replay_from.resolve())} if replay_from else None
            built = build_skill(
                forge,
                proposal_id,
                builder_name=builder or ("replay" if replay_from else None),
                builder_options=options,
                keep_sandbox=keep_sandbox,
            )
    if json_output:
        emit_json({"ok": built.status != "FAILED", **built.__dict__})
    else:
        _print_build(built)
    if built.status == "FAILED":
        raise typer.Exit(1)


def _print_build(built: Any) -> None:
    out = console()
    out.print(f"Build {built.build_id} (attempt {built.attempt}, {built.builder}): {styled(built.status)}")
    if built.status == "AWAITING_INPUT":
        out.print(
            f"  packet: {built.packet}\n  write the files in {built.sandbox}, then run "
            f"`kavi build-skill {built.proposal_id} --resume` (or --resume --from DIR)"
        )
    elif built.reason and built.status != "SUCCEEDED":
        out.print(f"  reason: {built.reason}")
    for path, digest in built.files.items():
        out.print(f"  {path}  {digest[:12]}")
    if built.status == "SUCCEEDED":
        out.print(f"Next: `kavi verify-skill {built.proposal_id}`")


@app.command("verify-skill")
def verify_skill_command(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id (or a unique prefix, or the skill name).")],
    queue: QueueOption = False,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run every gate (ruff, mypy, policy, invariants, pytest, examples) on the exact candidate bytes."""
    from kavi.cli.progress import gate_progress
    from kavi.stages.common import Forge
    from kavi.stages.verify import verify_skill

    if queue:
        enqueue_command(workspace, "verify", proposal_id, {}, json_output)
        return

    with (
        Forge.opened(workspace) as forge,
        gate_progress(f"verifying {proposal_id}", json_output=json_output) as progress,
    ):
        verified = verify_skill(forge, proposal_id, progress=progress)
    if json_output:
        emit_json({"ok": verified.passed, **verified.__dict__})
    else:
        out = console()
        out.print(
            f"Verification {verified.verification_id} of {verified.name}: {styled(verified.status)} "
            f"in {verified.duration_s:.2f} s, isolation {verified.isolation}"
        )
        out.print(gate_table(verified.gates))
        for gate in verified.gates:
            if gate["status"] != "pass" and gate["report"]:
                out.print(f"\n[bold]{escape(gate['gate'])}[/bold] report:")
                out.print(gate["report"][-2000:], markup=False)
        if verified.passed:
            out.print(f"Next: `kavi promote-skill {verified.proposal_id}`")
    if not verified.passed:
        raise typer.Exit(1)


@app.command("promote-skill")
def promote_skill_command(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id (or a unique prefix, or the skill name).")],
    approver: Annotated[
        str | None, typer.Option(help="Who approves (default: git user.name, else the OS user).")
    ] = None,
    allow_unmeasured: Annotated[
        bool, typer.Option(help="Kernels: accept a speedup that could not be measured (no GPU).")
    ] = False,
    reinstate: Annotated[
        bool, typer.Option(help="Re-trust bytes that were revoked without verifying them again (recorded).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why you approve it, recorded in the ledger.")] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make the verified candidate a TRUSTED version and install it into skills/ (or kernels/)."""
    from kavi.stages.common import Forge
    from kavi.stages.promote import promote_skill

    with Forge.opened(workspace) as forge:
        promoted = promote_skill(
            forge,
            proposal_id,
            approver=approver,
            allow_unmeasured=allow_unmeasured,
            reinstate=reinstate,
            reason=reason,
        )
    if json_output:
        emit_json({"ok": True, **promoted.__dict__})
        return
    note = ""
    if promoted.completed_earlier_promotion:
        note = " (completed an earlier interrupted promotion)"
    elif promoted.already_trusted:
        note = " (it already was: nothing changed)"
    elif promoted.reinstated:
        note = f" (reinstates revoked {', '.join(promoted.reinstated)})"
    console().print(
        f"{promoted.name} v{promoted.version} is {styled('TRUSTED')}, approved by {promoted.approver}, "
        f"sha256 {promoted.skill_sha256[:12]}{note}."
    )


@app.command("list-skills")
def list_skills_command(
    all_versions: Annotated[bool, typer.Option("--all", help="Include revoked versions.")] = False,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """List TRUSTED skill versions (from kavi.lock in a clone whose ledger does not exist yet)."""
    from kavi.stages.queries import list_skills_here
    from kavi.workspace import find_workspace

    listing = list_skills_here(find_workspace(workspace), include_revoked=all_versions)
    skills = listing["skills"]
    if json_output:
        emit_json({"ok": True, **listing})
        return
    if listing["note"]:
        console().print(listing["note"], markup=False)
    from rich.table import Column, Table

    table = Table(
        Column("name", no_wrap=True),
        "version",
        Column("status", no_wrap=True),
        Column("side effect", no_wrap=True),  # a chain's is the union of its members' classes
        "approver",
        "sha256",
        "verified under",
        box=None,
    )
    for skill in skills:
        table.add_row(
            skill["name"],
            f"v{skill['version']}",
            ("[red]suspended[/red]" if skill.get("suspended") else styled(skill["status"]))
            + (" [yellow](speed unmeasured)[/yellow]" if skill["unmeasured"] else "")
            + (
                " [yellow](correct on CPU interpreter only)[/yellow]"
                if skill.get("correctness_device") == "interpreter"
                else ""
            ),
            skill["side_effect"],
            skill["approver"],
            skill["skill_sha256"][:12],
            skill["verification_isolation"],
        )
    console().print(table if skills else "no TRUSTED skills yet")
    for skill in skills:
        if skill.get("suspended"):
            console().print(
                f"{skill['name']} v{skill['version']} is suspended: {skill['suspended']}; `kavi run-chain` refuses it",
                markup=False,
            )


@app.command()
def show(
    reference: Annotated[str, typer.Argument(help="A skill name, a proposal id or a unique id prefix.")],
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Everything the ledger knows about one proposal: spec, builds, verifications, versions, executions."""
    from kavi.server.tools import tool_hashes
    from kavi.stages.common import Forge
    from kavi.stages.queries import show_here
    from kavi.workspace import find_workspace

    here = find_workspace(workspace)
    detail = show_here(here, reference)
    detail["tools"] = {}
    if detail.get("source") == "ledger":  # a tool hash is derived from a recorded promotion
        forge = Forge.open_existing(here)
        try:
            detail["tools"] = tool_hashes(forge, [version["id"] for version in detail["versions"]])
        finally:
            forge.close()
    if json_output:
        emit_json({"ok": True, **detail})
        return
    out = console()
    if detail["note"]:
        out.print(detail["note"], markup=False)
    proposal = detail["proposal"]
    out.print(
        f"[bold]{proposal['name']}[/bold] {proposal['id']} {styled(proposal['status'])} "
        f"· {proposal['side_effect']} · spec {proposal['spec_sha256'][:12]}"
    )
    for build in detail["builds"]:
        reason = build["reason"] if build["status"] != "SUCCEEDED" else None  # older ledgers kept a stale one
        out.print(
            f"  build {build['id']} attempt {build['attempt']} {build['builder']} {styled(build['status'])}"
            + (f" — {reason}" if reason else "")
        )
    for verification in detail["verifications"]:
        out.print(
            f"  verification {verification['id']} {styled(verification['status'])} "
            f"isolation {verification['isolation']}"
        )
    for version in detail["versions"]:
        out.print(
            f"  v{version['version']} {styled(version['status'])} · approved by {version['approver']} "
            f"at {version['promoted_at']} sha256 {version['skill_sha256'][:12]}"
            + (" (speed unmeasured: promoted without a GPU)" if version["unmeasured"] else "")
            + (
                " (correctness checked only through Triton's CPU interpreter: re-checked on its first GPU run)"
                if version.get("correctness_device") == "interpreter"
                else ""
            )
            + (f" tool {detail['tools'][version['id']][:12]}" if version["id"] in detail["tools"] else "")
        )
        if version.get("members"):
            out.print(f"      chain of {', '.join(version['members'])}", markup=False)
        if version.get("suspended"):
            out.print(f"      suspended: {version['suspended']}; `kavi run-chain` refuses it", markup=False)
        if version.get("revoked_at"):
            why = f": {version['revoked_reason']}" if version.get("revoked_reason") else " (no reason given)"
            out.print(f"      revoked by {version['revoked_by']} at {version['revoked_at']}{why}", markup=False)
    hidden = detail.get("hidden_examples") or {"count": 0}
    if hidden["count"]:
        shown = f": {json.dumps(hidden['examples'])}" if "examples" in hidden else " (shown after promotion)"
        out.print(f"  hidden examples: {hidden['count']}{shown}")
    out.print(f"  executions: {executions_line(detail['executions'])}")


def executions_line(executions: dict[str, Any]) -> str:
    """``7 (6 under full isolation, 1 under fallback)``: the count, then how isolated those runs were."""
    levels = executions.get("by_isolation") or {}
    split = ", ".join(
        f"{count} under {level}" + (" isolation" if i == 0 else "")
        for i, (level, count) in enumerate(sorted(levels.items()))
    )
    return f"{executions['total']}" + (f" ({split})" if split else "")


@app.command()
def revoke(
    name: Annotated[str, typer.Argument(help="The skill name.")],
    version: Annotated[int | None, typer.Option(help="The version to revoke (default: the latest TRUSTED).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the ledger (`kavi show` prints it).")] = None,
    by: Annotated[str | None, typer.Option(help="Who revokes (default: git user.name, else the OS user).")] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make a TRUSTED version unrunnable; skills/ then holds the previous TRUSTED version, if any."""
    from kavi.stages.common import Forge
    from kavi.stages.promote import revoke_skill

    with Forge.opened(workspace) as forge:
        revoked = revoke_skill(forge, name, version=version, by=by, reason=reason)
    if json_output:
        emit_json({"ok": True, **revoked.__dict__})
        return
    now = f"v{revoked.installed_version} is installed" if revoked.installed_version else "no version is installed"
    console().print(
        f"{revoked.name} v{revoked.version} is {styled('REVOKED')} by {revoked.revoked_by}; {now}.", highlight=False
    )


@app.command()
def reject(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id (or a unique prefix, or the skill name).")],
    reason: Annotated[str | None, typer.Option(help="Why, for the ledger.")] = None,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """End a proposal: it can no longer be built, verified or promoted."""
    from kavi.stages.common import Forge
    from kavi.stages.promote import reject_proposal

    with Forge.opened(workspace) as forge:
        rejected = reject_proposal(forge, proposal_id, reason=reason)
    if json_output:
        emit_json({"ok": True, **rejected.__dict__})
        return
    console().print(f"{rejected.name} ({rejected.proposal_id}) is {styled(rejected.status)}.")
