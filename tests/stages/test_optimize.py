"""forge --optimize: the search keeps the fastest verified candidate, records every attempt and measurement,
and re-measures the winner on fresh seeds at a confidence corrected for the attempts.

Kernel speed needs a GPU, so these tests give the loop a speed source of their own (the one seam,
:class:`kavi.gpu.speed.SpeedSource`): timings the test supplies for each candidate, summarised by the real
statistics (:func:`kavi.gpu.bench.summarize_row`: medians, bootstrap interval, roofline). The builds are real
replays, and every candidate is verified by the real kernel gates through Triton's CPU interpreter. On the CPU
the product's source refuses, and so does the CLI.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from kavi.builders.base import BuildPacket
from kavi.gpu.bench import summarize_row
from kavi.gpu.spec import KernelSpec
from kavi.gpu.speed import Measurement, sidak_confidence
from kavi.ledger.models import Event
from kavi.stages.common import Forge
from kavi.stages.forge import Budget
from kavi.stages.optimize import Goal, optimize_kernel
from kavi.stages.promote import promote_skill
from kavi.stages.propose import propose_kernel
from kavi.stages.research import build_trace
from tests.support import REPO, run_cli

pytest.importorskip("torch", reason="torch not installed: `uv sync --extra gpu`")
pytest.importorskip("triton", reason="triton not installed: `uv sync --extra gpu`")
pytestmark = pytest.mark.slow

KERNEL = (REPO / "kernels" / "vector_add.py").read_text(encoding="utf-8")
TORCH_MS = 1.0
# The block size of each variant and the time the test says it takes (torch: 1 ms).
VARIANTS = {"slow": (256, 1.6), "fast": (1024, 0.6), "regressed": (128, 2.0)}


def _variant(kind: str) -> bytes:
    block, _ = VARIANTS[kind]
    return KERNEL.replace("block = 1024", f"block = {block}").encode()


def _recording(tmp_path: Path, *kinds: str) -> Path:
    root = tmp_path / "recording"
    for number, kind in enumerate(kinds, start=1):
        target = root / f"attempt-{number}" / "kernels"
        target.mkdir(parents=True)
        (target / "vector_add.py").write_bytes(_variant(kind))
        shutil.copyfile(REPO / "kernels" / "test_vector_add.py", target / "test_vector_add.py")
    return root


class SuppliedTimings:
    """Per-call times the test supplies for each variant (a little noise, seeded by the salt), turned into a
    Measurement by the same summary the GPU path uses. ``lucky`` variants measure fast the first time only:
    the noise a search can mine."""

    def __init__(self, lucky: tuple[str, ...] = ()) -> None:
        self.by_hash = {hashlib.sha256(_variant(kind)).hexdigest(): kind for kind in VARIANTS}
        self.lucky = set(lucky)
        self.calls: list[dict[str, Any]] = []

    def unavailable(self) -> str | None:
        return None

    def measure(self, spec: KernelSpec, kernel_file: Path, *, salt: int, confidence: float) -> Measurement:
        kind = self.by_hash[hashlib.sha256(kernel_file.read_bytes()).hexdigest()]
        kernel_ms = VARIANTS[kind][1]
        if kind in self.lucky and not any(call["kind"] == kind for call in self.calls):
            kernel_ms = 0.5
        self.calls.append({"kind": kind, "salt": salt, "confidence": confidence})
        rng = random.Random(salt)
        rows = []
        for size in spec.bench_sizes:
            raw = {
                "size": size,
                "dtype": "float32",
                "samples": {
                    name: {
                        "event_ms": [ms * (1 + rng.gauss(0, 0.02)) for _ in range(100)],
                        "host_ms": [ms * 1.1 + 0.01] * 100,
                    }
                    for name, ms in (("candidate", kernel_ms), ("torch", TORCH_MS))
                },
                "recheck": {"ok": True, "problems": []},
                "bytes_moved": 1e8,  # a floor of 0.05 ms at the bandwidth below: every time here is possible
            }
            machine = {"bandwidth_bytes_per_s": 2e12}
            rows.append(summarize_row(spec.name, raw, machine, "supplied timings", confidence=confidence))
        return Measurement.from_rows(rows, confidence=confidence, salt=salt)


def _propose(forge: Forge) -> str:
    reference = REPO / "kernels" / "references" / "vector_add.py"
    return propose_kernel(
        forge, name="vector_add", description="Triton kernel: vector_add", reference=reference
    ).proposal_id


def _events(forge: Forge, kind: str) -> list[dict[str, Any]]:
    with forge.ledger.reading() as session:
        rows = session.exec(select(Event).where(Event.kind == kind).order_by(col(Event.id))).all()
        return [json.loads(row.payload) for row in rows]


def test_the_faster_verified_candidate_is_kept_and_remeasured_on_fresh_seeds(forge: Forge, tmp_path: Path) -> None:
    proposal = _propose(forge)
    timings = SuppliedTimings()
    result = optimize_kernel(
        forge,
        proposal,
        speed=timings,
        goal=Goal(patience=5),
        builder_name="replay",
        builder_options={"source": str(_recording(tmp_path, "slow", "fast", "regressed"))},
        budget=Budget(max_attempts=3),
    )
    assert result.status == "VERIFIED", result.reason
    assert [a["verification"] for a in result.attempts] == ["PASSED"] * 4
    assert result.stop_reason == "the budget of 3 attempt(s) is spent"
    assert result.best is not None and result.best["attempt"] == 2
    # the best was not the latest build: forge rebuilt it (no model call) and verified it again
    assert result.attempts[-1]["builder"] == "keep-best"

    measured = _events(forge, "forge.measured")
    assert [m["attempt"] for m in measured] == [1, 2, 3]
    assert [round(m["speedup"], 1) for m in measured] == [0.6, 1.7, 0.5]
    assert all(len(m["rows"]) == 3 and m["confidence"] == 0.95 for m in measured)

    (again,) = _events(forge, "forge.remeasured")
    assert again["comparisons"] == 3 and again["correction"] == "sidak"
    assert again["confidence"] == pytest.approx(0.95 ** (1 / 3)) == pytest.approx(sidak_confidence(3))
    assert again["salt"] not in {m["salt"] for m in measured}  # fresh seeds
    assert again["passed"] is True and again["search_attempt"] == 2
    assert timings.calls[-1] == {"kind": "fast", "salt": again["salt"], "confidence": again["confidence"]}
    assert result.remeasured is not None and result.remeasured["speedup"] == pytest.approx(1 / 0.6, rel=0.05)

    # the packet after the first measurement carries what to beat
    packet = json.loads(forge.store.get(build_trace(forge, result.attempts[1]["build_id"])["build"]["packet_sha256"]))
    beat = packet["performance"]["to_beat"]
    assert beat["attempt"] == 1 and len(beat["speedup_interval"]) == 2
    assert beat["roofline_fraction"] is not None and beat["slowest_size"]["dtype"] == "float32"
    assert "## Make it faster" in BuildPacket(**packet).render_markdown()
    first = json.loads(forge.store.get(build_trace(forge, result.attempts[0]["build_id"])["build"]["packet_sha256"]))
    assert "performance" not in first  # nothing measured yet

    # what promotion installs is the kept candidate's bytes (speed unmeasured by the gate here: no GPU)
    promote_skill(forge, proposal, approver="tester", allow_unmeasured=True)
    assert (forge.workspace.root / "kernels" / "vector_add.py").read_bytes() == _variant("fast")
    assert run_cli("audit", "--workspace", str(forge.workspace.root)).code == 0  # the events chain like any other


def test_the_search_stops_at_the_target(forge: Forge, tmp_path: Path) -> None:
    proposal = _propose(forge)
    result = optimize_kernel(
        forge,
        proposal,
        speed=SuppliedTimings(),
        goal=Goal(target_speedup=1.2),
        builder_name="replay",
        builder_options={"source": str(_recording(tmp_path, "slow", "fast", "regressed"))},
        budget=Budget(max_attempts=6),
    )
    assert result.status == "VERIFIED"
    assert result.stop_reason.startswith("the target speedup 1.2 is reached")
    assert len(result.attempts) == 2 and result.best is not None and result.best["attempt"] == 2


def test_a_lucky_measurement_does_not_survive_the_remeasurement(forge: Forge, tmp_path: Path) -> None:
    """Retries mine noise: the first measurement of 'slow' is lucky (2x); on fresh seeds it is 0.6x, below
    vector_add's MIN_SPEEDUP, so the forge ends ESCALATED and promotion refuses it."""
    proposal = _propose(forge)
    result = optimize_kernel(
        forge,
        proposal,
        speed=SuppliedTimings(lucky=("slow",)),
        builder_name="replay",
        builder_options={"source": str(_recording(tmp_path, "slow"))},
        budget=Budget(max_attempts=1),
    )
    assert result.status == "ESCALATED"
    assert "did not survive re-measurement" in result.reason
    (again,) = _events(forge, "forge.remeasured")
    assert again["passed"] is False and again["search_speedup"] == pytest.approx(2.0, rel=0.05)
    assert run_cli("promote-skill", proposal, "--allow-unmeasured", "--workspace", str(forge.workspace.root)).code == 1


def test_optimize_refuses_without_a_gpu(tmp_path: Path) -> None:
    from kavi.gpu.bench import no_gpu_reason

    if no_gpu_reason() is None:
        pytest.skip("checks the behaviour on a machine without a GPU")
    assert run_cli("init", str(tmp_path)).code == 0
    refused = run_cli("forge", "anything", "--optimize", "--workspace", str(tmp_path))
    assert refused.code == 1
    assert "cannot optimise kernel speed here: no GPU" in refused.stderr
    assert "without --optimize" in refused.stderr  # the hint
    bad = run_cli("forge", "anything", "--target-speedup", "2", "--workspace", str(tmp_path))
    assert bad.code == 2 and "--target-speedup needs --optimize" in bad.stderr
