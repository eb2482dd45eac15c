"""`kavi trace`'s transcript lives in :mod:`kavi.transcript`, below ``cli/``, so the dashboard shares it."""

from __future__ import annotations

from kavi.transcript import tool_target, transcript

__all__ = ["tool_target", "transcript"]
