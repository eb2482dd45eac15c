"""plan: a goal becomes a graph of skill specs; the missing skills are proposed and forged, none promoted.

The planner is the chosen builder's model (``--builder``, else kavi.toml's ``[build] builder``), asked through
that builder's own configuration: ``PLANNERS`` says which builders can plan (an OpenAI-compatible server, or
the Claude Code CLI with no tools). It answers one JSON object: the skills the goal needs
(each a spec as `propose-skill` takes it) and the chain that joins them (steps, each a skill and where each
of its input fields comes from). The answer is frozen as an artifact before anything else happens, and the
plan is one node of the execution tree whose children are the sub-forges. For each skill: a TRUSTED skill of
the same name whose frozen input and output schemas are the ones asked for is reused; a missing one goes
through `propose` with all its validation, then through the forge loop (its budgets and escalation); a name
taken by a skill with another schema is left to a person. Nothing is promoted: the plan says what waits for
a person (each `promote-skill`, then the chain, recorded as a definition waiting for approval).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select

from kavi.builders.base import Planner
from kavi.builders.claude_code import ClaudeCodeBuilder
from kavi.builders.openai_compat import OpenAIBuilder
from kavi.errors import BuildError, BuilderUnavailableError, KaviError, PlanRefused, UsageError
from kavi.ledger.models import Promotion, VersionStatus
from kavi.spec import make_spec
from kavi.stages.common import Forge
from kavi.stages.executions import execution
from kavi.stages.forge import Budget, forge_skill
from kavi.stages.propose import propose_skill

PLAN_ARTIFACT = "PLAN"
PLANNER_PROMPT = """\
You are kavi's planner. Decompose the goal into small skills, each one Python function with a typed input
and output, and a chain that joins them. Answer with exactly one JSON object and nothing else:
{"skills": [{"name": "snake_case", "description": "...", "side_effect": "READ_ONLY",
             "io_schema": {"input": {"field": "str"}, "output": {"field": "int"}},
             "examples": [{"input": {...}, "output": {...}}]}],
 "chain": {"name": "snake_case", "steps": [{"id": "s1", "skill": "snake_case", "inputs": {"field": "$input.field"}}],
           "examples": [{"input": {...}, "output": {...}}]}}
