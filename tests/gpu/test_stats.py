"""The speed gate's statistics and timing loop, on synthetic samples (no GPU, no torch needed)."""

from __future__ import annotations

import random

import pytest

from kavi.gpu.stats import (
    bootstrap_speedup,
    clock_violations,
    clocks_agree,
    is_impossible,
    median,
    roofline_floor_ms,
    roofline_fraction,
)
from kavi.gpu.timing import Contender, collect_samples


def noisy(center: float, count: int, seed: int, spread: float = 0.05) -> list[float]:
    rng = random.Random(seed)
    return [center * (1 + rng.gauss(0, spread)) + abs(rng.gauss(0, spread * center)) for _ in range(count)]


def test_equal_distributions_give_an_interval_around_one():
    estimate = bootstrap_speedup(noisy(1.0, 200, 1), noisy(1.0, 200, 2))
    assert estimate.low < 1.0 < estimate.high
    assert not estimate.meets(1.0)
    assert 0.9 < estimate.speedup < 1.1


def test_a_twice_faster_candidate_is_detected_with_a_tight_interval():
    estimate = bootstrap_speedup(noisy(2.0, 150, 3), noisy(1.0, 150, 4))
    assert 1.8 < estimate.low <= estimate.speedup <= estimate.high < 2.2
    assert estimate.meets(1.5)
    assert not estimate.meets(2.5)
    assert estimate.candidate_ms == pytest.approx(median(noisy(1.0, 150, 4)))


def test_interval_narrows_with_more_samples_and_is_reproducible():
    few = bootstrap_speedup(noisy(1.2, 20, 5, 0.2), noisy(1.0, 20, 6, 0.2))
    many = bootstrap_speedup(noisy(1.2, 400, 5, 0.2), noisy(1.0, 400, 6, 0.2))
    assert (many.high - many.low) < (few.high - few.low)
    again = bootstrap_speedup(noisy(1.2, 400, 5, 0.2), noisy(1.0, 400, 6, 0.2))
    assert (again.low, again.high) == (many.low, many.high)


def test_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    covered = 0
    trials = 60
    for trial in range(trials):
        estimate = bootstrap_speedup(
            noisy(1.5, 100, 1000 + trial, 0.1),
            noisy(1.0, 100, 2000 + trial, 0.1),
            resamples=400,
            seed=trial,
        )
        # The true ratio of medians of these distributions is 1.5 (same noise shape, scaled).
        covered += estimate.low <= 1.5 <= estimate.high
    assert covered >= 0.85 * trials


def test_bootstrap_refuses_bad_samples():
    with pytest.raises(ValueError):
        bootstrap_speedup([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        bootstrap_speedup([1.0, 0.0], [1.0, 2.0])


def test_roofline_floor_and_impossible_times():
    # 1 GB at 1 TB/s = 1 ms; 1 TFLOP at 100 TFLOP/s = 10 ms: the floor is the larger.
    assert roofline_floor_ms(1e12, 1e9, 1e14, 1e12) == pytest.approx(10.0)
    assert roofline_floor_ms(None, 1e9, None, 1e12) == pytest.approx(1.0)
    assert roofline_floor_ms(None, None, 1e14, 1e12) is None
    assert is_impossible(0.4, 1.0)
    assert not is_impossible(0.9, 1.0)
    assert not is_impossible(0.001, None)
    assert roofline_fraction(2.0, 1.0) == pytest.approx(0.5)


def test_device_times_longer_than_the_host_clock_are_flagged():
    assert clock_violations([1.0, 2.0, 5.0], [1.1, 2.5, 3.0]) == 1
    assert clocks_agree([1.0] * 100, [1.2] * 100)
    assert not clocks_agree([1.0] * 90 + [9.0] * 10, [1.2] * 100)
    assert not clocks_agree([], [])


class FakeTimer:
    """Records the call order; device time is a fixed cost per function."""

    def __init__(self):
        self.calls = []

    def time_call(self, function, inputs):
        output = function(*inputs)
        self.calls.append((function.__name__, inputs[0]))
        return 1.0, 1.5, output


def test_collect_samples_interleaves_rotates_and_keeps_candidate_outputs():
    def candidate(value):
        return value * 10

    def baseline(value):
        return value * 10

    contenders = [
        Contender("candidate", candidate, [(0,), (1,), (2,)]),
        Contender("torch", baseline, [(5,), (6,)]),
    ]
    timer = FakeTimer()
    collect_samples(contenders, timer, samples=100, warmup=3, keep_outputs="candidate")
    timed = timer.calls[6:]  # after 3 warm-up calls each
    assert len(timed) == 200
    assert [name for name, _ in timed[:4]] == ["candidate", "baseline", "baseline", "candidate"]
    assert [value for name, value in timed if name == "candidate"][:4] == [0, 1, 2, 0]
    assert len(contenders[0].event_ms) == len(contenders[1].host_ms) == 100
    assert contenders[0].last_outputs == {0: 0, 1: 10, 2: 20}
    assert contenders[1].last_outputs == {}
