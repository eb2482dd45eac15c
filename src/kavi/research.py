"""placeholder"""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    GATE_VIOLATION = "GATE_VIOLATION"
    TIMEOUT = "TIMEOUT"
    BUILD_ERROR = "BUILD_ERROR"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
