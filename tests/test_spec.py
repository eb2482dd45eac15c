"""Spec validation: names, side-effect parameters, both schema forms, examples, freezing."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kavi.errors import SpecError
from kavi.spec import build_model, make_spec, short_type_to_schema

IO = {"input": {"text": "str"}, "output": {"count": "int"}}


def spec(**overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "name": "word_count",
        "description": "Count",
        "side_effect": "READ_ONLY",
        "io_schema": IO,
    }
    arguments.update(overrides)
    return make_spec(**arguments)


@pytest.mark.parametrize(
    "name",
    [
        "json",
        "sys",
        "print",
        "class",
        "match",
        "A",
        "a" * 65,
        "two__under",
        "_x",
        "test_thing",
        "kavi",
        "with-dash",
        "9lives",
    ],
)
def test_names_that_cannot_be_skills(name: str) -> None:
    with pytest.raises(SpecError):
        spec(name=name)


def test_a_good_name_and_class_name() -> None:
    assert spec(name="count_words2").class_name == "CountWords2"


@pytest.mark.parametrize(
    ("effect", "kwargs", "message"),
    [
        ("FILE_WRITE", {}, "needs at least one --write-root"),
        ("NETWORK", {}, "needs at least one --allow-host"),
        ("SECRET_READ", {}, "needs at least one --secret"),
        ("READ_ONLY", {"write_roots": ("notes",)}, "--write-root is only allowed"),
        ("FILE_WRITE", {"write_roots": ("../up",)}, "without '..'"),
        ("FILE_WRITE", {"write_roots": ("/etc",)}, "relative folder"),
        ("FILE_WRITE", {"write_roots": (".kavi",)}, "kavi's own state"),
        ("FILE_WRITE", {"write_roots": ("skills/x",)}, "kavi's own state"),
        ("SECRET_READ", {"secrets": ("lower",)}, "UPPER_SNAKE_CASE"),
        ("NETWORK", {"allow_hosts": ("http://x",)}, "host name"),
        ("GPU_KERNEL", {}, "propose-kernel"),
    ],
)
def test_side_effect_parameters(effect: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        spec(side_effect=effect, **kwargs)


def test_short_form_types() -> None:
    assert short_type_to_schema("list[dict[str, int | None]]") == {
        "type": "array",
        "items": {"type": "object", "additionalProperties": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
    }
    for bad in ("tuple[int]", "list[int", "int | str", "dict[int, str]", "__import__('os')"):
        with pytest.raises(SpecError):
            short_type_to_schema(bad)


def test_short_form_and_json_schema_freeze_to_the_same_spec() -> None:
    full = {
        "input": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "output": {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]},
    }
    assert spec(io_schema=full).canonical_json() == spec().canonical_json()


def test_models_from_the_schema_are_strict() -> None:
    frozen = spec(io_schema={"input": {"tags": "list[str]", "limit": "int | None"}, "output": {"ok": "bool"}})
    model = build_model(frozen.input_schema, "In")
    assert model.model_validate({"tags": ["a"], "limit": None}).model_dump() == {"tags": ["a"], "limit": None}
    with pytest.raises(ValidationError):
        model.model_validate({"tags": ["a"], "limit": 1, "extra": True})
    with pytest.raises(ValidationError):
        model.model_validate({"tags": "a", "limit": 1})


def test_json_schema_constraints_and_enums_carry_over() -> None:
    schema = {
        "input": {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1}, "mode": {"enum": ["fast", "slow"]}},
        },
        "output": {"type": "object", "properties": {"r": {"type": "number"}}},
    }
    model = build_model(spec(io_schema=schema).input_schema, "In")
    model.model_validate({"n": 2, "mode": "fast"})
    for bad in ({"n": 0, "mode": "fast"}, {"n": 2, "mode": "other"}):
        with pytest.raises(ValidationError):
            model.model_validate(bad)


@pytest.mark.parametrize(
    "examples",
    [
        [{"input": {"text": "a"}}],
        [{"input": {"text": "a"}, "output": {"count": 1}, "error": "X"}],
        [{"input": {"text": 3}, "output": {"count": 1}}],
        [{"input": {"text": "a"}, "output": {"count": "one"}}],
        {"input": {}},
    ],
)
def test_bad_examples_are_refused(examples: Any) -> None:
    with pytest.raises(SpecError):
        spec(examples=examples)


def test_error_examples_may_use_invalid_input() -> None:
    frozen = spec(examples=[{"input": {"text": 3}, "error": "SkillInputError"}])
    assert frozen.examples[0].error == "SkillInputError"


def test_the_schema_must_have_input_and_output_objects() -> None:
    for io in ({"input": {}}, {"input": {}, "output": {}, "x": {}}, {"input": "str", "output": {}}, []):
        with pytest.raises(SpecError):
            spec(io_schema=io)
