"""One of the concurrency harness's processes: OPS operations through the real entry point, in-process.

Usage: python concurrency_worker.py INDEX OPS SEED RECORDINGS_DIR OUT.jsonl (KAVI_WORKSPACE names the
workspace). Every operation's exit code and output go to OUT.jsonl, one JSON object per line.
"""

from __future__ import annotations

import io
import json
import random
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from kavi.__main__ import main


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def plan(index: int, ops: int, seed: int, recordings: Path) -> list[list[str]]:
    rng = random.Random(seed * 1000 + index)
    word_count = str(recordings / "word_count")
    steps: list[list[str]] = []
    mine: list[str] = []
    for k in range(ops):
        roll = rng.random()
        if roll < 0.30:
            steps.append(["status", "--json"])
        elif roll < 0.36:
            steps.append(["run-skill", "word_count", "--json", json.dumps({"text": f"w{index} op {k}"})])
        elif roll < 0.44:
            steps.append(["status", "--json"])
        elif roll < 0.54:
            steps.append(["list-skills", "--json"])
        elif roll < 0.62:
            steps.append(["show", "word_count", "--json"])
        elif roll < 0.76:
            name = f"w{index}_s{k}"
            mine.append(name)
            steps.append(
                [
                    "propose-skill",
                    "--name",
                    name,
                    "--desc",
                    "d",
                    "--side-effect",
                    "READ_ONLY",
                    "--io-schema-json",
                    '{"input": {"x": "int"}, "output": {"y": "int"}}',
                    "--json",
                ]
            )
        elif roll < 0.88 and mine:
            steps.append(["reject", mine.pop(0), "--json"])
        elif roll < 0.95:
            steps.append(["audit", "--quick", "--json"])
        else:
            steps.append(["build-skill", "word_count", "--replay-from", word_count, "--json"])
    # A few expensive, contended steps at fixed places: two workers race the same write_note pipeline, two
    # others verify and promote word_count's newest candidate while builds keep replacing it.
    if index in (0, 1):
        note = str(recordings / "write_note")
        steps[ops // 4 : ops // 4] = [
            [
                "propose-skill",
                "--name",
                "write_note",
                "--desc",
                "Write a note",
                "--side-effect",
                "FILE_WRITE",
                "--io-schema-json",
                '{"input": {"title": "str", "body": "str"}, "output": {"path": "str"}}',
                "--write-root",
                "notes",
                "--json",
            ],
            ["build-skill", "write_note", "--replay-from", note, "--json"],
            ["verify-skill", "write_note", "--json"],
            ["promote-skill", "write_note", "--approver", f"worker{index}", "--json"],
        ]
    if index in (2, 3):
        steps[ops // 2 : ops // 2] = [
            ["build-skill", "word_count", "--replay-from", word_count, "--json"],
            ["verify-skill", "word_count", "--json"],
            ["promote-skill", "word_count", "--approver", f"worker{index}", "--json"],
        ]
    # `--in-process` installs the audit hook in this process for good (later writes would be refused), so the
    # one in-process run comes last.
    steps = steps[: ops + 3]
    steps.append(["run-skill", "word_count", "--in-process", "--json", json.dumps({"text": f"w{index} last"})])
    return steps


def main_worker() -> None:
    index, ops, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    recordings, out = Path(sys.argv[4]), Path(sys.argv[5])
    with out.open("w", encoding="utf-8") as handle:
        for args in plan(index, ops, seed, recordings):
            code, stdout, stderr = run(args)
            handle.write(json.dumps({"args": args, "code": code, "stdout": stdout[-2000:], "stderr": stderr}) + "\n")
            handle.flush()


if __name__ == "__main__":
    main_worker()
