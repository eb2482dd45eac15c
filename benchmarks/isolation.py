"""What isolation costs: whole-process start-up at each level, and the audit hook's cost per event.

    uv run python benchmarks/isolation.py [--runs 15] [--run-skill-only]

It also times a whole `kavi run-skill` process at FULL isolation before and after the kernel layers
(user namespace, dropped capabilities, seccomp, Landlock), side by side: "before" is the same CLI
with those layers switched off by patching the executor inside that process only (no switch
exists in kavi itself, so nothing outside this file can turn the layers off).

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


CLI = "import sys; from kavi.__main__ import main; sys.exit(main(sys.argv[1:]))"
# The executor as it was before the kernel layers: bubblewrap without a user namespace, without
# --cap-drop, no seccomp filter, no Landlock, no launcher.
LEGACY_CLI = """
import sys
from kavi.sandbox import bwrap, executor
host = executor.host_layers
def legacy_host():
    found = dict(host())
    for layer in ("userns", "caps", "seccomp", "landlock"):
        found[executor.Layer(layer)] = "switched off by the benchmark"
    return found
executor.host_layers = legacy_host
def legacy_flags(*, network, userns):
    flags = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"]
    return flags if network else [*flags, "--unshare-net"]
bwrap._namespace_flags = legacy_flags
from kavi.__main__ import main
sys.exit(main(sys.argv[1:]))
"""
WORD_COUNT = (
    "--name", "word_count", "--desc", "Count words", "--side-effect", "READ_ONLY",
    "--io-schema-json", '{"input": {"text": "str"}, "output": {"count": "int"}}',
    "--examples-json", '[{"input": {"text": "a b"}, "output": {"count": 2}}]',
)  # fmt: skip


def run_skill_before_after(runs: int) -> list[tuple[str, tuple[float, float]]]:
    """Promote word_count in a fresh workspace, then time whole `kavi run-skill` processes."""
    from kavi.demo import recording_of

    python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "KAVI_WORKSPACE": f"{folder}/ws", "KAVI_ISOLATION": "full"}

        def kavi(*args: str, code: str = CLI) -> str:
            done = subprocess.run([python, "-c", code, *args], env=env, capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stdout[-500:] + done.stderr[-1500:]
            return done.stdout

        subprocess.run([python, "-c", CLI, "init", f"{folder}/ws"], env=env, capture_output=True, check=True)
        import json

        proposal = json.loads(kavi("propose-skill", *WORD_COUNT, "--json"))["proposal_id"]
        kavi("build-skill", proposal, "--replay-from", str(recording_of("word_count")))
        kavi("verify-skill", proposal)
        kavi("promote-skill", proposal)
        request = ("run-skill", "word_count", "--json", '{"text": "a b c"}')
        after = json.loads(kavi(*request))
        before = json.loads(kavi(*request, code=LEGACY_CLI))
        assert after["output"] == before["output"] == {"count": 3}
        cases: list[tuple[str, Callable[[], object]]] = [
            ("run-skill FULL, before (no kernel layers)", lambda: kavi(*request, code=LEGACY_CLI)),
            ("run-skill FULL, after (userns+caps+seccomp+landlock)", lambda: kavi(*request)),
        ]
        return interleaved_timings_ms(cases, runs)


def _print_rows(rows: list[tuple[str, tuple[float, float]]], runs: int) -> None:
    width = max(len(name) for name, _ in rows) + 2
    print(f"{'case (whole process)'.ljust(width)}median ms   min ms  ({runs} runs)")
    for name, (median, least) in rows:
        print(f"{name.ljust(width)}{median:9.1f}  {least:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--run-skill-only", action="store_true")
    options = parser.parse_args()
    runs = options.runs
    if bwrap.probe_bwrap().works:
        compared = run_skill_before_after(runs)
        _print_rows(compared, runs)
        (_, (before, before_min)), (_, (after, after_min)) = compared
        median_cost, min_cost = 100 * (after / before - 1), 100 * (after_min / before_min - 1)
        print(f"kernel layers cost: median {median_cost:+.1f} %, min {min_cost:+.1f} %")
        print()
    if options.run_skill_only:
        return
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
