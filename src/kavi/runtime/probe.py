"""The child side of verification checks that must import the candidate: the frozen examples and the
invariants that need live objects (the skill's I/O models). Run as
``python -m kavi.runtime.probe all|examples|introspect SPEC_JSON SKILL_FILE``; prints one JSON object
(``all``: both, from one import of the candidate, so verification pays for one interpreter, not two).

This module is kavi's trusted code; it runs inside the isolated executor because the candidate it imports
is not trusted yet.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from kavi.runtime.invoke import find_skill_class, invoke
from kavi.runtime.loader import module_from_bytes
from kavi.spec import SkillSpec, build_model, load_spec


def run_examples(spec: SkillSpec, skill: Any) -> dict[str, Any]:
    input_model = build_model(spec.input_schema, "SpecInput")
    output_model = build_model(spec.output_schema, "SpecOutput")
    results = []
    for index, example in enumerate(spec.examples):
        entry: dict[str, Any] = {"index": index, "input": example.input}
        try:
            output = invoke(skill, dict(example.input), input_model=input_model, output_model=output_model)
        except Exception as exc:
            raised = f"{type(exc).__name__}: {exc}"
            if example.error is not None and (example.error == type(exc).__name__ or example.error in str(exc)):
                entry.update(ok=True, raised=raised)
            else:
                entry.update(ok=False, detail=f"raised {raised}", expected=example.output or example.error)
        else:
            if example.error is not None:
                entry.update(ok=False, detail=f"expected an error matching {example.error!r}", got=output)
            elif output != example.output:
                entry.update(ok=False, detail="wrong output", expected=example.output, got=output)
            else:
                entry.update(ok=True)
        results.append(entry)
    return {"ok": all(r["ok"] for r in results), "results": results}


def introspect(spec: SkillSpec, skill: Any) -> dict[str, Any]:
    """Compare the skill class's declared name, class and I/O models with the frozen spec."""
    problems = []
    if getattr(skill, "name", None) != spec.name:
        problems.append(f"the skill's name is {getattr(skill, 'name', None)!r}, the spec says {spec.name!r}")
    if str(getattr(skill, "side_effect", None)) != str(spec.side_effect):
        problems.append(
            f"the skill declares side effect {getattr(skill, 'side_effect', None)!r}, the spec says {spec.side_effect}"
        )
    for side, schema in (("input", spec.input_schema), ("output", spec.output_schema)):
        model = getattr(skill, f"{side}_model", None)
        if model is None or not hasattr(model, "model_json_schema"):
            problems.append(f"the skill has no {side}_model")
            continue
        expected = shape(build_model(schema, f"Spec{side}").model_json_schema())
        actual = shape(model.model_json_schema())
        if expected != actual:
            problems.append(f"{side}_model does not match the spec: expected {expected}, found {actual}")
    return {"ok": not problems, "problems": problems}


_METADATA = frozenset({"title", "description", "default", "$defs", "examples"})


def shape(schema: dict[str, Any]) -> Any:
    """A comparable form of a pydantic JSON schema: refs inlined; titles, descriptions and defaults dropped."""
    definitions = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return walk(definitions[node["$ref"].split("/")[-1]])
        result: dict[str, Any] = {}
        for key, value in sorted(node.items()):
            if key in _METADATA or (key == "additionalProperties" and value is False):
                continue  # extra fields are refused by the spec's own model before the skill sees them
            if key == "properties":
                result[key] = {name: walk(child) for name, child in sorted(value.items())}
            elif key == "required":
                result[key] = sorted(value)
            else:
                result[key] = walk(value)
        return result

    return walk(schema)


def main(argv: list[str]) -> int:
    mode, spec_path, skill_path = argv
    spec = load_spec(Path(spec_path).read_bytes())
    try:
        module = module_from_bytes(spec.name, Path(skill_path).read_bytes(), filename=skill_path)
        skill = find_skill_class(module)
        if mode == "all":  # introspect first: running the examples must not be able to change what it sees
            shape_result = introspect(spec, skill)
            result = {"ok": True, "introspect": shape_result, "examples": run_examples(spec, skill)}
        else:
            result = run_examples(spec, skill) if mode == "examples" else introspect(spec, skill)
    except Exception as exc:
        result = {
            "ok": False,
            "problems": [f"importing the skill failed: {type(exc).__name__}: {exc}"],
            "traceback": traceback.format_exc(limit=5),
        }
        if mode == "all":
            result = {"ok": False, "introspect": result, "examples": result}
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
