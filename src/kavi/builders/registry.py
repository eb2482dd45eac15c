"""Finding builders: every builder, built-in or third-party, registers under the ``kavi.builders`` entry
point group; two registrations of one name are refused rather than silently shadowing each other."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from kavi.builders.base import Builder
from kavi.builders.options import env_prefix_for, load_options
from kavi.errors import BuildError, ConfigError, UsageError

GROUP = "kavi.builders"


def builder_classes() -> dict[str, type[Builder]]:
    found: dict[str, type[Builder]] = {}
    origins: dict[str, str] = {}
    for entry in entry_points(group=GROUP):
        origin = entry.value
        if entry.name in found and origins[entry.name] != origin:
            raise ConfigError(
                f"two builders are registered as {entry.name!r} ({origins[entry.name]} and {origin})",
                hint="uninstall one of the packages that provide it",
            )
        try:
            cls = entry.load()
        except Exception as exc:  # a broken third-party plugin must not take down kavi
            raise BuildError(f"builder {entry.name!r} failed to load: {exc}") from None
        found[entry.name] = cls
        origins[entry.name] = origin
    return found


def create_builder(name: str, options: dict[str, Any] | None = None) -> Builder:
    """Instantiate builder ``name`` with options from kavi.toml, overridden by ``KAVI_<NAME>_<FIELD>``."""
    classes = builder_classes()
    if name not in classes:
        known = ", ".join(sorted(classes)) or "none"
        raise UsageError(f"unknown builder {name!r}; installed builders: {known}")
    cls = classes[name]
    prefix = getattr(cls, "env_prefix", None) or env_prefix_for(name)
    parsed = load_options(cls.options_model, options, prefix=prefix)
    return cls(parsed)  # type: ignore[call-arg]
