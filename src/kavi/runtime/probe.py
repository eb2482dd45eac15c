"""The invariants gate's live check, in two halves that never share a process.

* :func:`introspection_facts` runs in the skill child's worker (:mod:`kavi.runtime.child`, asked with
  ``"introspect": true``): it reports raw facts about the imported skill class (its declared name and
  side-effect class, its I/O models' own JSON Schema) and judges nothing.
* :func:`introspection_problems` runs in the parent: it compares those facts with the frozen spec. The
  facts are the candidate's testimony (its process could have forged them); what binds at run time is the
  spec's own models, applied to every input and output by the trusted side.

JSON Schema constraints (``minimum``, ``maxLength``, ``pattern``...) are part of the comparison: a spec
that says ``{"type": "integer", "minimum": 10, "maximum": 200}`` is met by ``Field(ge=10, le=200)``.
"""

from __future__ import annotations

from typing import Any

from kavi.spec import SkillSpec, build_model


def introspection_facts(skill: Any) -> dict[str, Any]:
    """What the skill class declares, as plain JSON (child side)."""
    facts: dict[str, Any] = {
        "name": repr(getattr(skill, "name", None)),
        "side_effect": str(getattr(skill, "side_effect", None)),
    }
    for side in ("input", "output"):
        model = getattr(skill, f"{side}_model", None)
        try:
            facts[f"{side}_schema"] = model.model_json_schema() if model is not None else None
        except Exception as exc:  # not a pydantic model, or one whose schema cannot be made
            facts[f"{side}_schema"] = None
            facts[f"{side}_error"] = f"{type(exc).__name__}: {exc}"
    return facts


def introspection_problems(spec: SkillSpec, facts: dict[str, Any]) -> list[str]:
    """Compare the skill's declared facts with the frozen spec (parent side)."""
    problems = []
    if facts.get("name") != repr(spec.name):
        problems.append(f"the skill's name is {facts.get('name')}, the spec says {spec.name!r}")
    if facts.get("side_effect") != str(spec.side_effect):
        problems.append(f"the skill declares side effect {facts.get('side_effect')}, the spec says {spec.side_effect}")
    for side, schema in (("input", spec.input_schema), ("output", spec.output_schema)):
        found = facts.get(f"{side}_schema")
        if not isinstance(found, dict):
            problems.append(f"the skill has no usable {side}_model ({facts.get(f'{side}_error', 'missing')})")
            continue
        expected = shape(build_model(schema, f"Spec{side}").model_json_schema())
        actual = shape(found)
        if expected != actual:
            problems.append(f"{side}_model does not match the spec: expected {expected}, found {actual}")
    return problems


_METADATA = frozenset({"title", "description", "default", "$defs", "examples"})


def shape(schema: dict[str, Any]) -> Any:
    """A comparable form of a pydantic JSON schema: refs inlined; titles, descriptions and defaults
    dropped; constraints (minimum, maxLength, pattern, ...) kept."""
    definitions = schema.get("$defs", {})

    def walk(node: Any, depth: int = 0) -> Any:
        if depth > 64:
            return "<too deep>"  # a self-referencing model: compare no further
        if isinstance(node, list):
            return [walk(item, depth + 1) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = definitions.get(str(node["$ref"]).split("/")[-1])
            return walk(target, depth + 1) if target is not None else {"$ref": node["$ref"]}
        result: dict[str, Any] = {}
        for key, value in sorted(node.items()):
            if key in _METADATA or (key == "additionalProperties" and value is False):
                continue  # extra fields are refused by the spec's own model before the skill sees them
            if key == "properties" and isinstance(value, dict):
                result[key] = {name: walk(child, depth + 1) for name, child in sorted(value.items())}
            elif key == "required" and isinstance(value, list):
                result[key] = sorted(str(item) for item in value)
            else:
                result[key] = walk(value, depth + 1)
        return result

    return walk(schema)