A step input is "$input.NAME" (the chain's input) or "$STEP_ID.FIELD" (an earlier step's output). Reuse the
workspace's TRUSTED skills (listed below) by name when one fits exactly; give every new skill at least one
example. Prefer READ_ONLY skills.
"""
# The builders that can plan, by name: each is built from its own kavi.toml options and KAVI_* overrides and
# answers the planner's one question with ``ask``. A builder with no model (manual, replay) is not here.
PLANNERS: dict[str, Callable[[Mapping[str, Any] | None], Planner]] = {
    OpenAIBuilder.name: OpenAIBuilder.from_config,
    ClaudeCodeBuilder.name: ClaudeCodeBuilder.from_config,
}
SPEC_KEYS = ("name", "description", "side_effect", "io_schema", "examples", "write_roots", "allow_hosts", "secrets")
REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class PlanLimits:
    max_depth: int = 5  # steps on the longest path of the chain
    max_skills: int = 5
    max_cost_usd: float | None = None  # over every sub-forge together
    max_attempts: int = 3  # per sub-forge


@dataclass
class PlannedSkill:
    name: str
    action: str  # REUSED, VERIFIED, ESCALATED, INVALID, CONFLICT, SKIPPED
    detail: str
    proposal_id: str | None = None
    version: int | None = None
    forge_execution_id: str | None = None
    cost_usd: float = 0.0


@dataclass
class Planned:
    plan_id: str
    goal: str
    status: str  # WAITING_FOR_APPROVAL or ESCALATED
    plan_sha256: str
    skills: list[PlannedSkill] = field(default_factory=list)
    chain: dict[str, Any] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    planner: str = ""  # the builder whose model planned
    planner_cost_usd: float = 0.0  # what the planner's answer cost, when its builder reports it


def plan_goal(
    forge: Forge,
    goal: str,
    *,
    builder_name: str | None = None,
    limits: PlanLimits = PlanLimits(),
) -> Planned:
    if not goal.strip():
        raise UsageError("the goal is empty: say what the skills should do together")
    planner_name, planner = _planner(forge, builder_name)
    request = {
        "goal": goal,
        "builder": builder_name,
        "planner": planner_name,
        "model": getattr(planner.options, "model", None),
        "limits": limits.__dict__,
    }
    with execution(forge, "plan", goal[:80], input_data=request) as node:
        answer, cost = _ask_planner(planner, goal, _trusted_catalogue(forge))
        with forge.ledger.transaction() as session:
            plan_sha = forge.put_artifact(
                session, json.dumps({"goal": goal, "answer": answer}, sort_keys=True).encode(), PLAN_ARTIFACT
            )
        skills, chain = _checked(answer, limits)  # a PlanRefused ends the node FAILED, the answer kept
        result = Planned(node.id, goal, "", plan_sha, chain=chain, planner=planner_name, planner_cost_usd=cost)
        remaining = None if limits.max_cost_usd is None else limits.max_cost_usd - cost
        for spec in skills:
            planned = _realise(forge, spec, builder_name, limits, remaining, node.id)
            result.skills.append(planned)
            if remaining is not None:
                remaining -= planned.cost_usd
        _conclude(result)
        node.status = result.status
        node.output = {
            "plan_sha256": plan_sha,
            "planner": planner_name,
            "planner_cost_usd": cost,
            "skills": [planned.__dict__ for planned in result.skills],
            "chain": result.chain,
            "waiting": result.waiting,
        }
    return result


def _planner(forge: Forge, builder_name: str | None) -> tuple[str, Planner]:
    """The chosen builder as a planner, from its kavi.toml options; refused when it has no model to ask."""
    name = builder_name or forge.workspace.config.build.builder
    factory = PLANNERS.get(name)
    if factory is None:
        able = " or ".join(f"--builder {known}" for known in PLANNERS)
        raise UsageError(
            f"the {name} builder cannot plan: a plan is a model's answer, and only "
            f"{' and '.join(PLANNERS)} ask a model",
            hint=f"plan with {able}, or set `builder` in kavi.toml's [build] to one of them",
        )
    planner = factory(forge.workspace.config.build.options.get(name))
    ok, why = planner.available()
    if not ok:
        raise BuilderUnavailableError(f"the planner model ({name}) is not available: {why}")
    return name, planner


def _trusted_catalogue(forge: Forge) -> list[dict[str, Any]]:
    with forge.ledger.reading() as session:
        promotions = session.exec(
            select(Promotion)
            .where(Promotion.status == VersionStatus.TRUSTED)
            .order_by(col(Promotion.name), col(Promotion.version).desc())
        ).all()
    catalogue: dict[str, dict[str, Any]] = {}
    for promotion in promotions:
        if promotion.name not in catalogue:
            spec = json.loads(forge.store.get(promotion.spec_sha256))
            catalogue[promotion.name] = {
                "name": promotion.name,
                "version": promotion.version,
                "description": spec.get("description"),
                "side_effect": promotion.side_effect,
                "input_schema": spec.get("input_schema"),
                "output_schema": spec.get("output_schema"),
            }
    return list(catalogue.values())


def _ask_planner(planner: Planner, goal: str, catalogue: list[dict[str, Any]]) -> tuple[Any, float]:
    """The planner's answer as JSON, and what it cost; an answer that is not one JSON object is refused."""
    from kavi.research import parse_advice_answer

    question = f"Goal: {goal}\n\nTRUSTED skills:\n{json.dumps(catalogue, indent=1)}"
    try:
        answer = planner.ask(PLANNER_PROMPT, question)
    except BuildError as error:  # BuilderUnavailableError included: the same class, said as the planner's
        raise type(error)(f"the planner model ({planner.name}) failed: {error.message}", hint=error.hint) from None
    text = answer.text
    try:
        return parse_advice_answer(text), answer.cost_usd or 0.0
    except ValueError:
        raise PlanRefused(f"the planner did not answer one JSON object: {text[:300]!r}") from None


def _checked(answer: Any, limits: PlanLimits) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The skills and the chain, if the answer's shape and size are within the limits."""
    if not isinstance(answer, dict) or not isinstance(answer.get("skills"), list) or not answer["skills"]:
        raise PlanRefused("the planner's answer has no list of skills")
    skills = [spec for spec in answer["skills"] if isinstance(spec, dict) and isinstance(spec.get("name"), str)]
    if len(skills) != len(answer["skills"]):
        raise PlanRefused("every planned skill must be an object with a name")
    if len(skills) > limits.max_skills:
        raise PlanRefused(
            f"the plan needs {len(skills)} skills, more than --max-skills {limits.max_skills}",
            hint="raise --max-skills, or give a narrower goal",
        )
    given = answer.get("chain")
    chain: dict[str, Any] = given if isinstance(given, dict) else {"steps": []}
    depth = _chain_depth(chain, {spec["name"] for spec in skills})
    if depth > limits.max_depth:
        raise PlanRefused(
            f"the plan's chain is {depth} steps deep, more than --max-depth {limits.max_depth}",
            hint="raise --max-depth, or give a narrower goal",
        )
    return skills, chain


def _chain_depth(chain: dict[str, Any], skills: set[str]) -> int:
    """The longest path through the steps; every step names a planned skill and earlier steps only."""
    steps = chain.get("steps")
    if not isinstance(steps, list):
        raise PlanRefused("the chain's steps must be a list")
    depth: dict[str, int] = {}
    for step in steps:
        if not isinstance(step, dict) or step.get("skill") not in skills or not isinstance(step.get("id"), str):
            raise PlanRefused(f"a chain step must have an id and name a planned skill: {json.dumps(step)[:200]}")
        sources = []
        for target, source in (step.get("inputs") or {}).items():
            match = REFERENCE.match(str(source))
            if match is None or (match.group(1) != "input" and match.group(1) not in depth):
                raise PlanRefused(f"step {step['id']}: {target} comes from {source!r}, not an earlier step or $input")
            sources.append(depth.get(match.group(1), 0))
        depth[step["id"]] = 1 + max(sources, default=0)
    return max(depth.values(), default=0)


