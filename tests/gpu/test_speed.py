"""The optimise loop's numbers: the Šidák correction and a measurement judged by its slowest size."""

from __future__ import annotations

import pytest

from kavi.gpu.bench import BenchRow
from kavi.gpu.speed import GpuSpeedSource, Measurement, sidak_confidence


def _row(size: int, kernel_ms: float, low: float, high: float, *, impossible: bool = False) -> BenchRow:
    return BenchRow(
        kernel="k",
        size=size,
        dtype="float16",
        kernel_ms=kernel_ms,
        torch_ms=1.0,
        speedup=1.0 / kernel_ms,
        speedup_low=low,
        speedup_high=high,
        compiled_ms=None,
        speedup_vs_compiled=None,
        floor_ms=0.1,
        roofline_fraction=0.1 / kernel_ms,
        impossible=impossible,
        clocks_agree=True,
        outputs_correct=True,
        samples=100,
        device="test",
    )


def test_sidak_keeps_the_family_confidence() -> None:
    assert sidak_confidence(1) == pytest.approx(0.95)
    for attempts in (2, 5, 20):
        each = sidak_confidence(attempts)
        assert each > sidak_confidence(attempts - 1)
        assert each**attempts == pytest.approx(0.95)  # all intervals hold together with probability 0.95
    with pytest.raises(ValueError, match="at least one"):
        sidak_confidence(0)


def test_a_kernel_is_as_fast_as_its_slowest_size() -> None:
    measurement = Measurement.from_rows([_row(1, 0.5, 1.9, 2.1), _row(2, 0.8, 1.2, 1.3)], confidence=0.95, salt=7)
    assert measurement.slowest.size == 2 and measurement.speedup == pytest.approx(1.25)
    assert measurement.low == 1.2 and measurement.trustworthy
    summary = measurement.summary()
    assert summary["speedup_interval"] == [1.2, 1.3] and summary["slowest_size"]["size"] == 2
    assert summary["roofline_fraction"] == pytest.approx(0.125)
    faked = Measurement.from_rows([_row(1, 0.01, 90, 110, impossible=True)], confidence=0.95, salt=7)
    assert not faked.trustworthy and faked.problems()


def test_the_gpu_source_says_why_it_cannot_measure_without_a_gpu() -> None:
    from kavi.gpu.bench import no_gpu_reason

    reason = no_gpu_reason()
    if reason is None:
        pytest.skip("checks the behaviour on a machine without a GPU")
    assert GpuSpeedSource().unavailable() == reason and reason.startswith("no GPU")
