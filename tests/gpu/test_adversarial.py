"""The gate self-test: every adversarial candidate is rejected by its named check; honest ones pass.

Each file in tests/gpu/adversarial/ names in its first line the check that must reject it. Screen
checks
run without torch; the dynamic checks run the candidate through Triton's CPU interpreter in a child.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.gates.base import GateStatus
from kavi.gates.kernel import KernelCorrectnessGate, KernelScreenGate
from kavi.gpu.screen import iter_checks

from .conftest import ADVERSARIAL, make_context, make_spec

pytest.importorskip("torch", reason="torch not installed: `uv sync --extra gpu`")
pytest.importorskip("triton", reason="triton not installed: `uv sync --extra gpu`")

SCREEN_CHECKS = set(iter_checks())


def expected_check(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# rejected-by:"), path
    return first.split(":", 1)[1].strip()


ADVERSARIES = sorted(ADVERSARIAL.glob("*.py"))
SPEC_OF = {"unstable_softmax.py": "softmax"}


def spec_for(path: Path):
    name = SPEC_OF.get(path.name, "vector_add")
    # fp32 only keeps the interpreter fast; the fp16-vs-fp32 shortcut needs the fp32 spec anyway.
    return make_spec(name, dtypes=("float32",))


def test_every_adversary_names_a_known_check():
    from kavi.gpu.correctness import CHECK_ORDER

    assert len(ADVERSARIES) >= 12
    for path in ADVERSARIES:
        assert expected_check(path) in SCREEN_CHECKS | set(CHECK_ORDER), path.name


@pytest.mark.parametrize("path", [p for p in ADVERSARIES if expected_check(p) in SCREEN_CHECKS], ids=lambda p: p.stem)
def test_screen_rejects(path, tmp_path):
    spec = spec_for(path)
    context = make_context(spec, tmp_path, path)
    result = KernelScreenGate().run(context)
    assert result.status is GateStatus.FAIL
    assert expected_check(path) in result.facts["checks"], result.report
    # The correctness gate refuses to execute a candidate that fails the screen.
    correctness = KernelCorrectnessGate().run(context)
    assert correctness.status is GateStatus.FAIL
    assert correctness.facts["failed_check"].startswith("screen:")


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", [p for p in ADVERSARIES if expected_check(p) not in SCREEN_CHECKS], ids=lambda p: p.stem
)
def test_dynamic_checks_reject(path, tmp_path):
    spec = spec_for(path)
    context = make_context(spec, tmp_path, path)
    assert KernelScreenGate().run(context).status is GateStatus.PASS  # it must get past the screen
    result = KernelCorrectnessGate().run(context)
    assert result.status is GateStatus.FAIL, result.report
    assert result.facts["failed_check"] == expected_check(path), result.report


@pytest.mark.slow
def test_a_pointer_cache_that_slipped_past_the_screen_is_still_caught(tmp_path):
    from kavi.gpu.correctness import check_kernel_correctness

    report = check_kernel_correctness(make_spec("vector_add", dtypes=("float32",)), ADVERSARIAL / "pointer_cache.py")
    assert report.status == "fail"
    assert report.failed_check == "fresh-output"
    assert report.checks["tolerance"].startswith("fail")  # the stale answer for the next seed is wrong too
