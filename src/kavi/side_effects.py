"""The side-effect classes a skill can declare.

A leaf module (stdlib only): skills import it through :mod:`kavi.skill`, and the run-time child imports it
before any skill byte is executed.
"""

from __future__ import annotations

from enum import StrEnum


class SideEffect(StrEnum):
    """What a skill may do beyond computing its output. Each class allows exactly one kind of effect."""

    READ_ONLY = "READ_ONLY"
    FILE_WRITE = "FILE_WRITE"
    NETWORK = "NETWORK"
    SUBPROCESS = "SUBPROCESS"
    SECRET_READ = "SECRET_READ"  # noqa: S105 - a class name, not a secret
    GPU_KERNEL = "GPU_KERNEL"

    @classmethod
    def for_python_skills(cls) -> tuple[SideEffect, ...]:
        """The classes `propose-skill` accepts (GPU_KERNEL belongs to `propose-kernel`)."""
        return (cls.READ_ONLY, cls.FILE_WRITE, cls.NETWORK, cls.SUBPROCESS, cls.SECRET_READ)
