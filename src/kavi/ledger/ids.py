"""Row ids and timestamps (stdlib only, shared by the SQLModel store and the fast path)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime


def new_id(prefix: str) -> str:
    """A short random id with a readable prefix (p_ proposal, b_ build, v_ verification, t_ trusted version,
    x_ execution)."""
    return f"{prefix}_{secrets.token_hex(6)}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
