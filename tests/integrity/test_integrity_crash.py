"""kill -9 at every crash point of build, verify, promote, revoke and reject.

Each scenario starts from a saved workspace state and runs the real CLI as a subprocess with
``KAVI_CRASH_AT=<label>:<n>``, which SIGKILLs it at that point. Then: the ledger opens, nothing
half-written sits in skills/ under an importable name, re-running the same command completes it or refuses
it with a one-line message (never a traceback), and afterwards `kavi audit` is clean and kavi.lock agrees
with the ledger and the files.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from kavi.demo import recording_of
from kavi.errors import LedgerError
from kavi.integrity.audit import audit_workspace
from kavi.integrity.lockfile import verify_lock
from kavi.ledger.connection import connect
from kavi.stages.build import build_skill
from kavi.stages.common import Forge
from kavi.stages.promote import promote_skill
from kavi.stages.propose import propose_skill
from kavi.stages.verify import verify_skill
from kavi.workspace import Workspace, init_workspace
from tests.support import move_ledger_to

WORD_COUNT = {
    "name": "word_count",
    "description": "Count words",
    "side_effect": "READ_ONLY",
    "io_schema": {"input": {"text": "str"}, "output": {"count": "int"}},
    "examples": [{"input": {"text": "a b"}, "output": {"count": 2}}],
}

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Scenario:
    name: str
    state: str
    args: tuple[str, ...]
    must_reach: tuple[str, ...] = ()  # crash points the plan must hold, so a broken trace cannot test nothing


def _env(home: Path, workspace: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAVI_")}
    env.update(HOME=str(home), KAVI_WORKSPACE=str(workspace), GIT_CONFIG_NOSYSTEM="1", **extra)
    env["GIT_CONFIG_GLOBAL"] = str(home / "gitconfig")
    # a process killed mid-build cannot remove its sandbox: its temporary folders stay with this test's files
    env["TMPDIR"] = str(home.parent / "tmp")
    return env


def _kavi(workspace: Path, home: Path, args: tuple[str, ...], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kavi", *args],
        env=_env(home, workspace, **extra),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _states(root: Path, v2_recording: Path) -> dict[str, Path]:
    """Snapshots of one workspace along the pipeline (verified states carry a warm mypy cache)."""
    states: dict[str, Path] = {}
    ws_root = root / "live"
    workspace, _ = init_workspace(ws_root)
    forge = Forge.open(workspace)

    def save(name: str) -> None:
        states[name] = root / name
        shutil.copytree(ws_root, states[name], symlinks=True)

    try:
        proposal = propose_skill(forge, **WORD_COUNT).proposal_id  # type: ignore[arg-type]
        save("proposed")
        replay = {"source": str(recording_of("word_count"))}
        build_skill(forge, proposal, builder_name="replay", builder_options=replay)
        assert verify_skill(forge, proposal).passed
        build_skill(forge, proposal, builder_name="replay", builder_options=replay)
        save("built")  # BUILT again, with the gates' caches warm from the first verification
        assert verify_skill(forge, proposal).passed
        save("verified")
        promote_skill(forge, proposal, approver="alice")
        save("trusted_v1")
        build_skill(forge, proposal, builder_name="replay", builder_options={"source": str(v2_recording)})
        assert verify_skill(forge, proposal).passed
        save("v2_verified")
        promote_skill(forge, proposal, approver="bob")
        save("trusted_v2")
    finally:
        forge.close()
    return states


PROMOTE_POINTS = ("promote.commit", "promote.committed", "write_atomic")
BUILD_POINTS = ("build.started", "build.built", "build.commit")
SCENARIOS = (
    Scenario("build", "proposed", ("build-skill", "word_count", "--builder", "replay"), BUILD_POINTS),
    Scenario("rebuild", "trusted_v1", ("build-skill", "word_count", "--builder", "replay"), BUILD_POINTS),
    Scenario("rebuild v2", "trusted_v2", ("build-skill", "word_count", "--builder", "replay"), BUILD_POINTS),
    Scenario("rebuild over v2", "v2_verified", ("build-skill", "word_count", "--builder", "replay"), BUILD_POINTS),
    Scenario("verify", "built", ("verify-skill", "word_count"), ("verify.gated", "verify.commit")),
    Scenario("promote v1", "verified", ("promote-skill", "word_count", "--approver", "alice"), PROMOTE_POINTS),
    Scenario("promote v2", "v2_verified", ("promote-skill", "word_count", "--approver", "bob"), PROMOTE_POINTS),
    Scenario("revoke v2", "trusted_v2", ("revoke", "word_count", "--version", "2"), ("revoke.committed",)),
    Scenario("revoke v1 of 2", "trusted_v2", ("revoke", "word_count", "--version", "1"), ("revoke.committed",)),
    Scenario("revoke only", "trusted_v1", ("revoke", "word_count", "--version", "1"), ("revoke.committed",)),
    Scenario("reject", "verified", ("reject", "word_count", "--reason", "crash test"), ("ledger.event",)),
    Scenario("reject built", "built", ("reject", "word_count"), ("ledger.event",)),
)


def _with_recording(scenario: Scenario, recordings: dict[str, Path]) -> tuple[str, ...]:
    if scenario.args[0] != "build-skill":
        return scenario.args
    source = recordings["v2"] if scenario.state.startswith("trusted") else recordings["v1"]
    return (*scenario.args, "--replay-from", str(source))


# A fresh, empty database for one copy of a saved state (the Postgres runs), or None (SQLite).
NewDatabase = Callable[[], str] | None


def _copy_state(state: Path, root: Path, new_database: NewDatabase) -> None:
    """A saved state, as a workspace of its own; on Postgres its ledger moves into a fresh database."""
    shutil.copytree(state, root, symlinks=True)
    if new_database is not None:
        move_ledger_to(root, new_database())


def _points(
    scenario: Scenario,
    states: dict[str, Path],
    work: Path,
    home: Path,
    args: tuple[str, ...],
    new_database: NewDatabase = None,
) -> list[str]:
    """Every crash point this command passes, as label:n, in each of two clean traced runs.

    A point only one trace reaches is left out: content-addressed writes skip an artifact that already
    exists, and whether a gate report (which carries its run time) is new can differ from run to run."""
    traces = [_trace(scenario, states, work / f"trace{attempt}", home, args, new_database) for attempt in (1, 2)]
    return [point for point in traces[0] if point in set(traces[1])]


def _trace(
    scenario: Scenario,
    states: dict[str, Path],
    work: Path,
    home: Path,
    args: tuple[str, ...],
    new_database: NewDatabase,
) -> list[str]:
    work.mkdir(exist_ok=True)
    root = work / f"trace-{scenario.name.replace(' ', '_')}"
    _copy_state(states[scenario.state], root, new_database)
    log = work / f"{root.name}.log"
    done = _kavi(root, home, args, KAVI_CRASH_LOG=str(log))
    assert done.returncode == 0, done.stdout + done.stderr
    counts: dict[str, int] = {}
    points = []
    for label in log.read_text().split():
        counts[label] = counts.get(label, 0) + 1
        points.append(f"{label}:{counts[label]}")
    return points


def _trusted_ever(root: Path) -> set[str]:
    with connect(Workspace(root).ledger_url) as conn:
        return {d for row in conn.execute("SELECT skill_sha256, test_sha256 FROM promotions").fetchall() for d in row}


def _crash_and_recover(
    scenario: Scenario,
    state: Path,
    point: str,
    work: Path,
    home: Path,
    args: tuple[str, ...],
    new_database: NewDatabase = None,
) -> str:
    """Returns '' when every requirement holds, else what broke."""
    root = work / f"{scenario.name.replace(' ', '_')}-{point.replace(':', '_')}"
    _copy_state(state, root, new_database)
    crashed = _kavi(root, home, args, KAVI_CRASH_AT=point)
    if crashed.returncode != -signal.SIGKILL:
        return f"{point}: expected SIGKILL, got {crashed.returncode}: {crashed.stderr[-300:]}"
    workspace = Workspace(root)
    try:
        with connect(workspace.ledger_url) as conn:
            conn.execute("SELECT COUNT(*) FROM events").fetchone()
    except LedgerError as exc:
        return f"{point}: the ledger does not open: {exc}"
    vouched = _trusted_ever(root)
    for path in workspace.skills_dir.iterdir():
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            continue  # an atomic write's temporary, never importable; the next settle removes it
        if hashlib.sha256(path.read_bytes()).hexdigest() not in vouched:
            return f"{point}: skills/{path.name} holds bytes no TRUSTED version ever had"
    again = _kavi(root, home, args)
    if again.returncode not in (0, 1) or "Traceback" in again.stderr:
        return f"{point}: re-run exited {again.returncode}: {again.stderr[-300:]}"
    if again.returncode == 1 and len(again.stderr.strip().splitlines()) != 1:
        return f"{point}: re-run refused without a one-line message: {again.stderr[-300:]}"
    report = audit_workspace(workspace)
    if not report.ok:
        return f"{point}: audit after re-run: {[f.line() for f in report.findings[:3]]}"
    if not (root / "kavi.lock").exists():
        if _trusted_ever(root):
            return f"{point}: versions were promoted but there is no kavi.lock"
    elif not (lock := verify_lock(workspace)).ok:
        return f"{point}: lock after re-run: {lock.problems[:3]}"
    temporaries = [*workspace.skills_dir.glob(".*.tmp"), *(workspace.state_dir / "install-tmp").glob("*")]
    if temporaries and args[0] in ("promote-skill", "revoke", "reject"):
        return f"{point}: temporary files were left after the re-run: {temporaries}"
    shutil.rmtree(root, ignore_errors=True)
    return ""


@dataclass(frozen=True)
class Prepared:
    states: dict[str, Path]
    recordings: dict[str, Path]


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Prepared:
    """The saved states, made once per run: xdist workers share one copy (the first to arrive makes it under a
    lock, the others wait and read it), since making them costs five verifications."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker_id != "master" else base) / "crash-states"
    root.mkdir(exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        v2 = root / "rec-v2"
        names = ("proposed", "built", "verified", "trusted_v1", "v2_verified", "trusted_v2")
        if not (root / "ready").exists():
            shutil.rmtree(v2, ignore_errors=True)
            shutil.copytree(recording_of("word_count"), v2, ignore=shutil.ignore_patterns("__pycache__"))
            skill = v2 / "skills" / "word_count.py"
            skill.write_text(skill.read_text() + "# v2\n")
            for name in (*names, "live"):
                shutil.rmtree(root / "states" / name, ignore_errors=True)
            _states(root / "states", v2)
            (root / "ready").touch()
    return Prepared({name: root / "states" / name for name in names}, {"v1": recording_of("word_count"), "v2": v2})


# The scenario that also runs with the ledger on Postgres (each is costly: every crash point is a kill and a
# re-run): a promotion, which commits, installs and rewrites the lock from the ledger; and there, the points
# where the backend is what is tested: inside the ledger transaction, right after its commit, and after
# settle read it (a kill between two file writes is the same on both backends).
POSTGRES_SCENARIOS = ("promote v2",)
LEDGER_POINTS = ("ledger.event", "promote.commit", "promote.committed", "revoke.commit", "revoke.committed")
POSTGRES_POINTS = (*LEDGER_POINTS, "settle.synced")
RUNS = [
    *((scenario, "sqlite") for scenario in SCENARIOS),
    *((scenario, "postgres") for scenario in SCENARIOS if scenario.name in POSTGRES_SCENARIOS),
]


# one test per scenario and backend: tests/conftest.py lets xdist hand each to any worker
@pytest.mark.parametrize(
    ("scenario", "backend"), RUNS, ids=[f"{s.name.replace(' ', '-')}-{backend}" for s, backend in RUNS]
)
def test_kill_9_at_every_crash_point_leaves_a_recoverable_workspace(
    scenario: Scenario, backend: str, prepared: Prepared, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "tmp").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    args = _with_recording(scenario, prepared.recordings)
    new_database = request.getfixturevalue("postgres_server").create_database if backend == "postgres" else None
    points = _points(scenario, prepared.states, work, home, args, new_database)
    labels = {point.split(":")[0] for point in points}
    assert len(points) >= 3, points
    assert set(scenario.must_reach) <= labels, (scenario.must_reach, sorted(labels))
    if backend == "postgres":
        points = [point for point in points if point.split(":")[0] in POSTGRES_POINTS]
        assert {point.split(":")[0] for point in points} & set(LEDGER_POINTS), points
    with ThreadPoolExecutor(max_workers=2) as pool:
        state = prepared.states[scenario.state]
        outcomes = pool.map(
            lambda point: _crash_and_recover(scenario, state, point, work, home, args, new_database), points
        )
        failures = [failure for failure in outcomes if failure]
    assert failures == [], failures[:10]
