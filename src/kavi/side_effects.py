"""The side-effect classes a skill can declare.

A leaf module (stdlib only): skills import it through :mod:`kavi.skill`, and the run-time child imports it
before any skill byte is executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


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


class EffectDeclaration(Protocol):
    """What a spec declares about its effects; :class:`kavi.spec.SkillSpec` satisfies it, and so does
    :class:`DeclaredEffects`, which the stdlib-only run path builds from the frozen spec's JSON."""

    @property
    def side_effect(self) -> SideEffect: ...

    @property
    def write_roots(self) -> tuple[str, ...]: ...

    @property
    def allow_hosts(self) -> tuple[str, ...]: ...

    @property
    def executables(self) -> tuple[str, ...]: ...

    @property
    def secrets(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class DeclaredEffects:
    side_effect: SideEffect
    write_roots: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    read_roots: tuple[str, ...] = ()

    @classmethod
    def from_spec_data(cls, data: Mapping[str, Any]) -> DeclaredEffects:
        return cls(
            side_effect=SideEffect(data["side_effect"]),
            write_roots=tuple(data.get("write_roots", ())),
            allow_hosts=tuple(data.get("allow_hosts", ())),
            executables=tuple(data.get("executables", ())),
            secrets=tuple(data.get("secrets", ())),
            read_roots=tuple(data.get("read_roots", ())),
        )
