"""What isolation costs: whole-process start-up at each level, and the audit hook's cost per event.

    uv run python benchmarks/isolation.py [--runs 15]

Prints a table of medians. The child is `python -c pass` (the floor), then a realistic `run-skill`
child that imports pydantic and kavi.skill. Levels are forced with KAVI_ISOLATION, exactly as tests
do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kavi.runtime.audit import EffectPolicy
from kavi.runtime.guard import guarded_python_argv
from kavi.sandbox import bwrap
from kavi.sandbox.executor import ExecPolicy, run_isolated

SKILL_CHILD = "import pydantic, kavi.skill"

HOOK_SCRIPT = r"""
import os, sys, time, json
path = sys.argv[1]
def per_op(action, n):
    start = time.perf_counter()
    for _ in range(n):
        action()
    return (time.perf_counter() - start) / n * 1e6
def read():
    open(path, "rb").close()
def read_lib():
    open(os.__file__, "rb").close()
def frame():
    sys._getframe()
n = 20000
before = {"open": per_op(read, n), "lib": per_op(read_lib, n), "other": per_op(frame, n)}
from kavi.runtime.hook import install
install(json.loads(sys.argv[2]))
after = {"open": per_op(read, n), "lib": per_op(read_lib, n), "other": per_op(frame, n)}
print(json.dumps({"before": before, "after": after}))
"""


def interleaved_timings_ms(
    cases: list[tuple[str, Callable[[], object]]], runs: int
) -> list[tuple[str, tuple[float, float]]]:
    """Median and minimum per case, the cases taken in turn so that a burst of load on a shared
    machine hits them all alike; the minimum is the steadier of the two numbers."""
    samples: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _name, action in cases:
        action()  # warm the page cache
    for _ in range(runs):
        for name, action in cases:
            start = time.perf_counter()
            action()
            samples[name].append((time.perf_counter() - start) * 1000)
    return [(name, (statistics.median(samples[name]), min(samples[name]))) for name, _ in cases]


def run_at(level: str, argv: list[str], cwd: Path) -> Callable[[], object]:
    def action() -> object:
        os.environ["KAVI_ISOLATION"] = level
        result = run_isolated(argv, cwd=cwd, policy=ExecPolicy(timeout_s=30))
        assert result.returncode == 0, result.stderr[-500:]
        return result

    return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    python = sys.executable
    rows: list[tuple[str, tuple[float, float]]] = []
    start = time.perf_counter()
    info = bwrap.probe_bwrap()
    probe_ms = (time.perf_counter() - start) * 1000
    rows.append(("bwrap probe (once per process)", (probe_ms, probe_ms)))
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        policy = EffectPolicy()
        plain = [python, "-B", "-c", "pass"]
        (cwd / "skill.py").write_text(SKILL_CHILD + "\n")
        guarded = guarded_python_argv(policy, script=str(cwd / "skill.py"))
        (cwd / "empty.py").write_text("")
        guarded_empty = guarded_python_argv(policy, script=str(cwd / "empty.py"))
        cases: list[tuple[str, Callable[[], object]]] = [
            ("python -c pass (subprocess.run)", lambda: subprocess.run(plain, check=True)),
            (
                "guard + empty script (subprocess.run)",
                lambda: subprocess.run(guarded_empty, check=True),
            ),
            ("python -c pass, PROCESS", run_at("process", plain, cwd)),
            ("python -c pass, FALLBACK", run_at("fallback", plain, cwd)),
            ("guard + empty script, FALLBACK", run_at("fallback", guarded_empty, cwd)),
            (
                "skill child (pydantic), plain subprocess",
                lambda: subprocess.run([python, "-B", "-c", SKILL_CHILD], check=True),
            ),
            ("skill child (pydantic) + guard, FALLBACK", run_at("fallback", guarded, cwd)),
        ]
        if info.works:
            cases += [
                ("python -c pass, FULL (bwrap)", run_at("full", plain, cwd)),
                ("guard + empty script, FULL (bwrap)", run_at("full", guarded_empty, cwd)),
                ("skill child (pydantic) + guard, FULL (bwrap)", run_at("full", guarded, cwd)),
            ]
        rows += interleaved_timings_ms(cases, runs)
        target = cwd / "data.bin"
        target.write_bytes(b"x")
        hook = subprocess.run(
            [python, "-B", "-c", HOOK_SCRIPT, str(target), policy.to_json()],
            capture_output=True,
            text=True,
            check=True,
        )
    import json

    per_event = json.loads(hook.stdout)
    width = max(len(name) for name, _ in rows) + 2
    print(f"bubblewrap: {info.path} {info.version} works={info.works}")
    print(f"{'case (whole child process)'.ljust(width)}median ms   min ms  ({runs} runs)")
    for name, (median, least) in rows:
        print(f"{name.ljust(width)}{median:9.1f}  {least:7.1f}")
    print()
    print(f"{'audit hook, per event'.ljust(width)}before µs  after µs")
    labels = (
        ("open", "open()+close(), a file in a temp folder"),
        ("lib", "open()+close(), a file of the interpreter"),
        ("other", "an unhandled event (sys._getframe)"),
    )
    for kind, label in labels:
        print(
            f"{label.ljust(width)}{per_event['before'][kind]:9.2f}  {per_event['after'][kind]:8.2f}"
        )


if __name__ == "__main__":
    main()
