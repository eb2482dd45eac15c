"""The frozen contract of a chain: a DAG of TRUSTED skills pinned by name, version and hash, wired field to field.

A chain is checked once, at propose time, against its members' frozen schemas, and frozen like a skill's spec:
every edge (``"text": "input.text"``, ``"n": "count.count"``) must join an output field (or the chain's input)
to an input field of the same type, every required input of every member must be fed, and a field a member may
leave out can never feed a required one. The chain's own input and output schemas are derived from the members'
and its side-effect classes are the union of theirs; it never declares anything of its own.

:func:`execute_chain` walks the frozen steps in order and asks a caller-supplied runner to run each one (the
composition gate and `run-chain` both pass one that runs the step in its own isolated child with its own
class); data moves from step to step only through the caller, never through files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from kavi.errors import SpecError
from kavi.side_effects import SideEffect
from kavi.spec import NAME_PATTERN, Example, JsonSchema, build_model, canonical_json, parse_examples, validate_name
from kavi.wording import first_error

CHAIN_FORMAT = 1
CHAIN_KIND = "chain"
CHAIN_INPUT = "input"  # the source name of the chain's own input in an edge ("input.text")
MAX_STEPS = 32


def chain_paths(folder: str, name: str) -> tuple[str, str]:
    """Where a TRUSTED chain is installed: its definition and its frozen end-to-end examples."""
    return f"{folder}/{name}.json", f"{folder}/test_{name}.json"


class ChainStep(BaseModel):
    """One member of a chain, pinned: the version and the hashes of its code and of its frozen spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    skill: str
    version: int
    skill_sha256: str
    spec_sha256: str
    side_effect: SideEffect
    inputs: dict[str, str]  # member input field -> "input.FIELD" or "STEP.FIELD"


