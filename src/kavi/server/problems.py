"""kavi's typed errors as RFC 9457 problem objects, with the same message and hint the CLI prints."""

from __future__ import annotations

from typing import Any

from kavi.errors import (
    BuilderUnavailableError,
    ConfigError,
    IntegrityError,
    IsolationError,
    KaviError,
    LedgerError,
    NotFoundError,
    SideEffectViolation,
    SkillExecutionError,
    TransitionError,
    UsageError,
    WorkspaceError,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"

# The HTTP status of each error class; the most specific class listed first wins.
STATUS_BY_ERROR: tuple[tuple[type[KaviError], int], ...] = (
    (SideEffectViolation, 403),
    (SkillExecutionError, 422),
    (UsageError, 422),
    (NotFoundError, 404),
    (TransitionError, 409),
    (IntegrityError, 409),
    (BuilderUnavailableError, 503),
    (IsolationError, 503),
    (LedgerError, 503),
    (WorkspaceError, 500),
    (ConfigError, 500),
)


def status_of(error: KaviError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 400


def problem(status: int, title: str, detail: str, *, error_type: str, hint: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:kavi:error:{error_type}",
        "title": title,
        "status": status,
        "detail": detail,
        "error_type": error_type,
    }
    if hint:
        body["hint"] = hint
    return body


def problem_of(error: KaviError) -> dict[str, Any]:
    """The problem object for a typed error: ``detail`` is the CLI's message, ``hint`` the CLI's hint."""
    name = type(error).__name__
    return problem(status_of(error), name, error.message, error_type=name, hint=error.hint)
