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
    if path.stem in EVIDENCE:
        EVIDENCE[path.stem](result)


@pytest.mark.slow
def test_a_pointer_cache_that_slipped_past_the_screen_is_still_caught(tmp_path):
    from kavi.gpu.correctness import check_kernel_correctness

    report = check_kernel_correctness(make_spec("vector_add", dtypes=("float32",)), ADVERSARIAL / "pointer_cache.py")
    assert report.status == "fail"
    assert report.failed_check == "fresh-output"
    assert report.checks["tolerance"].startswith("fail")  # the stale answer for the next seed is wrong too


# --- issue 15 §1: each check with the exploit it stops, shown failing only through that check ------


def _vector_add_report(path: Path, **kwargs):
    from kavi.gpu.correctness import check_kernel_correctness

    return check_kernel_correctness(make_spec("vector_add", dtypes=("float32",)), path, **kwargs)


def _failing_details(report_text: str, check: str) -> list[str]:
    return [line for line in report_text.splitlines() if line.startswith(f"[{check}]")]


def _only_on(structure: str, check: str):
    """Evidence that the candidate passes without ``structure``: every failing case has it."""

    def verify(result) -> None:
        lines = _failing_details(result.report, check)
        assert lines and all(structure in line for line in lines), result.report

    return verify


def _tiles_stop_above_the_check_sizes(result) -> None:
    hidden = result.facts["hidden_size"]
    assert hidden > 4099  # larger than every check size
    lines = _failing_details(result.report, "poison")
    assert lines and all(f"size {hidden}," in line for line in lines), result.report


def _right_under_the_patterns(result) -> None:
    assert result.facts["checks"]["tolerance"] == "pass"  # its first (pattern-poisoned) call is right


# For the candidates of issue 15 §1: evidence that they would pass without the check that stops them.
EVIDENCE = {
    "fixed_point": _only_on("row_scales", "tolerance"),
    "ignores_strides": _only_on("strided", "tolerance"),
    "tile_stops": _tiles_stop_above_the_check_sizes,
    "sniffs_poison": _right_under_the_patterns,
}


@pytest.mark.slow
def test_rotating_buffers_that_slipped_past_the_screen_are_caught_by_fresh_output():
    report = _vector_add_report(ADVERSARIAL / "rotating_buffers.py")
    assert report.failed_check == "fresh-output"
    others = {name: verdict for name, verdict in report.checks.items() if name != "fresh-output"}
    assert set(others.values()) == {"pass"}  # only the every-earlier-output comparison catches it
    flagged = _failing_details(report.render(), "fresh-output")
    assert "case 0 " in flagged[0] and "call 3:" in flagged[0]  # never the call right after its twin


@pytest.mark.slow
def test_the_reference_is_never_on_the_candidates_import_path(tmp_path):
    """Screen bypassed: the candidate is imported from a private copy with no reference beside it."""
    import shutil

    kernels = tmp_path / "kernels"
    (kernels / "references").mkdir(parents=True)
    shutil.copyfile(
        ADVERSARIAL.parents[2] / "kernels" / "references" / "vector_add.py", kernels / "references" / "vector_add.py"
    )
    shutil.copyfile(ADVERSARIAL / "imports_reference.py", kernels / "vector_add.py")
    report = _vector_add_report(kernels / "vector_add.py")
    assert report.failed_check == "runs"
    assert "references" in report.details[0] or "No module named" in report.render()
