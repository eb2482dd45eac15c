"""plan: a goal becomes skills (reused, or proposed and forged) and a chain waiting for a person."""

from __future__ import annotations

from typing import Annotated

import typer

from kavi.cli.app import JsonOption, WorkspaceOption, app
from kavi.cli.output import console, emit_json, escape, styled


@app.command("plan")
def plan_command(
    goal: Annotated[str, typer.Argument(help="What the skills should do together, in words.")],
    builder: Annotated[
        str | None,
        typer.Option(
            help="The builder whose model plans and which forges the missing skills: openai or claude-code "
            "(default: kavi.toml's [build] builder)."
        ),
    ] = None,
    max_depth: Annotated[int, typer.Option(help="Refuse a chain more steps deep than this.", min=1)] = 5,
    max_skills: Annotated[int, typer.Option(help="Refuse a plan of more skills than this.", min=1)] = 5,
    max_cost_usd: Annotated[
        float | None,
        typer.Option(help="Stop forging when the planner's answer and the sub-forges together have cost this much."),
    ] = None,
    max_attempts: Annotated[int, typer.Option(help="Builds per missing skill at most.", min=1)] = 3,
    workspace: WorkspaceOption = None,
    json_output: JsonOption = False,
) -> None:
    """Ask the builder's model to decompose GOAL into skills and a chain, then forge the missing skills.

    The planner is the --builder's model with that builder's kavi.toml options and KAVI_* overrides: an
    OpenAI-compatible server (openai), or the Claude Code CLI run once with no tools (claude-code); manual
    and replay have no model and cannot plan.

    TRUSTED skills that fit are reused; the missing ones are proposed (with all of propose's validation) and
    forged. Nothing is promoted: the plan lists what waits for a person. The plan is frozen in the ledger and
    `kavi show-execution ID` prints it with every sub-forge.
    """
    from kavi.stages.common import Forge
    from kavi.stages.plan import PlanLimits, plan_goal

    with Forge.opened(workspace) as forge:
        planned = plan_goal(
            forge, goal, builder_name=builder, limits=PlanLimits(max_depth, max_skills, max_cost_usd, max_attempts)
        )
    if json_output:
        emit_json({"ok": planned.status == "WAITING_FOR_APPROVAL", **planned.__dict__})
    else:
        out = console()
        cost = f", ${planned.planner_cost_usd:.4f}" if planned.planner_cost_usd else ""
        out.print(
            f"Plan {planned.plan_id}: {styled(planned.status)} "
            f"(planned by {planned.planner}{cost}, frozen as {planned.plan_sha256[:12]})"
        )
        for skill in planned.skills:
            out.print(f"  {styled(skill.action)}  {escape(skill.name)}  {escape(skill.detail)}")
        for item in planned.waiting:
            out.print(f"  waiting: {escape(item)}")
        out.print(f"The whole plan: `kavi show-execution {planned.plan_id}`")
    if planned.status != "WAITING_FOR_APPROVAL":
        raise typer.Exit(1)
