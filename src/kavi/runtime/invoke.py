"""Calling a skill with validated input and output: the one code path shared by `run-skill`, the frozen
examples check during verification and the in-process API."""

from __future__ import annotations

import types
from typing import Any

from pydantic import BaseModel, ValidationError

from kavi.errors import SkillExecutionError, SkillInputError
from kavi.skill import Skill


def find_skill_class(module: types.ModuleType) -> type[Skill[Any, Any]]:
    """The single :class:`Skill` subclass defined in ``module`` (the invariants gate guarantees one)."""
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Skill)
        and value is not Skill
        and value.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise SkillExecutionError(f"{module.__name__} defines {len(found)} skill classes; exactly one is required")
    return found[0]


def invoke(
    skill_class: type[Skill[Any, Any]],
    payload: dict[str, Any],
    *,
    input_model: type[BaseModel],
    output_model: type[BaseModel],
) -> dict[str, Any]:
    """Validate ``payload`` against the spec's input model, run the skill, validate what it returns against
    the spec's output model, and return plain JSON data."""
    try:
        input_model.model_validate(payload)
        data = skill_class.input_model.model_validate(payload)
    except ValidationError as exc:
        raise SkillInputError(f"input does not match {skill_class.name}'s schema: {_describe(exc)}") from None
    result = skill_class().execute(data)
    if not isinstance(result, BaseModel):
        raise SkillExecutionError(f"{skill_class.name} returned {type(result).__name__}, not its output model")
    output = result.model_dump(mode="json")
    try:
        output_model.model_validate(output)
    except ValidationError as exc:
        raise SkillExecutionError(f"{skill_class.name} returned output outside its schema: {_describe(exc)}") from None
    return output


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"]) or "(root)"
    return f"{location}: {error['msg']}"
