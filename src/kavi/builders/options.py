"""Builder options from configuration plus ``KAVI_<BUILDER>_<FIELD>`` environment overrides.

Every builder declares its options as a pydantic model with ``extra="forbid"``; this module is the
one place that merges the configured values with the environment, so that a CI job or a shell can
change a model name or a timeout without editing ``kavi.toml``. The environment wins over the
configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from kavi.builders.base import BuilderOptions
from kavi.errors import ConfigError

OptionsT = TypeVar("OptionsT", bound=BuilderOptions)


def env_prefix_for(builder_name: str) -> str:
    """``claude-code`` -> ``KAVI_CLAUDE_CODE_``; a builder may declare a shorter ``env_prefix``."""
    return "KAVI_" + builder_name.upper().replace("-", "_") + "_"


def env_overrides(
    options_model: type[BuilderOptions], prefix: str, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The option values set through the environment, keyed by field name.

    Only variables that name a field are read: other ``KAVI_...`` variables belong to something
    else, so they are ignored rather than refused.
    """
    environ = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for field_name in options_model.model_fields:
        value = environ.get(prefix + field_name.upper())
        if value is not None:
            found[field_name] = value
    return found


def load_options(
    options_model: type[OptionsT],
    configured: Mapping[str, Any] | None = None,
    *,
    prefix: str,
    environ: Mapping[str, str] | None = None,
) -> OptionsT:
    """Validate ``configured`` merged with the environment overrides; ConfigError names the fix.

    An empty environment value means "unset" (so ``KAVI_CLAUDE_MODEL=`` falls back to the default).
    """
    merged: dict[str, Any] = dict(configured or {})
    for field_name, value in env_overrides(options_model, prefix, environ).items():
        if value.strip():
            merged[field_name] = value
        else:
            merged.pop(field_name, None)
    try:
        return options_model.model_validate(merged)
    except ValidationError as error:
        problems = "; ".join(_describe(problem, prefix) for problem in error.errors())
        raise ConfigError(
            f"invalid {options_model.__name__}: {problems}",
            hint="fix the builder's table in kavi.toml or the environment variable named",
        ) from None


def _describe(problem: Mapping[str, Any], prefix: str) -> str:
    location = ".".join(str(part) for part in problem.get("loc", ()))
    return f"{location} (or {prefix}{location.upper()}): {problem.get('msg', 'invalid')}"
