"""The invariants check in two halves: raw facts from the skill's process, compared with the spec in the
parent, JSON Schema constraints included."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from kavi.runtime.probe import introspection_facts, introspection_problems
from kavi.side_effects import SideEffect
from kavi.spec import make_spec

SPEC = make_spec(
    name="square_area",
    description="Area of a square",
    side_effect="READ_ONLY",
    io_schema={
        "input": {"type": "object", "properties": {"width": {"type": "integer", "minimum": 10, "maximum": 200}}},
        "output": {"type": "object", "properties": {"area": {"type": "integer"}}},
    },
)


class Out(BaseModel):
    area: int


def _skill(input_model: Any, **overrides: Any) -> Any:
    attributes = {
        "name": "square_area",
        "side_effect": SideEffect.READ_ONLY,
        "input_model": input_model,
        "output_model": Out,
        **overrides,
    }
    return type("SquareArea", (), attributes)


def test_field_bounds_meet_the_spec_constraints() -> None:
    class In(BaseModel):
        width: int = Field(ge=10, le=200)

    assert introspection_problems(SPEC, introspection_facts(_skill(In))) == []


def test_other_or_missing_bounds_do_not() -> None:
    class Loose(BaseModel):
        width: int = Field(ge=10, le=500)

    class Unbounded(BaseModel):
        width: int

    for model in (Loose, Unbounded):
        (problem,) = introspection_problems(SPEC, introspection_facts(_skill(model)))
        assert problem.startswith("input_model does not match the spec")


def test_name_side_effect_and_models_are_compared_in_the_parent() -> None:
    facts = introspection_facts(_skill(None, name="other", side_effect=SideEffect.NETWORK))
    problems = introspection_problems(SPEC, facts)
    assert len(problems) == 3
    assert "'other'" in problems[0] and "NETWORK" in problems[1] and "no usable input_model" in problems[2]
