"""A TRUSTED skill as an MCP tool: its definition derived from the frozen spec, and the hash of that definition.

The definition (name, description, input and output JSON Schema) is a pure function of the frozen spec, whose
sha256 the TRUSTED version records; the tool's own sha256 covers the definition and :data:`TOOL_FORMAT`. The
server builds the definition only from the spec read back hash-checked by that recorded digest, so a tool cannot
change under a client that approved it: a different definition needs a different spec, which needs a new
proposal, a new verification and a new promotion (decision "A tool's definition is derived from the spec hash").
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from kavi.errors import KaviError
from kavi.kinds import kind_of
from kavi.ledger.models import Promotion, VersionStatus
from kavi.spec import canonical_json
from kavi.stages.common import Forge

TOOL_FORMAT = 1
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolEntry:
    """One served tool: the TRUSTED version it runs and its recorded definition."""

    name: str
    version: int
    promotion_id: str
    spec_sha256: str
    definition: dict[str, Any]
    sha256: str


def tool_definition(spec: dict[str, Any]) -> dict[str, Any]:
    """The MCP tool definition of a frozen skill spec (MCP's camelCase field names)."""
    return {
        "name": spec["name"],
        "description": spec["description"],
        "inputSchema": spec["input_schema"],
        "outputSchema": spec["output_schema"],
    }


def tool_sha256(definition: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"format": TOOL_FORMAT, "tool": definition})).hexdigest()


def tool_of(forge: Forge, promotion: Promotion) -> ToolEntry | None:
    """The tool of one TRUSTED version, or None for a kind that is not a callable skill (a kernel)."""
    spec = json.loads(forge.store.get(promotion.spec_sha256))  # the store checks the hash on read
    kind = kind_of(spec.get("kind"))
    if not kind.serves_as_tool or (kind.composite and _suspended(forge, promotion)):
        return None
    definition = tool_definition(spec)
    return ToolEntry(
        promotion.name, promotion.version, promotion.id, promotion.spec_sha256, definition, tool_sha256(definition)
    )


def _suspended(forge: Forge, promotion: Promotion) -> bool:
    """A chain whose member was revoked is not served (it would only refuse)."""
    from kavi.stages.chain import chains_state

    with forge.ledger.reading() as session:
        state = chains_state(forge, session, [(promotion.id, promotion.spec_sha256)])
    return state[promotion.id]["suspended"] is not None


def trusted_tools(forge: Forge) -> list[ToolEntry]:
    """One tool per skill name: its latest TRUSTED version (the one `run-skill` runs). A version whose frozen
    spec no longer matches its recorded hash is left out (`kavi audit` names it), never served changed."""
    with forge.ledger.reading() as session:
        promotions = session.exec(
            select(Promotion)
            .where(Promotion.status == VersionStatus.TRUSTED)
            .order_by(col(Promotion.name), col(Promotion.version).desc())
        ).all()
    tools: list[ToolEntry] = []
    seen: set[str] = set()
    for promotion in promotions:
        if promotion.name in seen:
            continue
        seen.add(promotion.name)
        try:
            entry = tool_of(forge, promotion)
        except KaviError as exc:  # a spec that fails its hash is never served; the others still are
            logger.warning("not serving %s v%s: %s", promotion.name, promotion.version, exc)
            continue
        if entry is not None:
            tools.append(entry)
    return tools


def trusted_tool(forge: Forge, name: str) -> ToolEntry | None:
    """The tool ``name`` serves, as :func:`trusted_tools` would list it (its latest TRUSTED version), or None:
    one name's rows read, not every tool's, since a call asks for one."""
    with forge.ledger.reading() as session:
        promotion = session.exec(
            select(Promotion)
            .where(Promotion.status == VersionStatus.TRUSTED, Promotion.name == name)
            .order_by(col(Promotion.version).desc())
            .limit(1)
        ).first()
    if promotion is None:
        return None
    try:
        return tool_of(forge, promotion)
    except KaviError as exc:  # a spec that fails its hash is never served
        logger.warning("not serving %s v%s: %s", promotion.name, promotion.version, exc)
        return None


def tool_hashes(forge: Forge, promotion_ids: list[str]) -> dict[str, str]:
    """The MCP tool sha256 of each given version that is a callable skill (for `kavi show`)."""
    hashes: dict[str, str] = {}
    with forge.ledger.reading() as session:
        promotions = [session.get(Promotion, promotion_id) for promotion_id in promotion_ids]
    for promotion in promotions:
        entry = None if promotion is None else tool_of(forge, promotion)
        if entry is not None:
            hashes[entry.promotion_id] = entry.sha256
    return hashes
