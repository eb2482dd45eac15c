"""A kernel's gate reports read back as tables: correctness per check size and dtype, speed per bench size.

The ledger keeps each gate's report as text (the facts a gate computed are not stored), so the Kernels page
reads the two formats the kernel gates write: the speed gate's ``SIZE DTYPE: kernel X ms, torch Y ms,
speedup S [LOW, HIGH], roofline R%`` lines (:class:`kavi.gates.kernel.KernelSpeedGate`) and the correctness
protocol's ``[check] case N (size S, DTYPE, seed ...)`` failure lines and ``SKIPPED a, b (needs a GPU)``
summary (:mod:`kavi.gpu.correctness`). A line that matches neither is shown as it is in the report, never
guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kavi.gpu.spec import KernelSpec

_SPEED_LINE = re.compile(
    r"^(?P<size>.+?) (?P<dtype>\w+): kernel (?P<kernel_ms>[\d.]+) ms, torch (?P<torch_ms>[\d.]+) ms, "
    r"speedup (?P<speedup>[\d.]+) \[(?P<low>[\d.]+), (?P<high>[\d.]+)\](?:, roofline (?P<roofline>\d+)%)?$"
)
_FAILURE_LINE = re.compile(r"^\[(?P<check>[\w-]+)\] case \d+ \(size (?P<size>.+?), (?P<dtype>\w+), seed")
_SKIPPED_DTYPES = re.compile(r"SKIPPED (?P<dtypes>[\w, ]+) \(needs a GPU\)")


def size_label(size: Any) -> str:
    """A size as the gates print it: ``4099`` or ``(64, 128)``."""
    return str(tuple(size)) if isinstance(size, list | tuple) else str(size)


@dataclass(frozen=True)
class SpeedRow:
    size: str
    dtype: str
    kernel_ms: float
    torch_ms: float
    speedup: float
    low: float
    high: float
    roofline: float | None  # a fraction of the roofline floor, 0..1


@dataclass
class SpeedResult:
    """``measured`` False: no machine timed it (``reason`` says why); rows then are empty."""

    measured: bool
    status: str | None
    summary: str
    reason: str | None
    min_speedup: float
    bench_sizes: list[str]
    dtypes: list[str]
    rows: list[SpeedRow] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)


def parse_speed_report(report: str) -> tuple[list[SpeedRow], list[str]]:
    """The measured rows and every line that is not one (the gate's failure lines)."""
    rows, other = [], []
    for line in report.splitlines():
        matched = _SPEED_LINE.match(line.strip())
        if matched is None:
            if line.strip():
                other.append(line.strip())
            continue
        roofline = matched["roofline"]
        rows.append(
            SpeedRow(
                matched["size"],
                matched["dtype"],
                float(matched["kernel_ms"]),
                float(matched["torch_ms"]),
                float(matched["speedup"]),
                float(matched["low"]),
                float(matched["high"]),
                None if roofline is None else int(roofline) / 100,
            )
        )
    return rows, other


def speed_result(spec: KernelSpec, status: str | None, summary: str, report: str) -> SpeedResult:
    rows, other = parse_speed_report(report)
    if status is None:
        reason: str | None = "not verified yet"
    elif rows:
        reason = None
    else:
        reason = summary.removeprefix("unmeasured: ") or "no measurement was recorded"
    return SpeedResult(
        measured=bool(rows),
        status=status,
        summary=summary,
        reason=reason,
        min_speedup=spec.min_speedup,
        bench_sizes=[size_label(size) for size in spec.bench_sizes],
        dtypes=list(spec.dtypes),
        rows=rows,
        other_lines=other,
    )


def correctness_table(spec: KernelSpec, status: str | None, report: str, summary: str) -> dict[str, Any]:
    """``{"sizes", "dtypes", "cells": {(size, dtype): (verdict, detail)}, "status", "summary"}``.

    A cell is ``fail`` with the first failed check reported for that size and dtype, ``skipped`` for a dtype
    the gate could not run here, ``pass`` when the gate passed, and ``not reported`` for a cell of a failed
    gate with no failure line of its own (the gate stops listing after a few)."""
    sizes = [size_label(size) for size in spec.check_sizes]
    dtypes = list(spec.dtypes)
    failures: dict[tuple[str, str], str] = {}
    for line in report.splitlines():
        matched = _FAILURE_LINE.match(line.strip())
        if matched is not None:
            failures.setdefault((matched["size"], matched["dtype"]), matched["check"])
    skipped_dtypes: set[str] = set()
    found = _SKIPPED_DTYPES.search(summary) or _SKIPPED_DTYPES.search(report)
    if found is not None:
        skipped_dtypes = {dtype.strip() for dtype in found["dtypes"].split(",")}
    cells: dict[tuple[str, str], tuple[str, str]] = {}
    for size in sizes:
        for dtype in dtypes:
            cells[(size, dtype)] = _cell(status, failures.get((size, dtype)), dtype in skipped_dtypes, summary)
    return {"sizes": sizes, "dtypes": dtypes, "cells": cells, "status": status, "summary": summary}


def _cell(status: str | None, failed_check: str | None, skipped: bool, summary: str) -> tuple[str, str]:
    if status is None:
        return "unverified", "no verification yet"
    if failed_check is not None:
        return "fail", f"failed check: {failed_check}"
    if skipped:
        return "skipped", "needs a GPU"
    if status == "skipped":
        return "skipped", summary
    if status == "pass":
        return "pass", "every check passed"
    return "not reported", "the gate failed elsewhere"
