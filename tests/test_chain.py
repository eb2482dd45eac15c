"""kavi.chain: which member field may feed which (types only; values are the composition gate's), and the
wiring checks that need no ledger."""

from __future__ import annotations

import pytest

from kavi.chain import Member, make_chain_spec, schema_mismatch, type_text
from kavi.errors import SpecError
from kavi.side_effects import SideEffect
from kavi.spec import short_type_to_schema


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("int", "int"),
        ("int", "float"),
        ("str", "str | None"),
        ("list[int]", "list[float]"),
        ("dict[str, int]", "dict[str, float]"),
        ("list[str] | None", "list[str] | None"),
    ],
)
def test_a_source_type_fits_a_wider_target(source: str, target: str) -> None:
    assert schema_mismatch(short_type_to_schema(source), short_type_to_schema(target)) is None


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("int", "str", "int does not fit str"),
        ("float", "int", "float does not fit int"),
        ("str | None", "str", "None does not fit str"),
        ("list[float]", "list[int]", "list[float] does not fit list[int]"),
        ("bool", "list[bool]", "bool does not fit list[bool]"),
    ],
)
def test_a_source_type_that_may_not_fit_is_named(source: str, target: str, message: str) -> None:
    assert schema_mismatch(short_type_to_schema(source), short_type_to_schema(target)) == message


def test_enums_fit_their_base_type_but_not_the_reverse() -> None:
    colours = {"enum": ["red", "blue"]}
    assert schema_mismatch(colours, {"type": "string"}) is None
    assert schema_mismatch({"type": "string"}, colours) is not None
    assert schema_mismatch(colours, {"enum": ["red", "blue", "green"]}) is None
    assert type_text(colours) == 'one of "red", "blue"'


def _member(name: str, inputs: dict[str, str], outputs: dict[str, str], effect: SideEffect) -> Member:
    def side(fields: dict[str, str], optional: frozenset[str] = frozenset()) -> dict[str, object]:
        return {
            "type": "object",
            "properties": {key: short_type_to_schema(value) for key, value in fields.items()},
            "required": sorted(set(fields) - optional),
            "additionalProperties": False,
        }

    return Member(name, 1, "a" * 64, "b" * 64, effect, side(inputs), side(outputs, frozenset({"note"})))


MEMBERS = {
    "split": _member("split", {"text": "str"}, {"words": "list[str]", "note": "str"}, SideEffect.READ_ONLY),
    "store": _member("store", {"words": "list[str]", "label": "str"}, {"path": "str"}, SideEffect.FILE_WRITE),
}


def _lookup(skill: str, version: int | None) -> Member:
    return MEMBERS[skill]


def test_the_chains_schemas_are_derived_and_its_classes_are_the_union() -> None:
    spec = make_chain_spec(
        name="split_and_store",
        description="Split, then store",
        steps=[
            {"id": "store", "skill": "store", "inputs": {"words": "split.words", "label": "input.label"}},
            {"id": "split", "skill": "split", "inputs": {"text": "input.text"}},
        ],
        examples=[{"input": {"text": "a b", "label": "x"}, "output": {"path": "x"}}],
        members=_lookup,
    )
    assert [step.id for step in spec.steps] == ["split", "store"], "steps are frozen in dependency order"
    assert spec.input_schema["required"] == ["label", "text"]
    assert spec.output == {"path": "store.path"}
    assert spec.side_effect == "READ_ONLY+FILE_WRITE"
    assert spec.allowed_paths == ("chains/split_and_store.json", "chains/test_split_and_store.json")


def test_a_field_that_may_be_missing_cannot_feed_a_required_input() -> None:
    with pytest.raises(SpecError, match=r"split\.note may be missing"):
        make_chain_spec(
            name="bad",
            description="x",
            steps=[
                {"id": "split", "skill": "split", "inputs": {"text": "input.text"}},
                {"id": "store", "skill": "store", "inputs": {"words": "split.words", "label": "split.note"}},
            ],
            examples=[{"input": {"text": "a"}, "output": {"path": "x"}}],
            members=_lookup,
        )


def test_one_chain_input_cannot_feed_fields_of_different_types() -> None:
    with pytest.raises(SpecError, match="feeds fields of different types"):
        make_chain_spec(
            name="bad",
            description="x",
            steps={
                "steps": [
                    {"id": "split", "skill": "split", "inputs": {"text": "input.x"}},
                    {"id": "store", "skill": "store", "inputs": {"words": "input.x", "label": "input.x"}},
                ],
                "output": {"path": "store.path"},
            },
            examples=[{"input": {"x": "a"}, "output": {"path": "x"}}],
            members=_lookup,
        )
