"""What `kavi forge --optimize` knows about a candidate's speed, and where it gets it from.

One seam: a :class:`SpeedSource` measures a kernel file against its spec. The product's source,
:class:`GpuSpeedSource`, runs the speed gate's protocol (:func:`kavi.gpu.bench.run_benchmark`) on a CUDA GPU
and refuses, with the reason, anywhere else; nothing in kavi ever invents a time. Tests of the search logic
give the loop a source of their own that turns timings they supply into the same :class:`Measurement`.

A candidate is as fast as its slowest (size, dtype): its speedup, interval and roofline fraction are that
row's, the same row the promotion rule (every row's lower bound >= MIN_SPEEDUP) is decided by.

Picking the best of N noisy measurements favours the luckiest one, so the speedup that promotes is measured
again after the search, on fresh seeds, with an interval whose confidence is corrected for the N attempts
(Šidák: each of N intervals at ``confidence ** (1 / N)`` keeps the family at ``confidence``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kavi.gpu.bench import BenchRow, no_gpu_reason
from kavi.gpu.spec import KernelSpec

FAMILY_CONFIDENCE = 0.95


def sidak_confidence(comparisons: int, family: float = FAMILY_CONFIDENCE) -> float:
    """The confidence each of ``comparisons`` intervals needs so all hold together with ``family``."""
    if comparisons < 1:
        raise ValueError("at least one comparison")
    if not 0 < family < 1:
        raise ValueError("the family confidence lies strictly between 0 and 1")
    return float(family ** (1.0 / comparisons))


@dataclass(frozen=True)
class SizeSpeed:
    """One (size, dtype) of a measurement."""

    size: Any
    dtype: str
    kernel_ms: float
    torch_ms: float
    speedup: float
    low: float
    high: float
    roofline_fraction: float | None
    trustworthy: bool
    notes: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: BenchRow) -> SizeSpeed:
        return cls(
            size=list(row.size) if isinstance(row.size, tuple) else row.size,
            dtype=row.dtype,
            kernel_ms=row.kernel_ms,
            torch_ms=row.torch_ms,
            speedup=row.speedup,
            low=row.speedup_low,
            high=row.speedup_high,
            roofline_fraction=row.roofline_fraction,
            trustworthy=row.trustworthy,
            notes=row.notes,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "dtype": self.dtype,
            "kernel_ms": self.kernel_ms,
            "torch_ms": self.torch_ms,
            "speedup": self.speedup,
            "speedup_low": self.low,
            "speedup_high": self.high,
            "roofline_fraction": self.roofline_fraction,
            "trustworthy": self.trustworthy,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Measurement:
    """Every (size, dtype) of one candidate, measured at one confidence on one set of seeds."""

    rows: tuple[SizeSpeed, ...]
    confidence: float
    salt: int
    device: str

    @classmethod
    def from_rows(cls, rows: Sequence[BenchRow], *, confidence: float, salt: int) -> Measurement:
        if not rows:
            raise ValueError("a measurement needs at least one row")
        return cls(tuple(SizeSpeed.from_row(row) for row in rows), confidence, salt, rows[0].device)

    @property
    def slowest(self) -> SizeSpeed:
        """The row with the lowest speedup: what the kernel's speed is judged by."""
        return min(self.rows, key=lambda row: row.speedup)

    @property
    def speedup(self) -> float:
        return self.slowest.speedup

    @property
    def low(self) -> float:
        """The lowest lower bound over all rows (the promotion rule's number)."""
        return min(row.low for row in self.rows)

    @property
    def trustworthy(self) -> bool:
        """Every row did real work, on a timer that agrees with the host clock, with correct outputs."""
        return all(row.trustworthy for row in self.rows)

    def problems(self) -> list[str]:
        return [
            f"{row.size} {row.dtype}: {'; '.join(row.notes) or 'untrustworthy'}"
            for row in self.rows
            if not row.trustworthy
        ]

    def summary(self) -> dict[str, Any]:
        """What the next build packet carries: the interval, the roofline fraction, the slowest size."""
        slowest = self.slowest
        return {
            "speedup": round(slowest.speedup, 4),
            "speedup_interval": [round(slowest.low, 4), round(slowest.high, 4)],
            "confidence": round(self.confidence, 6),
            "roofline_fraction": None if slowest.roofline_fraction is None else round(slowest.roofline_fraction, 4),
            "slowest_size": {"size": slowest.size, "dtype": slowest.dtype, "kernel_ms": slowest.kernel_ms},
            "baseline": "torch eager (the reference)",
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "confidence": self.confidence,
            "lowest_bound": self.low,
            "trustworthy": self.trustworthy,
            "salt": self.salt,
            "device": self.device,
            "rows": [row.to_json() for row in self.rows],
        }


class SpeedSource(Protocol):
    """Measures a candidate kernel; the only place the optimise loop gets a time from."""

    def unavailable(self) -> str | None:
        """Why nothing can be measured here (None when it can)."""
        ...

    def measure(self, spec: KernelSpec, kernel_file: Path, *, salt: int, confidence: float) -> Measurement:
        """Time ``kernel_file`` on inputs seeded by ``salt``, with intervals at ``confidence``."""
        ...


class SpeedUnmeasured(Exception):
    """The source ran but produced no rows (the benchmark process failed, or no GPU after all)."""


class GpuSpeedSource:
    """The speed gate's protocol on this machine's CUDA GPU; unavailable without one."""

    def __init__(self, *, timeout_s: float = 600.0, require_isolation: bool = False) -> None:
        self.timeout_s, self.require_isolation = timeout_s, require_isolation

    def unavailable(self) -> str | None:
        return no_gpu_reason()

    def measure(self, spec: KernelSpec, kernel_file: Path, *, salt: int, confidence: float) -> Measurement:
        from kavi.gpu.bench import run_benchmark

        outcome = run_benchmark(
            spec,
            kernel_file,
            timeout_s=self.timeout_s,
            require_isolation=self.require_isolation,
            salt=salt,
            confidence=confidence,
        )
        if not outcome.rows:
            raise SpeedUnmeasured(outcome.reason or "the benchmark produced no rows")
        return Measurement.from_rows(outcome.rows, confidence=confidence, salt=salt)
