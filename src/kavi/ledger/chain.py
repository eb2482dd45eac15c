"""The hash chain over ledger events (stdlib only, so the fast run path can append to it too).

Each event's hash is sha256 over the previous event's hash and the canonical JSON of the event's own
fields; changing, inserting, removing or reordering any event breaks every hash after it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64


def event_hash(
    *,
    prev_hash: str,
    event_id: int,
    ts: str,
    kind: str,
    proposal_id: str | None,
    build_id: str | None,
    payload: str,
) -> str:
    body = json.dumps(
        [event_id, ts, kind, proposal_id, build_id, payload],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{prev_hash}|{body}".encode()).hexdigest()


def canonical_payload(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