class ChainSpec(BaseModel):
    """The frozen spec of a chain (the ``chain`` kind in :mod:`kavi.kinds`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    install_dir: ClassVar[str] = "chains"

    format: int = CHAIN_FORMAT
    kind: Literal["chain"] = "chain"
    name: str
    description: str
    steps: tuple[ChainStep, ...]
    output: dict[str, str]  # chain output field -> "STEP.FIELD"
    input_schema: JsonSchema
    output_schema: JsonSchema
    side_effects: tuple[SideEffect, ...]
    examples: tuple[Example, ...]

    @field_validator("description")
    @classmethod
    def _description_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the description must not be empty")
        return value.strip()

    @property
    def side_effect(self) -> str:
        """The union of the members' classes, as one label (``READ_ONLY+FILE_WRITE``) where a skill shows its
        class; each step still runs with its own class only."""
        return side_effects_label(self.side_effects)

    @property
    def allowed_paths(self) -> tuple[str, str]:
        return chain_paths(self.install_dir, self.name)

    def canonical_json(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    def examples_json(self) -> bytes:
        """The installed examples file (the chain's "tests")."""
        return canonical_json([example.model_dump(mode="json", exclude_none=True) for example in self.examples])

    def step(self, step_id: str) -> ChainStep:
        return next(step for step in self.steps if step.id == step_id)


def side_effects_label(effects: tuple[SideEffect, ...] | list[SideEffect]) -> str:
    order = list(SideEffect)
    return "+".join(str(effect) for effect in sorted(set(effects), key=order.index))


@dataclass(frozen=True)
class Member:
    """A TRUSTED version a chain may pin, as the ledger records it (read by the propose stage)."""

    name: str
    version: int
    skill_sha256: str
    spec_sha256: str
    side_effect: SideEffect
    input_schema: JsonSchema
    output_schema: JsonSchema


# --- checking the wiring -----------------------------------------------------------------------------------


def _source(reference: Any, where: str) -> tuple[str, str]:
    if not isinstance(reference, str) or reference.count(".") != 1:
        raise SpecError(f"{where}: {reference!r} must be 'input.FIELD' or 'STEP.FIELD'")
    origin, name = reference.split(".")
    if not origin or not name:
        raise SpecError(f"{where}: {reference!r} must be 'input.FIELD' or 'STEP.FIELD'")
    return origin, name


def _types(schema: JsonSchema) -> list[JsonSchema]:
    """A schema's alternatives (``anyOf``/``oneOf`` and type lists spread out)."""
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [alt for member in schema[key] for alt in _types(member)]
    kind = schema.get("type")
    if isinstance(kind, list):
        return [{**schema, "type": item} for item in kind]
    return [schema]


def schema_mismatch(source: JsonSchema, target: JsonSchema) -> str | None:
    """Why a value of ``source`` may not fit ``target`` (None: every value fits, as far as types go; value
    constraints such as a minimum are left to the composition gate, which runs the examples)."""
    for alternative in _types(source):
        if not any(_fits(alternative, candidate) for candidate in _types(target)):
            return f"{type_text(alternative)} does not fit {type_text(target)}"
    return None


def _fits(source: JsonSchema, target: JsonSchema) -> bool:
    target_type, source_type = target.get("type"), source.get("type")
    if "enum" in target:
        return "enum" in source and set(map(json.dumps, source["enum"])) <= set(map(json.dumps, target["enum"]))
    if target_type is None:
        return True  # any value
    if "enum" in source:
        return all(_value_fits(value, target_type) for value in source["enum"])
    if source_type != target_type and not (source_type == "integer" and target_type == "number"):
        return False
    if target_type == "array":
        return schema_mismatch(source.get("items", {}), target.get("items", {})) is None
    if target_type == "object":
        return _object_fits(source, target)
    return True


def _value_fits(value: Any, json_type: str) -> bool:
    python: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    expected = python.get(json_type)
    return expected is not None and isinstance(value, expected) and not (json_type != "boolean" and value is True)


def _object_fits(source: JsonSchema, target: JsonSchema) -> bool:
    target_fields = target.get("properties") or {}
    source_fields = source.get("properties") or {}
    if not target_fields:
        extra = target.get("additionalProperties")
        if isinstance(extra, dict) and source_fields:
            return all(schema_mismatch(child, extra) is None for child in source_fields.values())
        return True
    if set(source_fields) - set(target_fields) and target.get("additionalProperties") is False:
        return False
    missing = set(target.get("required", ())) - set(source.get("required", ()))
    if missing:
        return False
    return all(schema_mismatch(child, target_fields[name]) is None for name, child in source_fields.items())


def type_text(schema: JsonSchema) -> str:
    """A schema as a person reads a type (``int``, ``list[str]``, ``str | None``)."""
    alternatives = _types(schema)
    if len(alternatives) > 1:
        return " | ".join(type_text(alternative) for alternative in alternatives)
    names = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}
    kind = schema.get("type")
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(value) for value in schema["enum"])
    if kind == "array":
        return f"list[{type_text(schema.get('items', {}))}]"
    if kind == "object":
        return "object" if schema.get("properties") else "dict"
    return names.get(str(kind), "any") if kind else "any"


def _order(steps: list[dict[str, Any]]) -> list[str]:
    """The step ids in an order where every step comes after the steps it reads (refusing a cycle)."""
    depends = {
        step["id"]: {
            _source(ref, f"step {step['id']}")[0] for ref in step["inputs"].values() if not ref.startswith("input.")
        }
        for step in steps
    }
    ordered: list[str] = []
    remaining = dict(depends)
    while remaining:
        ready = [step for step, needs in remaining.items() if needs <= set(ordered)]
        if not ready:
            raise SpecError(
                f"the steps {', '.join(sorted(remaining))} depend on each other in a cycle",
                hint="a chain is a directed acyclic graph: each step reads the chain's input or earlier steps",
            )
        for step in ready:  # listed order among the ready ones, so the frozen order is predictable
            ordered.append(step)
            del remaining[step]
    return ordered


