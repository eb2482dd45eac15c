"""forge --optimize: after a kernel verifies, keep building faster candidates and keep the best.

The search: forge (:func:`kavi.stages.forge.forge_skill`) until the kernel verifies; measure it; then each
next build packet carries the best candidate's speed (interval, roofline fraction, slowest size) and every
verified candidate is measured in turn. It stops at the target speedup, at a plateau (no verified candidate
beat the best by ``min_gain`` in ``patience`` attempts in a row) or when the budget is spent. Every attempt
is a recorded build and verification, and every measurement a ``forge.measured`` event.

The best is what promotion gets: when it is not the latest build, it is built again by forge itself (its own
files, no model call) and verified again, because promotion takes the latest verified build. Then its speed
is measured once more on fresh seeds with the interval's confidence corrected for the number of candidates
measured (:func:`kavi.gpu.speed.sidak_confidence`): the best of N noisy measurements is biased upwards, the
re-measurement is not. That number is recorded (``forge.remeasured``), and a kernel whose corrected lower
bound is below its MIN_SPEEDUP ends ESCALATED, which promotion refuses.

Times come only from a :class:`~kavi.gpu.speed.SpeedSource`; without a GPU the product's source is
unavailable and this refuses before anything is built.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

from kavi.builders.base import BuilderOptions, BuildOutcome, BuildPacket, BuildStatus, TraceEvent
from kavi.errors import DeviceUnavailableError, UsageError
from kavi.gpu.spec import KernelSpec
from kavi.gpu.speed import Measurement, SpeedSource, SpeedUnmeasured, sidak_confidence
from kavi.kinds import kind_of
from kavi.ledger.models import Proposal, ProposalStatus
from kavi.ledger.store import append_event
from kavi.stages.build import build_skill
from kavi.stages.common import Forge, get_proposal, latest_build
from kavi.stages.forge import (
    Budget,
    Forged,
    Progress,
    _budget_spent,
    _escalate,
    _escalation,
    forge_skill,
)
from kavi.stages.research import Researched, research_build
from kavi.stages.verify import UNOBSERVED, GateProgress, candidate_files, verify_skill

SEARCH_CONFIDENCE = 0.95
DEFAULT_BUDGET = Budget()


@dataclass(frozen=True)
class Goal:
    """When the search stops before the budget: at ``target_speedup`` (the lowest lower bound over every
    size reaches it), or after ``patience`` attempts in a row that did not beat the best by ``min_gain``."""

    target_speedup: float | None = None
    patience: int = 2
    min_gain: float = 0.02


@dataclass
class Candidate:
    """A verified, measured candidate of the search."""

    attempt: int
    build_id: str
    candidate_sha256: str
    measurement: Measurement


@dataclass
class Optimized(Forged):
    stop_reason: str = ""
    best: dict[str, Any] | None = None
    remeasured: dict[str, Any] | None = None
    measured: list[dict[str, Any]] = field(default_factory=list)


def optimize_kernel(
    forge: Forge,
    reference: str,
    *,
    speed: SpeedSource,
    goal: Goal = Goal(),
    builder_name: str | None = None,
    builder_options: dict[str, Any] | None = None,
    budget: Budget = DEFAULT_BUDGET,
    advice_options: dict[str, Any] | None = None,
    progress: Progress = lambda _stage, _data: None,
    gate_progress: GateProgress = UNOBSERVED,
) -> Optimized:
    """Forge ``reference`` until it verifies, then search for faster candidates within ``budget``."""
    unavailable = speed.unavailable()
    if unavailable is not None:
        raise DeviceUnavailableError(
            f"cannot optimise kernel speed here: {unavailable}",
            hint="speed is only measured on a CUDA GPU; run `kavi forge NAME` without --optimize to build and "
            "verify the kernel here, and --optimize on a machine with a GPU",
        )
    if goal.target_speedup is not None and goal.target_speedup <= 0:
        raise UsageError("--target-speedup must be positive")
    with forge.ledger.reading() as session:
        proposal = get_proposal(session, reference)
        spec = forge.spec_of(proposal)
    if not kind_of(spec.kind).speed_optimizable:
        raise UsageError(
            f"{proposal.name} is a {kind_of(spec.kind).noun}: --optimize searches for faster kernels",
            hint=f"run `kavi forge {proposal.name}` without --optimize",
        )
    first = forge_skill(
        forge,
        proposal.id,
        builder_name=builder_name,
        builder_options=builder_options,
        budget=budget,
        advice_options=advice_options,
        progress=progress,
        gate_progress=gate_progress,
    )
    result = Optimized(**first.__dict__)
    if first.status != ProposalStatus.VERIFIED:
        return result
    search = _Search(forge, cast(KernelSpec, spec), proposal.id, speed, goal, result, progress)
    search.measure_latest(int(result.attempts[-1]["attempt"]))
    search.run(budget, builder_name, builder_options, advice_options, gate_progress)
    return search.finish(gate_progress)


@dataclass
class _Search:
    forge: Forge
    spec: KernelSpec
    proposal_id: str
    speed: SpeedSource
    goal: Goal
    result: Optimized
    progress: Progress
    best: Candidate | None = None
    stale: int = 0

    def run(
        self,
        budget: Budget,
        builder_name: str | None,
        builder_options: dict[str, Any] | None,
        advice_options: dict[str, Any] | None,
        gate_progress: GateProgress,
    ) -> None:
        started = time.monotonic()
        previous: Researched | None = None
        while not self.result.stop_reason:
            stop = self._stop_reason(budget, started)
            if stop:
                self.result.stop_reason = stop
                return
            self.progress("building", {"attempt": len(self.result.attempts) + 1})
            built = build_skill(
                self.forge,
                self.proposal_id,
                builder_name=builder_name or self.forge.workspace.config.build.builder,
                builder_options=builder_options,
                previous_failure=previous.previous_failure() if previous else None,
                performance=self._packet_performance(),
            )
            self.result.cost_usd += built.cost_usd or 0.0
            record: dict[str, Any] = {"attempt": built.attempt, "build_id": built.build_id, "build": built.status}
            self.result.attempts.append(record)
            self.progress("build", record)
            if built.status == BuildStatus.SUCCEEDED:
                verified = verify_skill(self.forge, self.proposal_id, progress=gate_progress)
                record.update(verification_id=verified.verification_id, verification=verified.status)
                self.progress("verify", record)
                if verified.passed:
                    previous = None
                    self.measure_latest(built.attempt)
                    continue
            note = research_build(self.forge, built.build_id, advice_options=advice_options)
            record.update(kind=note.kind, summary=note.summary)
            self.progress("research", record)
            escalation = _escalation(note, None)
            if escalation:
                self.result.stop_reason = f"escalated: {escalation}"
                return
            previous = note
            self._count_stale()

    def measure_latest(self, attempt: int) -> None:
        """Measure the latest (verified) build and record it; it becomes the best when it beats it."""
        with self.forge.ledger.reading() as session:
            build = latest_build(session, self.proposal_id)
            assert build is not None and build.candidate_sha256 is not None
            build_id, candidate = build.id, build.candidate_sha256
        salt = secrets.randbits(31)
        try:
            measurement = self._measure(candidate, salt=salt, confidence=SEARCH_CONFIDENCE)
        except SpeedUnmeasured as unmeasured:
            self._record("forge.measured", build_id, {"attempt": attempt, "unmeasured": str(unmeasured)})
            self.result.measured.append({"attempt": attempt, "build_id": build_id, "unmeasured": str(unmeasured)})
            self._count_stale()
            return
        self._record("forge.measured", build_id, {"attempt": attempt, **measurement.to_json()})
        entry = {"attempt": attempt, "build_id": build_id, **measurement.summary()}
        entry["trustworthy"] = measurement.trustworthy
        self.result.measured.append(entry)
        self.progress("measure", entry)
        if not measurement.trustworthy:
            self._count_stale()
            return
        if self.best is None or measurement.speedup > self.best.measurement.speedup * (1 + self.goal.min_gain):
            self.best, self.stale = Candidate(attempt, build_id, candidate, measurement), 0
        else:
            if measurement.speedup > self.best.measurement.speedup:  # better, by less than the gain that counts
                self.best = Candidate(attempt, build_id, candidate, measurement)
            self._count_stale()
        target = self.goal.target_speedup
        if target is not None and self.best is not None and self.best.measurement.low >= target:
            self.result.stop_reason = (
                f"the target speedup {target:g} is reached (lower bound {self.best.measurement.low:.3f})"
            )

    def finish(self, gate_progress: GateProgress) -> Optimized:
        result = self.result
        if result.stop_reason.startswith("escalated: "):
            return cast(Optimized, _escalate(self.forge, result, result.stop_reason.removeprefix("escalated: ")))
        if self.best is None:
            return cast(
                Optimized,
                _escalate(self.forge, result, f"no verified candidate could be measured ({result.stop_reason})"),
            )
        best = self.best
        result.best = {"attempt": best.attempt, "build_id": best.build_id, "candidate_sha256": best.candidate_sha256}
        result.best.update(best.measurement.summary())
        with self.forge.ledger.reading() as session:
            latest = latest_build(session, self.proposal_id)
            latest_id = latest.id if latest else None
        if latest_id != best.build_id and not self._reinstate(best, gate_progress):
            return cast(Optimized, _escalate(self.forge, result, "the best candidate did not verify again"))
        return self._remeasure(best)

    def _remeasure(self, best: Candidate) -> Optimized:
        """The speed that promotes, measured again on fresh seeds at the Šidák-corrected confidence."""
        result = self.result
        comparisons = max(1, len(result.measured))
        confidence = sidak_confidence(comparisons)
        salt = secrets.randbits(31)
        with self.forge.ledger.reading() as session:
            build = latest_build(session, self.proposal_id)
            assert build is not None
        try:
            again = self._measure(best.candidate_sha256, salt=salt, confidence=confidence)
        except SpeedUnmeasured as unmeasured:
            return cast(Optimized, _escalate(self.forge, result, f"the re-measurement failed: {unmeasured}"))
        minimum = self.spec.min_speedup
        passed = again.trustworthy and again.low >= minimum
        payload = {
            "candidate_sha256": best.candidate_sha256,
            "search_attempt": best.attempt,
            "comparisons": comparisons,
            "family_confidence": SEARCH_CONFIDENCE,
            "correction": "sidak",
            "search_speedup": best.measurement.speedup,
            "search_interval": [best.measurement.slowest.low, best.measurement.slowest.high],
            "min_speedup": minimum,
            "passed": passed,
            "stop_reason": result.stop_reason,
            **again.to_json(),
        }
        self._record("forge.remeasured", build.id, payload)
        result.remeasured = {key: value for key, value in payload.items() if key != "rows"}
        self.progress("remeasure", result.remeasured)
        if not passed:
            why = "; ".join(again.problems()) or (
                f"the corrected lower bound {again.low:.3f} (confidence {confidence:.4f} for {comparisons} candidates) "
                f"is below MIN_SPEEDUP {minimum:g}"
            )
            return cast(Optimized, _escalate(self.forge, result, f"the speedup did not survive re-measurement: {why}"))
        result.status = ProposalStatus.VERIFIED
        result.reason = (
            f"kept attempt {best.attempt} ({result.stop_reason}); re-measured on fresh seeds: speedup "
            f"{again.speedup:.3f} [{again.slowest.low:.3f}, {again.slowest.high:.3f}] at {confidence:.4f} "
            f"confidence (Šidák, {comparisons} candidates)"
        )
        return result

    def _reinstate(self, best: Candidate, gate_progress: GateProgress) -> bool:
        """Build the best candidate again (its own files, no model call) so promotion takes it."""
        builder = KeepBestBuilder(candidate_files(self.forge, best.candidate_sha256), best.attempt)
        self.progress("building", {"attempt": len(self.result.attempts) + 1})
        built = build_skill(self.forge, self.proposal_id, builder=builder)
        record: dict[str, Any] = {
            "attempt": built.attempt,
            "build_id": built.build_id,
            "build": built.status,
            "builder": builder.name,
        }
        self.result.attempts.append(record)
        self.progress("build", record)
        if built.status != BuildStatus.SUCCEEDED or built.candidate_sha256 != best.candidate_sha256:
            return False
        verified = verify_skill(self.forge, self.proposal_id, progress=gate_progress)
        record.update(verification_id=verified.verification_id, verification=verified.status)
        self.progress("verify", record)
        return verified.passed

    def _measure(self, candidate_sha256: str, *, salt: int, confidence: float) -> Measurement:
        with tempfile.TemporaryDirectory(prefix="kavi-optimize-") as scratch:
            for path, content in candidate_files(self.forge, candidate_sha256).items():
                target = Path(scratch) / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            return self.speed.measure(
                self.spec, Path(scratch) / self.spec.kernel_path, salt=salt, confidence=confidence
            )

    def _packet_performance(self) -> dict[str, Any] | None:
        if self.best is None:
            return None
        return {
            "to_beat": {"attempt": self.best.attempt, **self.best.measurement.summary()},
            "target_speedup": self.goal.target_speedup,
            "min_speedup": self.spec.min_speedup,
            "note": "Keep the kernel correct; only a verified candidate that measures faster is kept.",
        }

    def _count_stale(self) -> None:
        self.stale += 1
        if self.stale >= self.goal.patience and not self.result.stop_reason:
            self.result.stop_reason = f"a plateau: {self.stale} attempt(s) in a row without a faster candidate"

    def _stop_reason(self, budget: Budget, started: float) -> str | None:
        if self.result.stop_reason:
            return self.result.stop_reason
        if len(self.result.attempts) >= budget.max_attempts:
            return f"the budget of {budget.max_attempts} attempt(s) is spent"
        return _budget_spent(budget, self.result, started)

    def _record(self, kind: str, build_id: str, payload: dict[str, Any]) -> None:
        with self.forge.ledger.transaction() as session:
            proposal = session.get(Proposal, self.proposal_id)
            assert proposal is not None
            append_event(session, kind, payload, proposal_id=proposal.id, build_id=build_id)


class KeepBestBuilder:
    """Forge's own builder for the end of a search: the best candidate's exact files, no model call."""

    name: ClassVar[str] = "keep-best"
    options_model: ClassVar[type[BuilderOptions]] = BuilderOptions

    def __init__(self, files: dict[str, bytes], attempt: int) -> None:
        self.files, self.attempt = files, attempt

    def available(self) -> tuple[bool, str]:
        return True, "rebuilds the fastest verified candidate"

    def build(self, packet: BuildPacket, sandbox: Path) -> BuildOutcome:
        for path, content in self.files.items():
            target = sandbox / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        trace = (TraceEvent("keep_best", {"from_attempt": self.attempt, "files": sorted(self.files)}),)
        return BuildOutcome(BuildStatus.SUCCEEDED, trace=trace)


def gpu_optimize(forge: Forge, reference: str, *, target_speedup: float | None, **forging: Any) -> Optimized:
    """:func:`optimize_kernel` with the product's source: this machine's GPU, under the workspace's settings
    (the speed gate's timeout and isolation). Refuses, with the reason, where there is no GPU."""
    from kavi.gpu.speed import GpuSpeedSource

    config = forge.workspace.config
    speed = GpuSpeedSource(timeout_s=max(config.verify.timeout_s, 600.0), require_isolation=config.isolation.require)
    return optimize_kernel(forge, reference, speed=speed, goal=Goal(target_speedup=target_speedup), **forging)
