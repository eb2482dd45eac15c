"""Which builders are installed and whether each can run here (for `kavi builders` and `kavi doctor`)."""

from __future__ import annotations

from typing import Any

from kavi.builders.registry import builder_classes, create_builder
from kavi.errors import KaviError


def builder_availability() -> list[dict[str, Any]]:
    rows = []
    for name in sorted(builder_classes()):
        try:
            ok, detail = create_builder(name).available()
        except KaviError as exc:
            ok, detail = False, str(exc)
        rows.append({"name": name, "available": ok, "detail": detail})
    return rows
