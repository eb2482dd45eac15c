"""The statistics behind the speed gate (pure Python, so they are tested without a GPU).

A speedup is the ratio of medians (baseline / candidate) of per-call times; its 95% interval comes
from a
percentile bootstrap that resamples both sample sets independently. Promotion needs the interval's
lower
bound at or above the spec's MIN_SPEEDUP, so a lucky run cannot promote a kernel that is not faster.
Times below the roofline floor are physically impossible and reject the measurement, and CUDA-event
times
that disagree with the host clock mean the timer cannot be trusted.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SAMPLES = 100
DEFAULT_RESAMPLES = 2000
ROOFLINE_SLACK = 0.5  # a measured peak is below the true one; only a time under half the floor is impossible
HOST_CLOCK_SLACK_MS = 0.05
MAX_CLOCK_VIOLATIONS = 0.01
ORDER_EFFECT_RATIO = 1.25  # a baseline this much slower right after the candidate: work was deferred
ORDER_EFFECT_MIN_MS = 0.05
WALL_SLACK_S = 1.0

# Spec-sheet peaks (dense), the most a device can do: bytes/s of DRAM and flop/s per dtype (fp32 at
# TF32 tensor-core rate, which torch may use). A measured peak is lower; the floor uses the higher,
# so an honest kernel is never called impossible because the probe ran slow.
DEVICE_PEAKS: tuple[tuple[str, float, dict[str, float]], ...] = (
    ("H200", 4.8e12, {"float16": 989e12, "bfloat16": 989e12, "float32": 494e12}),
    ("H100 PCIe", 2.0e12, {"float16": 756e12, "bfloat16": 756e12, "float32": 378e12}),
    ("H100", 3.35e12, {"float16": 989e12, "bfloat16": 989e12, "float32": 494e12}),
    ("A100", 2.04e12, {"float16": 312e12, "bfloat16": 312e12, "float32": 156e12}),
    ("L4", 0.3e12, {"float16": 121e12, "bfloat16": 121e12, "float32": 60e12}),
    ("RTX 4090", 1.01e12, {"float16": 165e12, "bfloat16": 165e12, "float32": 82.6e12}),
)


def device_peaks(device_name: str) -> tuple[float | None, dict[str, float]]:
    """(DRAM bytes/s, {dtype: flop/s}) from the table for a device name, or (None, {})."""
    for marker, bandwidth, flops in DEVICE_PEAKS:
        if marker.lower() in device_name.lower():
            return bandwidth, dict(flops)
    return None, {}


def highest(*values: float | None) -> float | None:
    known = [value for value in values if value]
    return max(known) if known else None


def order_effect(baseline_ms: Sequence[float], baseline_first: Sequence[bool]) -> float | None:
    """median(baseline after the candidate) / median(baseline before it); None without both."""
    after = [ms for ms, first in zip(baseline_ms, baseline_first, strict=True) if not first]
    before = [ms for ms, first in zip(baseline_ms, baseline_first, strict=True) if first]
    if not after or not before:
        return None
    return median(after) / median(before)


def deferred_work(baseline_ms: Sequence[float], baseline_first: Sequence[bool]) -> bool:
    """Whether the baseline is markedly slower when it runs right after the candidate (the
    candidate's work spilled into the next call), by ratio and by an absolute margin."""
    ratio = order_effect(baseline_ms, baseline_first)
    if ratio is None:
        return False
    before = median([ms for ms, first in zip(baseline_ms, baseline_first, strict=True) if first])
    return ratio > ORDER_EFFECT_RATIO and before * (ratio - 1) > ORDER_EFFECT_MIN_MS


def fits_wall_clock(
    samples_host_ms: Sequence[Sequence[float]],
    row_start: float,
    row_end: float,
    parent_start: float,
    parent_end: float,
) -> bool:
    """The child's row lies inside the parent's own wall clock around the child, and the host
    times it reports add up to no more than the row's span (a forged or inflated time does not)."""
    if not parent_start - WALL_SLACK_S <= row_start <= row_end <= parent_end + WALL_SLACK_S:
        return False
    total_s = sum(sum(times) for times in samples_host_ms) / 1e3
    return total_s <= (row_end - row_start) * 1.01 + 0.01


@dataclass(frozen=True)
class SpeedupEstimate:
    """baseline median / candidate median, with a bootstrap confidence interval."""

    speedup: float
    low: float
    high: float
    confidence: float
    candidate_ms: float
    baseline_ms: float

    def meets(self, minimum: float) -> bool:
        """Whether the lower bound clears ``minimum`` (the promotion rule)."""
        return self.low >= minimum


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no samples")
    return float(statistics.median(values))


def bootstrap_speedup(
    baseline_ms: Sequence[float],
    candidate_ms: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> SpeedupEstimate:
    """Percentile bootstrap of median(baseline) / median(candidate)."""
    if len(baseline_ms) < 2 or len(candidate_ms) < 2:
        raise ValueError("the bootstrap needs at least two samples on each side")
    if min(baseline_ms) <= 0 or min(candidate_ms) <= 0:
        raise ValueError("times must be positive")
    rng = random.Random(seed)  # noqa: S311 - statistics, not security
    base = list(baseline_ms)
    cand = list(candidate_ms)
    ratios = []
    for _ in range(resamples):
        base_median = statistics.median(rng.choices(base, k=len(base)))
        cand_median = statistics.median(rng.choices(cand, k=len(cand)))
        ratios.append(base_median / cand_median)
    ratios.sort()
    tail = (1 - confidence) / 2
    low = _percentile(ratios, tail)
    high = _percentile(ratios, 1 - tail)
    candidate = median(cand)
    baseline = median(base)
    return SpeedupEstimate(baseline / candidate, low, high, confidence, candidate, baseline)


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile of already sorted values."""
    position = fraction * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    weight = position - lower
    return sorted_values[lower] * (1 - weight) + sorted_values[upper] * weight


def roofline_floor_ms(
    flops: float | None,
    bytes_moved: float | None,
    peak_flops_per_s: float | None,
    bandwidth_bytes_per_s: float | None,
) -> float | None:
    """The fastest time the machine allows: max(bytes / bandwidth, flops / peak), in ms (None if
    unknown)."""
    bounds = []
    if flops and peak_flops_per_s:
        bounds.append(flops / peak_flops_per_s)
    if bytes_moved and bandwidth_bytes_per_s:
        bounds.append(bytes_moved / bandwidth_bytes_per_s)
    return max(bounds) * 1e3 if bounds else None


def is_impossible(kernel_ms: float, floor_ms: float | None, slack: float = ROOFLINE_SLACK) -> bool:
    """A time under ``slack`` x the roofline floor cannot be real work: the timing or the output is
    fake. Judge the fastest sample: one impossible call is enough."""
    return floor_ms is not None and kernel_ms < slack * floor_ms


def roofline_fraction(kernel_ms: float, floor_ms: float | None) -> float | None:
    """How close to the machine's limit the kernel runs (1.0 = at the measured roofline)."""
    return None if floor_ms is None or kernel_ms <= 0 else floor_ms / kernel_ms


def clock_violations(event_ms: Sequence[float], host_ms: Sequence[float], slack_ms: float = HOST_CLOCK_SLACK_MS) -> int:
    """Samples whose device time exceeds the host time around the same call (impossible if
    honest)."""
    return sum(1 for event, host in zip(event_ms, host_ms, strict=True) if event > host + slack_ms)


def clocks_agree(event_ms: Sequence[float], host_ms: Sequence[float]) -> bool:
    """The device timer is trusted when at most 1% of samples contradict the host clock."""
    if not event_ms:
        return False
    return clock_violations(event_ms, host_ms) <= MAX_CLOCK_VIOLATIONS * len(event_ms)
