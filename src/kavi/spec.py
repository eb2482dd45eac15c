"""The frozen contract of a skill: name, side-effect class, I/O schema and examples.

A spec is validated once, at propose time, then frozen as a content-addressed artifact. Everything later
(the build packet, the gates, the runtime) reads that artifact and never the user's original arguments.

The I/O schema is accepted in two forms and normalised to one:

* the short form ``{"input": {"text": "str"}, "output": {"count": "int"}}`` whose type strings are
  ``str``, ``int``, ``float``, ``bool``, ``list[T]``, ``dict[str, T]`` and ``T | None``;
* full JSON Schema, ``{"input": {"type": "object", "properties": ...}, "output": ...}``.

Both become JSON Schema objects, from which :func:`build_model` makes pydantic models.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import keyword
import math
import os
import re
import sys
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from kavi.errors import SpecError
from kavi.side_effects import SideEffect
from kavi.wording import first_error, phrase

SPEC_FORMAT = 1
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
MAX_NAME_LENGTH = 64
_RESERVED_NAMES = frozenset(
    {"kavi", "test", "tests", "conftest", "setup", "skills", "kernels", "sitecustomize", "usercustomize", "__main__"}
)
# Top-level entries of the workspace no root may cover: kavi's state, the project's code and environment.
_PROTECTED_TOP_LEVEL = frozenset({"skills", "kernels", "src", "kavi.toml", "kavi.lock", "pyproject.toml", "uv.lock"})

JsonSchema = dict[str, Any]


def installed_paths(folder: str, name: str) -> tuple[str, str]:
    """Where a TRUSTED version's code and test live, for every kind: ``<folder>/<name>.py`` and
    ``<folder>/test_<name>.py`` (each kind's spec model names its folder as ``install_dir``)."""
    return f"{folder}/{name}.py", f"{folder}/test_{name}.py"


class Example(BaseModel):
    """One frozen test vector: an input and either the expected output or the expected error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: dict[str, Any]
    output: dict[str, Any] | None = None
    error: str | None = Field(
        default=None,
        description="An exception class name, or a substring of the error message, that the skill must raise.",
    )

    def model_post_init(self, __context: Any) -> None:
        if (self.output is None) == (self.error is None):
            raise ValueError("an example needs exactly one of 'output' or 'error'")


class ProgramRecord(BaseModel):
    """A SUBPROCESS program as frozen at propose time: its name, the absolute path the child's PATH gives
    it, and the hash of that file. A run whose program no longer hashes the same is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    path: str
    sha256: str


class SkillSpec(BaseModel):
    """The frozen spec of a Python skill."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    install_dir: ClassVar[str] = "skills"

    format: int = SPEC_FORMAT
    kind: Literal["python"] = "python"
    name: str
    description: str
    side_effect: SideEffect
    write_roots: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    read_roots: tuple[str, ...] = ()
    programs: tuple[ProgramRecord, ...] = ()
    input_schema: JsonSchema
    output_schema: JsonSchema
    examples: tuple[Example, ...] = ()

    @field_validator("description")
    @classmethod
    def _description_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the description must not be empty")
        return value.strip()

    @property
    def class_name(self) -> str:
        """The CamelCase name of the skill class the builder must write."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    @property
    def skill_path(self) -> str:
        return installed_paths(self.install_dir, self.name)[0]

    @property
    def test_path(self) -> str:
        return installed_paths(self.install_dir, self.name)[1]

    @property
    def allowed_paths(self) -> tuple[str, str]:
        """The only paths a build may create or change (the diff allowlist)."""
        return (self.skill_path, self.test_path)

    def canonical_json(self) -> bytes:
        """The bytes that are frozen and hashed: sorted keys, no whitespace variance."""
        data = self.model_dump(mode="json")
        for optional in ("read_roots", "programs"):  # absent when empty: older specs keep their hashes
            if not data.get(optional):
                data.pop(optional, None)
        return canonical_json(data)


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` deterministically, so equal values always hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- validation -------------------------------------------------------------------------------------


def validate_name(name: str) -> str:
    """Refuse names that cannot be a module in skills/ or that would shadow something importable."""
    if len(name) > MAX_NAME_LENGTH:
        raise SpecError(f"skill name {name!r} is longer than {MAX_NAME_LENGTH} characters")
    if not NAME_PATTERN.fullmatch(name):
        raise SpecError(
            f"skill name {name!r} is not snake_case",
            hint="use lowercase letters, digits and single underscores, starting with a letter",
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise SpecError(f"skill name {name!r} is a Python keyword")
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        raise SpecError(f"skill name {name!r} is a standard-library module; choose another name")
    if hasattr(builtins, name) or name in _RESERVED_NAMES or name.startswith("test_"):
        raise SpecError(f"skill name {name!r} is reserved; choose another name")
    if name in importable_top_level_names():
        raise SpecError(
            f"skill name {name!r} shadows the module {name!r} that kavi's environment can import",
            hint="a skill module of that name would replace it for kavi's own gates; choose another name",
        )
    return name


@functools.cache
def importable_top_level_names() -> frozenset[str]:
    """Every top-level module name importable in this environment: the standard library, built-in modules,
    what installed distributions provide, and whatever else sits on ``sys.path`` (``sitecustomize`` …)."""
    import importlib.metadata
    import pkgutil

    names = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    names.update(importlib.metadata.packages_distributions())
    for distribution in importlib.metadata.distributions():
        top_level = distribution.read_text("top_level.txt") or ""
        names.update(line.strip() for line in top_level.splitlines() if line.strip())
        name = distribution.metadata["Name"] or ""
        names.add(re.sub(r"[-.]+", "_", name).lower())
    names.update(module.name for module in pkgutil.iter_modules())
    return frozenset(names)


_EFFECT_PARAMETERS = {
    SideEffect.FILE_WRITE: ("write_roots", "--write-root"),
    SideEffect.NETWORK: ("allow_hosts", "--allow-host"),
    SideEffect.SECRET_READ: ("secrets", "--secret"),
    SideEffect.SUBPROCESS: ("executables", "--allow-exec"),
}


def validate_effect_parameters(
    side_effect: SideEffect,
    *,
    write_roots: tuple[str, ...],
    allow_hosts: tuple[str, ...],
    secrets: tuple[str, ...],
    executables: tuple[str, ...],
) -> None:
    """Each class takes its own parameter, requires it, and refuses the parameters of other classes."""
    given = {
        "write_roots": write_roots,
        "allow_hosts": allow_hosts,
        "secrets": secrets,
        "executables": executables,
    }
    own = _EFFECT_PARAMETERS.get(side_effect)
    for field, flag in _EFFECT_PARAMETERS.values():
        if own is not None and field == own[0]:
            if not given[field]:
                raise SpecError(f"{side_effect} needs at least one {flag}")
        elif given[field]:
            raise SpecError(f"{flag} is only allowed with a side-effect class that declares it, not {side_effect}")
    for root in write_roots:
        _validate_write_root(root)
    for host in allow_hosts:
        if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d{1,5})?", host):
            raise SpecError(f"--allow-host {host!r} is not a host name or host:port")
    for secret in secrets:
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", secret):
            raise SpecError(f"--secret {secret!r} is not an environment variable name (UPPER_SNAKE_CASE)")
    for executable in executables:
        if not re.fullmatch(r"[A-Za-z0-9._+-]+", executable):
            raise SpecError(f"--allow-exec {executable!r} must be a bare program name")


def _validate_write_root(root: str) -> None:
    _validate_root(root, "--write-root", "write")


def validate_read_root(root: str) -> None:
    _validate_root(root, "--read-root", "read")


def _validate_root(root: str, flag: str, verb: str) -> None:
    """A root is a relative folder strictly inside the workspace, and never covers kavi's state, the project's
    code or environment, or any dot-folder (``.kavi``, ``.git``, ``.venv``, ``.github``, ``.env`` …)."""
    parts = root.replace("\\", "/").strip("/").split("/")
    if root.startswith(("/", "~")) or any(part in ("", ".", "..") for part in parts):
        raise SpecError(f"{flag} {root!r} must be a relative folder inside the workspace, without '..'")
    if any(part.startswith(".") for part in parts):
        raise SpecError(f"{flag} {root!r} is inside a dot-folder (kavi's own state, git, the virtual environment …)")
    if parts[0] in _PROTECTED_TOP_LEVEL:
        raise SpecError(f"{flag} {root!r} would let a skill {verb} kavi's own state or the project's own files")


def program_record(name: str, path_variable: str) -> ProgramRecord:
    """Resolve a declared program with the PATH its child will use, and hash the file it names."""
    for folder in path_variable.split(os.pathsep):
        candidate = os.path.join(folder or ".", name)  # noqa: PTH118 - PATH search semantics
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):  # noqa: PTH113
            real = os.path.realpath(candidate)
            with open(real, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            return ProgramRecord(name=name, path=real, sha256=digest)
    raise SpecError(
        f"--allow-exec {name!r}: no such program on the PATH a skill's process gets",
        hint="install it, or name a program that is on /usr/local/bin, /usr/bin or /bin",
    )


# --- I/O schema ---------------------------------------------------------------------------------------

_SCALARS: dict[str, JsonSchema] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "any": {},
}


def short_type_to_schema(text: str) -> JsonSchema:
    """Turn a short type string (``list[str] | None``) into JSON Schema, without ever evaluating it."""
    text = text.strip()
    if not text:
        raise SpecError("an empty type in the I/O schema")
    union = _split_top_level(text, "|")
    if len(union) > 1:
        members = [m for m in union if m.strip() != "None"]
        if len(members) != 1 or len(union) != 2:
            raise SpecError(f"unsupported union {text!r}: only 'T | None' is allowed")
        return {"anyOf": [short_type_to_schema(members[0]), {"type": "null"}]}
    if text in _SCALARS:
        return dict(_SCALARS[text])
    match = re.fullmatch(r"(list|dict)\[(.*)\]", text)
    if match is None:
        raise SpecError(
            f"unknown type {text!r} in the I/O schema",
            hint="use str, int, float, bool, any, list[T], dict[str, T] or T | None",
        )
    outer, inner = match.groups()
    if outer == "list":
        return {"type": "array", "items": short_type_to_schema(inner)}
    args = _split_top_level(inner, ",")
    if len(args) != 2 or args[0].strip() != "str":
        raise SpecError(f"unsupported mapping {text!r}: use dict[str, T]")
    return {"type": "object", "additionalProperties": short_type_to_schema(args[1])}


def _split_top_level(text: str, separator: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "[") - (char == "]")
        if depth < 0:
            raise SpecError(f"unbalanced brackets in type {text!r}")
        if char == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise SpecError(f"unbalanced brackets in type {text!r}")
    parts.append(current)
    return [p.strip() for p in parts]


def normalize_io_schema(raw: Any) -> tuple[JsonSchema, JsonSchema]:
    """Accept the short form or JSON Schema for ``input`` and ``output``; return two object schemas."""
    if not isinstance(raw, dict) or set(raw) != {"input", "output"}:
        raise SpecError("the I/O schema must be an object with exactly the keys 'input' and 'output'")
    return _normalize_side(raw["input"], "input"), _normalize_side(raw["output"], "output")


def _normalize_side(raw: Any, side: str) -> JsonSchema:
    if not isinstance(raw, dict):
        raise SpecError(f"the {side} schema must be an object")
    if raw.get("type") == "object" or "properties" in raw:
        schema = dict(raw)
        if schema.get("type", "object") != "object":
            raise SpecError(f"the {side} schema must describe an object")
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise SpecError(f"the {side} schema's 'properties' must be an object")
        schema["type"] = "object"
        schema.setdefault("required", sorted(properties))
        _check_json_schema(schema, side)
    else:
        properties = {}
        for field, type_text in raw.items():
            if not isinstance(type_text, str):
                raise SpecError(f"{side}.{field}: a short-form type must be a string like 'int'")
            properties[field] = short_type_to_schema(type_text)
        schema = {"type": "object", "properties": properties, "required": sorted(properties)}
    for field in schema["properties"]:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field) or keyword.iskeyword(field):
            raise SpecError(f"{side} field {field!r} is not a valid identifier")
    schema["additionalProperties"] = False
    try:
        build_model(schema, f"Check{side.capitalize()}")
    except SpecError:
        raise
    except Exception as exc:  # pydantic refuses some schemas deep inside create_model
        raise SpecError(f"the {side} schema cannot be turned into a model: {exc}") from exc
    return schema


_JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object", "null"}


def _check_json_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise SpecError(f"{where}: a schema must be an object")
    if "$ref" in schema:
        raise SpecError(f"{where}: '$ref' is not supported; inline the definition")
    types = schema.get("type")
    for item in types if isinstance(types, list) else [types] if types else []:
        if item not in _JSON_TYPES:
            raise SpecError(f"{where}: unknown JSON Schema type {item!r}")
    for key in ("anyOf", "oneOf"):
        for index, member in enumerate(schema.get(key, [])):
            _check_json_schema(member, f"{where}.{key}[{index}]")
    if "items" in schema:
        _check_json_schema(schema["items"], f"{where}[]")
    for name, child in (schema.get("properties") or {}).items():
        _check_json_schema(child, f"{where}.{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        _check_json_schema(extra, f"{where}.*")


# --- JSON Schema → pydantic ---------------------------------------------------------------------------


def build_model(schema: JsonSchema, model_name: str) -> type[BaseModel]:
    """Make a strict pydantic model (no extra fields) for an object schema."""
    fields: dict[str, Any] = {}
    required = set(schema.get("required", []))
    for field, child in schema.get("properties", {}).items():
        annotation = _annotation(child, f"{model_name}_{field}")
        constraints = _constraints(child)
        if field in required:
            fields[field] = (annotation, Field(..., **constraints))
        else:
            fields[field] = (annotation | None, Field(default=child.get("default"), **constraints))
    config = ConfigDict(extra="forbid", strict=False)
    model: type[BaseModel] = create_model(model_name, __config__=config, **fields)
    return model


def _annotation(schema: JsonSchema, name: str) -> Any:
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            members = [_annotation(member, f"{name}_{i}") for i, member in enumerate(schema[key])]
            result = members[0]
            for member in members[1:]:
                result = result | member
            return result
    json_type = schema.get("type")
    if isinstance(json_type, list):
        members = [_annotation({**schema, "type": t}, name) for t in json_type]
        result = members[0]
        for member in members[1:]:
            result = result | member
        return result
    if json_type == "string":
        return str
    if json_type == "integer":
        return int
    if json_type == "number":
        return float
    if json_type == "boolean":
        return bool
    if json_type == "null":
        return type(None)
    if json_type == "array":
        return list[_annotation(schema.get("items", {}), f"{name}_item")]  # type: ignore[misc]
    if json_type == "object":
        if schema.get("properties"):
            return build_model(schema, name.title().replace("_", ""))
        extra = schema.get("additionalProperties")
        value = _annotation(extra, f"{name}_value") if isinstance(extra, dict) else Any
        return dict[str, value]  # type: ignore[valid-type]
    return Any


def _constraints(schema: JsonSchema) -> dict[str, Any]:
    mapping = {
        "minimum": "ge",
        "maximum": "le",
        "exclusiveMinimum": "gt",
        "exclusiveMaximum": "lt",
        "minLength": "min_length",
        "maxLength": "max_length",
        "minItems": "min_length",
        "maxItems": "max_length",
        "pattern": "pattern",
        "description": "description",
    }
    return {target: schema[key] for key, target in mapping.items() if key in schema}


# Error names an example may expect besides Python's built-in exceptions: what kavi's runtime raises around a
# skill (an input outside the schema, an output outside it) and pydantic's own.
_KAVI_ERROR_NAMES = frozenset({"SkillInputError", "SkillExecutionError", "SideEffectViolation", "ValidationError"})
_CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9_]*$")


def parse_examples(
    raw: Any, input_schema: JsonSchema, output_schema: JsonSchema, *, label: str = "example"
) -> tuple[Example, ...]:
    """Validate each example against the schema now, so a bad vector never reaches a build: each must be
    finite JSON, expect a real exception type (or a message fragment), and not contradict another."""
    if not isinstance(raw, list):
        raise SpecError(f"{label}s must be a JSON list of {{'input': ..., 'output' | 'error': ...}}")
    input_model = build_model(input_schema, "ExampleInput")
    output_model = build_model(output_schema, "ExampleOutput")
    examples = []
    expected: dict[bytes, tuple[int, Any]] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise SpecError(f'example {index} must be a JSON object: {{"input": {{...}}, "output": {{...}}}}')
        try:
            example = Example.model_validate(item)
        except ValidationError as exc:
            raise SpecError(f"{label} {index}: {_first_error(exc)}") from None
        _refuse_non_finite(example, index)
        if example.error is not None:
            _check_error_name(example.error, index)
        if example.output is not None:
            for model, value, side in ((input_model, example.input, "input"), (output_model, example.output, "output")):
                try:
                    model.model_validate(value)
                except ValidationError as exc:
                    raise SpecError(f"{label} {index} {side} does not match the schema: {_first_error(exc)}") from None
        key, outcome = canonical_json(example.input), (example.output, example.error)
        if key in expected and expected[key][1] != outcome:
            raise SpecError(
                f"{label}s {expected[key][0]} and {index} have the same input but expect different results",
                hint="one input has one correct answer: remove or fix one of them",
            )
        expected.setdefault(key, (index, outcome))
        examples.append(example)
    return tuple(examples)


def _refuse_non_finite(example: Example, index: int) -> None:
    """NaN and infinity are not JSON; a frozen vector holding one could never be compared honestly."""
    stack: list[Any] = [example.input, example.output]
    while stack:
        value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"example {index} holds {value!r}, which JSON cannot carry: use a finite number or null")
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)


def _check_error_name(error: str, index: int) -> None:
    """A class-shaped name must be an exception type; anything else is a fragment of the expected message."""
    if not error.strip():
        raise SpecError(f"example {index}: error is empty: name an exception type or a fragment of its message")
    if not _CLASS_NAME.match(error):
        return
    candidate = getattr(builtins, error, None)
    if (isinstance(candidate, type) and issubclass(candidate, BaseException)) or error in _KAVI_ERROR_NAMES:
        return
    raise SpecError(
        f"example {index}: error {error!r} is not an exception type",
        hint="name a built-in exception (ValueError, KeyError, ...) or SkillInputError, or give a fragment of "
        "the expected message",
    )


# --- hidden examples -------------------------------------------------------------------------------------
# Frozen at propose time like the visible ones, but never part of the spec: the spec is what a builder
# reads (the build packet carries it whole), so hidden examples live in an artifact of their own that only
# the examples gate and, after promotion, `show` read.


def parse_hidden_examples(raw: Any, spec: SkillSpec) -> tuple[Example, ...]:
    """Validate hidden examples against the spec's schema, like the visible ones."""
    return parse_examples(raw, spec.input_schema, spec.output_schema, label="hidden example")


def hidden_examples_bytes(examples: tuple[Example, ...], salt: str) -> bytes:
    """The artifact's bytes. The salt makes its digest (recorded in the ledger and shown by `show`) useless
    for guessing the examples by hashing candidates."""
    return canonical_json({"salt": salt, "examples": [example.model_dump(mode="json") for example in examples]})


def load_hidden_examples(data: bytes) -> tuple[Example, ...]:
    """Read a hidden-examples artifact back."""
    return tuple(Example.model_validate(item) for item in json.loads(data)["examples"])


def _first_error(exc: ValidationError) -> str:
    """pydantic's first error in kavi's words (never pydantic's own wording)."""
    errors = exc.errors()
    if errors and not errors[0].get("loc"):
        return phrase(errors[0])
    return first_error(errors)


def make_spec(
    *,
    name: str,
    description: str,
    side_effect: str,
    io_schema: Any,
    examples: Any = (),
    write_roots: tuple[str, ...] = (),
    allow_hosts: tuple[str, ...] = (),
    secrets: tuple[str, ...] = (),
    executables: tuple[str, ...] = (),
    read_roots: tuple[str, ...] = (),
    programs: tuple[ProgramRecord, ...] = (),
) -> SkillSpec:
    """Validate every part of a proposal and return the spec that will be frozen."""
    validate_name(name)
    try:
        effect = SideEffect(side_effect)
    except ValueError:
        allowed = ", ".join(SideEffect.for_python_skills())
        raise SpecError(f"unknown side-effect class {side_effect!r}; use one of {allowed}") from None
    if effect not in SideEffect.for_python_skills():
        raise SpecError(f"{effect} is for kernels: use `kavi propose-kernel`")
    validate_effect_parameters(
        effect, write_roots=write_roots, allow_hosts=allow_hosts, secrets=secrets, executables=executables
    )
    for root in read_roots:
        validate_read_root(root)
    input_schema, output_schema = normalize_io_schema(io_schema)
    frozen_examples = parse_examples(list(examples), input_schema, output_schema)
    try:
        return SkillSpec(
            name=name,
            description=description,
            side_effect=effect,
            write_roots=tuple(root.strip("/") for root in write_roots),
            allow_hosts=allow_hosts,
            secrets=secrets,
            executables=executables,
            read_roots=tuple(root.strip("/") for root in read_roots),
            programs=programs,
            input_schema=input_schema,
            output_schema=output_schema,
            examples=frozen_examples,
        )
    except ValidationError as exc:
        raise SpecError(_first_error(exc)) from None


def load_spec(data: bytes) -> SkillSpec:
    """Read a frozen spec artifact back."""
    return SkillSpec.model_validate_json(data)