def _parse_steps(raw: Any) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    document = {"steps": raw} if isinstance(raw, list) else raw
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list) or not document["steps"]:
        raise SpecError(
            'the steps must be a non-empty JSON list, or {"steps": [...], "output": {...}}',
            hint='each step: {"id": "count", "skill": "word_count", "version": 1, "inputs": {"text": "input.text"}}',
        )
    unknown = set(document) - {"steps", "output"}
    if unknown:
        raise SpecError(f"unknown key(s) {', '.join(sorted(unknown))} in the steps; use 'steps' and 'output'")
    if len(document["steps"]) > MAX_STEPS:
        raise SpecError(f"a chain has at most {MAX_STEPS} steps")
    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(document["steps"]):
        if not isinstance(item, dict) or not isinstance(item.get("skill"), str):
            raise SpecError(f"step {index} must be an object with at least 'skill' and 'inputs'")
        extra = set(item) - {"id", "skill", "version", "inputs"}
        if extra:
            raise SpecError(f"step {index}: unknown key(s) {', '.join(sorted(extra))}")
        step_id = item.get("id", item["skill"])
        if not isinstance(step_id, str) or not NAME_PATTERN.match(step_id) or step_id == CHAIN_INPUT or step_id in seen:
            raise SpecError(f"step {index}: id {step_id!r} is taken or reserved; give each step its own 'id'")
        seen.add(step_id)
        version = item.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise SpecError(f"step {step_id}: version must be a positive integer")
        inputs = item.get("inputs", {})
        if not isinstance(inputs, dict) or not all(isinstance(value, str) for value in inputs.values()):
            raise SpecError(f"step {step_id}: inputs must map each input field to 'input.FIELD' or 'STEP.FIELD'")
        steps.append({"id": step_id, "skill": item["skill"], "version": version, "inputs": inputs})
    output = document.get("output")
    if output is not None and (not isinstance(output, dict) or not output):
        raise SpecError("output must map each chain output field to 'STEP.FIELD'")
    return steps, output


def make_chain_spec(
    *,
    name: str,
    description: str,
    steps: Any,
    examples: Any,
    members: Callable[[str, int | None], Member],
) -> ChainSpec:
    """Check the wiring against the members' frozen schemas and freeze the chain's contract.

    ``members(skill, version)`` returns the TRUSTED version to pin (the latest when ``version`` is None) or
    raises. Refused: an unknown field, a type that does not fit, a required input left unfed, a field that may be
    missing feeding a required one, a cycle, and a chain without end-to-end examples.
    """
    validate_name(name)
    raw_steps, raw_output = _parse_steps(steps)
    pinned = {step["id"]: members(step["skill"], step["version"]) for step in raw_steps}
    order = _order(raw_steps)
    by_id = {step["id"]: step for step in raw_steps}
    chain_input: dict[str, JsonSchema] = {}
    chain_required: set[str] = set()
    for step_id in order:
        step, member = by_id[step_id], pinned[step_id]
        _check_step_inputs(step, member, pinned, chain_input, chain_required)
    output_map = raw_output or _default_output(raw_steps, pinned)
    output_properties: dict[str, JsonSchema] = {}
    output_required: list[str] = []
    for field_name, reference in output_map.items():
        origin, source_field = _source(reference, f"output {field_name}")
        if origin not in pinned:
            raise SpecError(f"output {field_name}: {reference!r} names no step of this chain")
        schema = _output_field(pinned[origin], origin, source_field)
        output_properties[field_name] = schema
        if source_field in pinned[origin].output_schema.get("required", ()):
            output_required.append(field_name)
    input_schema = {
        "type": "object",
        "properties": dict(sorted(chain_input.items())),
        "required": sorted(chain_required),
        "additionalProperties": False,
    }
    output_schema = {
        "type": "object",
        "properties": output_properties,
        "required": sorted(output_required),
        "additionalProperties": False,
    }
    frozen_examples = parse_examples(examples, input_schema, output_schema, label="chain example")
    if not frozen_examples:
        raise SpecError(
            "a chain needs at least one end-to-end example (--examples-json)",
            hint="the composition gate runs them through every step: parts that pass alone may fail together",
        )
    frozen_steps = tuple(
        ChainStep(
            id=step_id,
            skill=pinned[step_id].name,
            version=pinned[step_id].version,
            skill_sha256=pinned[step_id].skill_sha256,
            spec_sha256=pinned[step_id].spec_sha256,
            side_effect=pinned[step_id].side_effect,
            inputs=dict(sorted(by_id[step_id]["inputs"].items())),
        )
        for step_id in order
    )
    try:
        return ChainSpec(
            name=name,
            description=description,
            steps=frozen_steps,
            output=dict(output_map),
            input_schema=input_schema,
            output_schema=output_schema,
            side_effects=tuple(sorted({m.side_effect for m in pinned.values()}, key=list(SideEffect).index)),
            examples=frozen_examples,
        )
    except ValidationError as exc:
        raise SpecError(f"the chain is not valid: {exc.errors()[0]['msg']}") from None


