"""Whole-process and in-process timings of the forge's hot paths, measured side by side in one run.

    uv run python benchmarks/spine.py [--runs N]

Prints a table: `kavi run-skill` against a bare interpreter start, `kavi verify-skill` of a small skill
(after one warm-up that fills mypy's cache), and a TRUSTED skill called in-process through kavi.api against
calling the skill class directly. Targets (2-core machine): run-skill <= 0.3 s, verify-skill <= 2.5 s,
in-process overhead <= 0.3 ms per call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KAVI = str(Path(sys.executable).parent / "kavi")


def wall(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        completed = subprocess.run(argv, capture_output=True, env=env, check=False)
        samples.append(time.perf_counter() - start)
        if completed.returncode != 0:
            raise SystemExit(f"{argv} failed: {completed.stdout.decode()} {completed.stderr.decode()}")
    return samples


def in_process_overhead(workspace: Path, calls: int) -> tuple[float, float]:
    sys.path.insert(0, str(workspace / "skills"))
    from word_count import WordCount, WordCountInput  # type: ignore[import-not-found]

    from kavi.api import load_skill

    skill = load_skill("word_count", workspace=workspace)
    payload = {"text": "the quick brown fox"}
    direct = WordCount()
    start = time.perf_counter()
    for _ in range(calls):
        direct.execute(WordCountInput.model_validate(payload)).model_dump()
    direct_s = (time.perf_counter() - start) / calls
    start = time.perf_counter()
    for _ in range(calls):
        skill(payload)
    governed_s = (time.perf_counter() - start) / calls
    return direct_s, governed_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    from kavi.demo import run_demo

    workspace = Path(tempfile.mkdtemp(prefix="kavi-bench-")) / "ws"
    run_demo(workspace, lambda *_: None)
    env = {**os.environ, "KAVI_WORKSPACE": str(workspace)}
    bare = wall([sys.executable, "-c", "pass"], args.runs, env)
    run = wall([KAVI, "run-skill", "word_count", "--json", '{"text": "a b c"}'], args.runs, env)
    isolation = json.loads(subprocess.run([KAVI, "run-skill", "word_count", "--json", "{\"text\": \"a\"}"],
                                          capture_output=True, env=env, check=True).stdout)["isolation"]
    subprocess.run([KAVI, "build-skill", "word_count", "--replay-from",
                    str(Path(__file__).resolve().parent.parent / "src/kavi/demo_replays/word_count")],
                   capture_output=True, env=env, check=True)
    verify = wall([KAVI, "verify-skill", "word_count", "--json"], max(3, args.runs // 3), env)
    direct_s, governed_s = in_process_overhead(workspace, 20_000)

    rows = [
        ("python -c pass (baseline)", statistics.median(bare), ""),
        (f"kavi run-skill (isolation: {isolation})", statistics.median(run), "<= 0.300 s"),
        ("kavi verify-skill (warm mypy cache)", statistics.median(verify), "<= 2.500 s"),
        ("direct call: validate + execute + dump", direct_s, ""),
        ("kavi.api TRUSTED call", governed_s, ""),
        ("in-process overhead per call", governed_s - direct_s, "<= 0.000300 s"),
    ]
    print(f"{'measurement':<44} {'median seconds':>16}  target")
    for name, value, target in rows:
        print(f"{name:<44} {value:>16.6f}  {target}")


if __name__ == "__main__":
    main()