def _realise(
    forge: Forge,
    spec: dict[str, Any],
    builder_name: str | None,
    limits: PlanLimits,
    remaining: float | None,
    plan_id: str,
) -> PlannedSkill:
    """Reuse, or propose and forge, one planned skill."""
    name = spec["name"]
    arguments = {key: spec[key] for key in SPEC_KEYS if key in spec}
    for key in ("write_roots", "allow_hosts", "secrets"):
        if key in arguments:
            arguments[key] = tuple(arguments[key])
    missing = [key for key in ("description", "side_effect", "io_schema") if key not in arguments]
    if missing:
        return PlannedSkill(name, "INVALID", f"the planner gave no {', '.join(missing)}")
    try:
        wanted = make_spec(**arguments)
    except KaviError as error:
        return PlannedSkill(name, "INVALID", error.message)
    except (TypeError, ValueError) as error:
        return PlannedSkill(name, "INVALID", f"not a spec: {error}")
    trusted = _trusted_spec(forge, name)
    if trusted is not None:
        version, frozen = trusted
        same = (frozen.get("input_schema"), frozen.get("output_schema")) == (wanted.input_schema, wanted.output_schema)
        if same:
            return PlannedSkill(name, "REUSED", f"TRUSTED v{version} fits", version=version)
        return PlannedSkill(name, "CONFLICT", f"TRUSTED v{version} has other schemas: a person decides")
    if remaining is not None and remaining <= 0:
        return PlannedSkill(name, "SKIPPED", f"the plan's cost budget of ${limits.max_cost_usd:g} is spent")
    try:
        proposed = propose_skill(forge, **arguments)
    except KaviError as error:
        return PlannedSkill(name, "INVALID", f"propose refused it: {error}")
    forged = forge_skill(
        forge,
        proposed.proposal_id,
        builder_name=builder_name,
        budget=Budget(limits.max_attempts, remaining, None),
        parent=plan_id,
    )
    action = "VERIFIED" if forged.status == "VERIFIED" else "ESCALATED"
    return PlannedSkill(
        name, action, forged.reason, proposed.proposal_id, None, forged.execution_id, forged.cost_usd or 0.0
    )


def _trusted_spec(forge: Forge, name: str) -> tuple[int, dict[str, Any]] | None:
    with forge.ledger.reading() as session:
        promotion = session.exec(
            select(Promotion)
            .where(Promotion.name == name, Promotion.status == VersionStatus.TRUSTED)
            .order_by(col(Promotion.version).desc())
        ).first()
    if promotion is None:
        return None
    return promotion.version, json.loads(forge.store.get(promotion.spec_sha256))


def _conclude(result: Planned) -> None:
    """What waits for a person, and whether the chain can be proposed once they have approved it."""
    ready = all(planned.action in ("REUSED", "VERIFIED") for planned in result.skills)
    result.status = "WAITING_FOR_APPROVAL" if ready else "ESCALATED"
    result.waiting = [
        f"kavi promote-skill {planned.proposal_id}  ({planned.name}: {planned.detail})"
        for planned in result.skills
        if planned.action == "VERIFIED"
    ]
    result.waiting += [
        f"{planned.name}: {planned.action} — {planned.detail}"
        for planned in result.skills
        if planned.action not in ("REUSED", "VERIFIED")
    ]
    blocked = [planned.name for planned in result.skills if planned.action not in ("REUSED", "VERIFIED")]
    result.chain = {
        **result.chain,
        "status": "WAITING_FOR_APPROVAL" if ready else "BLOCKED",
        "blocked_by": blocked,
    }
    if result.chain.get("steps"):
        command = propose_chain_command(result.chain, result.goal)
        result.chain["propose"] = command
        result.waiting.append(
            f"the chain: once its members are TRUSTED, `{command}`"
            if ready
            else f"the chain: blocked until {', '.join(blocked)} can be forged"
        )


def propose_chain_command(chain: dict[str, Any], goal: str) -> str:
    """The `kavi propose-chain` that joins the planned skills, in propose-chain's own syntax (``STEP.FIELD``,
    ``input.FIELD``): a person runs it after promoting the members, since a chain pins TRUSTED versions only,
    and propose-chain checks every edge against the members' frozen schemas then."""
    import shlex

    steps = [
        {
            "id": step["id"],
            "skill": step["skill"],
            "inputs": {field: str(source).removeprefix("$") for field, source in dict(step.get("inputs", {})).items()},
        }
        for step in chain.get("steps", [])
    ]
    name = str(chain.get("name") or re.sub(r"[^a-z0-9]+", "_", goal.lower()).strip("_")[:40] or "planned_chain")
    examples = chain.get("examples") or []
    return shlex.join(
        [
            "kavi",
            "propose-chain",
            "--name",
            name,
            "--steps-json",
            json.dumps(steps, sort_keys=True),
            "--examples-json",
            json.dumps(examples, sort_keys=True),
        ]
    )