def _check_step_inputs(
    step: dict[str, Any],
    member: Member,
    pinned: Mapping[str, Member],
    chain_input: dict[str, JsonSchema],
    chain_required: set[str],
) -> None:
    where = f"step {step['id']} ({member.name} v{member.version})"
    properties = member.input_schema.get("properties", {})
    required = set(member.input_schema.get("required", ()))
    for target, reference in step["inputs"].items():
        if target not in properties:
            known = ", ".join(sorted(properties)) or "none"
            raise SpecError(f"{where} has no input field {target!r} (its inputs: {known})")
        origin, source_field = _source(reference, f"{where} input {target}")
        target_schema = properties[target]
        if origin == CHAIN_INPUT:
            earlier = chain_input.get(source_field)
            if earlier is not None and earlier != target_schema:
                raise SpecError(
                    f"{where}: chain input {source_field!r} feeds fields of different types "
                    f"({type_text(earlier)} and {type_text(target_schema)})",
                    hint="feed each of them from a chain input of its own",
                )
            chain_input[source_field] = target_schema
            if target in required:
                chain_required.add(source_field)
            continue
        if origin not in pinned:
            raise SpecError(f"{where} input {target}: {reference!r} names no step of this chain")
        if origin == step["id"]:
            raise SpecError(f"{where} input {target}: a step cannot read its own output")
        source_schema = _output_field(pinned[origin], origin, source_field)
        mismatch = schema_mismatch(source_schema, target_schema)
        if mismatch:
            raise SpecError(
                f"type mismatch: {origin}.{source_field} ({pinned[origin].name} output, "
                f"{type_text(source_schema)}) cannot feed {step['id']}.{target} ({member.name} input, "
                f"{type_text(target_schema)}): {mismatch}",
                hint="wire a field of the same type, or put a converting skill between the two steps",
            )
        if target in required and source_field not in pinned[origin].output_schema.get("required", ()):
            raise SpecError(
                f"{origin}.{source_field} may be missing from {pinned[origin].name}'s output, but "
                f"{step['id']}.{target} is required by {member.name}",
                hint="wire a field the earlier step always returns",
            )
    unfed = sorted(required - set(step["inputs"]))
    if unfed:
        raise SpecError(
            f"{where}: required input(s) {', '.join(unfed)} are fed by no edge",
            hint=f'map each one, e.g. "inputs": {{"{unfed[0]}": "input.{unfed[0]}"}}',
        )


def _output_field(member: Member, step_id: str, field_name: str) -> JsonSchema:
    properties = member.output_schema.get("properties", {})
    if field_name not in properties:
        known = ", ".join(sorted(properties)) or "none"
        raise SpecError(f"step {step_id} ({member.name}) has no output field {field_name!r} (its outputs: {known})")
    schema: JsonSchema = properties[field_name]
    return schema


