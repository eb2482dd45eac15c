"""Which builders are installed and whether each can run here (for `kavi builders` and `kavi doctor`).

Each builder is created exactly as `kavi build-skill` creates it: its ``[build.options.<name>]`` table from
kavi.toml with the ``KAVI_<NAME>_*`` environment overrides applied, so "available" here means available to
a build. A builder that talks to a server probes it briefly (the openai builder asks for ``/models``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kavi.builders.registry import builder_classes, create_builder
from kavi.errors import KaviError


def builder_availability(configured: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per installed builder; ``configured`` is kavi.toml's ``[build.options]`` (None outside a
    workspace)."""
    rows = []
    for name in sorted(builder_classes()):
        options = dict((configured or {}).get(name) or {})
        try:
            ok, detail = create_builder(name, options).available()
        except KaviError as exc:
            ok, detail = False, str(exc)
        rows.append({"name": name, "available": ok, "detail": detail, "configured": bool(options)})
    return rows
