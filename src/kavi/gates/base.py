"""The Gate protocol and the result every gate returns.

A gate that finds a problem returns ``FAIL`` with its report; a gate whose tool is broken returns
``ERROR``; a gate that cannot run here (no GPU) returns ``SKIPPED`` with the reason. Gates never raise for
a bad candidate, and never touch the ledger or the workspace.

Each gate describes itself: ``name`` (what the ledger records), ``failure_kind`` (what its failure means to
research and to forge's escalation) and ``may_be_unmeasured`` (whether its ``SKIPPED`` result is a known
gap a person may accept at promotion, like a kernel's speed without a GPU, rather than a verification that
could not be completed). Which gates a kind runs, and in which order, is the kind's entry in
:mod:`kavi.kinds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from kavi.builders.base import FailureKind
from kavi.spec import Example, SkillSpec


class GateStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    FAIL = "fail"
    SKIPPED = "skipped"
    ERROR = "error"


@dataclass(frozen=True)
class GateResult:
    """What one gate concluded about one candidate."""

    gate: str
    status: GateStatus
    summary: str
    report: str = ""
    duration_s: float = 0.0
    isolation: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    layers: tuple[str, ...] | None = None  # isolation layers every child of this gate had; None: ran none

    @property
    def passed(self) -> bool:
        return self.status is GateStatus.PASS


@dataclass(frozen=True)
class GateContext:
    """Everything a gate may look at. ``sandbox`` holds the exact candidate bytes and nothing of the user's."""

    spec: SkillSpec
    sandbox: Path
    cache_dir: Path
    timeout_s: float = 120.0
    require_isolation: bool = False
    # Examples frozen at propose time that no builder saw; only the examples gate reads them.
    hidden_examples: tuple[Example, ...] = ()

    @property
    def skill_file(self) -> Path:
        return self.sandbox / self.spec.skill_path

    @property
    def test_file(self) -> Path:
        return self.sandbox / self.spec.test_path


@dataclass(frozen=True)
class GateSettings:
    """What the workspace decides for every gate of one verification, whatever the kind."""

    cache_dir: Path
    timeout_s: float
    require_isolation: bool
    hidden_examples: tuple[Example, ...] = ()  # frozen at propose, never shown to a builder (skills only)
    workspace_root: Path | None = None  # where a chain's gate finds its members' TRUSTED versions (read only)


ContextT = TypeVar("ContextT", contravariant=True)


class Gate(Protocol[ContextT]):
    """One verification check, run on a kind's context (:class:`GateContext` for a skill)."""

    name: ClassVar[str]
    failure_kind: ClassVar[FailureKind]
    may_be_unmeasured: ClassVar[bool]

    def applies_to(self, spec: Any) -> bool: ...

    def run(self, context: ContextT) -> GateResult: ...


def timed(gate: str, check: Callable[[], GateResult]) -> GateResult:
    """Run ``check``; turn an unexpected exception into an ``ERROR`` result so one broken tool never
    takes down a verification, and stamp the duration."""
    from kavi.sandbox.executor import recording_layers, weakest_layers

    start = time.perf_counter()
    with recording_layers() as runs:
        try:
            result = check()
        except Exception as exc:  # a gate's own crash is a result, recorded with its type and message
            result = GateResult(gate, GateStatus.ERROR, f"gate crashed: {type(exc).__name__}: {exc}")
    duration = time.perf_counter() - start
    return GateResult(
        gate=result.gate,
        status=result.status,
        summary=result.summary,
        report=result.report,
        duration_s=round(duration, 4),
        isolation=result.isolation,
        facts=result.facts,
        layers=weakest_layers(runs) if runs else result.layers,
    )