def _default_output(steps: list[dict[str, Any]], pinned: Mapping[str, Member]) -> dict[str, str]:
    """Without an explicit ``output``: every output field of the one step nothing else reads."""
    read = {_source(ref, "")[0] for step in steps for ref in step["inputs"].values() if not ref.startswith("input.")}
    sinks = [step["id"] for step in steps if step["id"] not in read]
    if len(sinks) != 1:
        raise SpecError(
            f"the steps {', '.join(sinks)} all end the chain: say which fields it returns",
            hint='add "output": {"FIELD": "STEP.FIELD", ...} next to "steps"',
        )
    properties = pinned[sinks[0]].output_schema.get("properties", {})
    return {field_name: f"{sinks[0]}.{field_name}" for field_name in properties}


# --- running a frozen chain -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepOutcome:
    """What the runner reports for one step: the member's output, or why it failed (``phase`` as the run
    child reports it: ``input``, ``side_effect``, ``execute``, ``output``, ...)."""

    output: dict[str, Any] | None
    error: str | None = None
    phase: str | None = None
    error_type: str | None = None
    isolation: str = ""
    layers: tuple[str, ...] = ()
    execution_id: str = ""
    duration_s: float = 0.0


@dataclass(frozen=True)
class ChainOutcome:
    output: dict[str, Any] | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    failed_step: str | None = None
    error: str | None = None
    error_type: str | None = None
    phase: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


StepRunner = Callable[[ChainStep, dict[str, Any]], StepOutcome]


def execute_chain(spec: ChainSpec, payload: dict[str, Any], run_step: StepRunner) -> ChainOutcome:
    """Run the steps in their frozen order; stop at the first that fails or is blocked, naming it. The chain's
    input and output are validated against its derived schemas."""
    try:
        build_model(spec.input_schema, "ChainInput").model_validate(payload)
    except ValidationError as exc:
        return ChainOutcome(
            None, [], None, f"the chain's input does not match its schema: {_problem(exc)}", "SkillInputError", "input"
        )
    values: dict[str, dict[str, Any]] = {CHAIN_INPUT: payload}
    records: list[dict[str, Any]] = []
    for step in spec.steps:
        step_input = {}
        for target, reference in step.inputs.items():
            origin, source_field = reference.split(".")
            if source_field in values[origin]:
                step_input[target] = values[origin][source_field]
        started = time.perf_counter()
        outcome = run_step(step, step_input)
        records.append(
            {
                "step": step.id,
                "skill": step.skill,
                "version": step.version,
                "side_effect": str(step.side_effect),
                "ok": outcome.error is None,
                "error": outcome.error,
                "isolation": outcome.isolation,
                "layers": list(outcome.layers),
                "execution_id": outcome.execution_id,
                "duration_s": round(outcome.duration_s or time.perf_counter() - started, 6),
            }
        )
        if outcome.error is not None or outcome.output is None:
            what = "was blocked" if outcome.phase == "side_effect" else "failed"
            return ChainOutcome(
                None,
                records,
                step.id,
                f"step {step.id} ({step.skill} v{step.version}, {step.side_effect}) {what}: {outcome.error}",
                outcome.error_type,
                outcome.phase,
            )
        values[step.id] = outcome.output
    result = {
        field_name: values[origin][source_field]
        for field_name, reference in spec.output.items()
        for origin, source_field in [reference.split(".")]
        if source_field in values[origin]
    }
    try:
        build_model(spec.output_schema, "ChainOutput").model_validate(result)
    except ValidationError as exc:
        return ChainOutcome(
            None,
            records,
            None,
            f"the chain's output does not match its schema: {_problem(exc)}",
            "SkillExecutionError",
            "output",
        )
    return ChainOutcome(result, records)


def _problem(exc: ValidationError) -> str:
    return first_error(exc.errors())
