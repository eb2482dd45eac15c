"""pydantic's validation errors in kavi's words.

A user who gives a bad example or a bad kavi.toml should read what kavi expects ("must be a JSON object"),
not pydantic's internals ("Input should be a valid dictionary or instance of Example"). One table maps
pydantic's error types to phrases; an unknown type falls back to its message with pydantic's framing cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_PHRASES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is not a field kavi knows here",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON list",
    "tuple_type": "must be a JSON list",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer, not a fraction",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number (not NaN or infinity)",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "none_required": "must be null",
}


def where(location: Sequence[Any], root: str = "the value") -> str:
    """A location such as ``examples.0.input`` (or ``root`` for the whole value)."""
    return ".".join(str(part) for part in location) or root


def phrase(error: Mapping[str, Any]) -> str:
    """What is wrong, in kavi's words."""
    kind = str(error.get("type", ""))
    if kind in _PHRASES:
        return _PHRASES[kind]
    context = error.get("ctx") or {}
    if kind == "literal_error" and "expected" in context:
        return f"must be one of {context['expected']}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long"):
        return str(error.get("msg", "")).replace("Input should be", "must be").replace("Value should", "must")
    message = str(error.get("msg", "is not valid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message.replace("Input should be", "must be")


def first_error(errors: Sequence[Mapping[str, Any]], root: str = "the value") -> str:
    """``location: phrase`` for the first error of a ValidationError's ``errors()``."""
    if not errors:
        return f"{root} is not valid"
    error = errors[0]
    return f"{where(error.get('loc', ()), root)}: {phrase(error)}"
