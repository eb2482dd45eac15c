"""Execution-tree benchmark: a ledger of N skill runs in trees of K (a node and its children), then the views.

Run: uv run python benchmarks/executions.py [--trees N] [--per-tree K] [--runs R]

Prints one table, side by side: `kavi executions` (the newest roots), `--skill NAME` (one skill's runs at any
depth), `show-execution` of one tree, each over the populated ledger; and a real `run_skill` at the top
against one under a parent (the parent's root is one more indexed read on the hot path). Targets (2-core
machine): each view <= 50 ms at 10k runs; the parent's root, the one read a run under a parent adds, <= 0.1 ms
(the two whole runs differ by less than their noise).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kavi.ledger import fast
from kavi.stages.common import Forge
from kavi.stages.executions import begin_execution, execution_tree, list_executions
from kavi.stages.run import run_skill

REPO = Path(__file__).resolve().parent.parent
KAVI = str(Path(sys.executable).parent / "kavi")


def adopt(root: Path) -> None:
    root.mkdir(parents=True)
    for name in ("kavi.toml", "kavi.lock"):
        shutil.copy2(REPO / name, root / name)
    for folder in ("skills", "kernels"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "references"))
    subprocess.run([KAVI, "init", str(root), "--json"], check=True, capture_output=True)


def populate(root: Path, trees: int, per_tree: int) -> str:
    """``trees`` chat nodes with ``per_tree`` word_count runs each (raw SQL; the views read rows, not events)."""
    conn = sqlite3.connect(root / ".kavi" / "ledger.db")
    promotion = conn.execute("SELECT id, skill_sha256 FROM promotions WHERE name = 'word_count'").fetchone()
    nodes, runs = [], []
    for tree in range(trees):
        node = f"h_{tree:012x}"
        stamp = f"2026-01-01T00:{tree // 3600 % 60:02d}:{tree % 60:02d}.{tree:06d}+00:00"
        nodes.append((node, "chat", "bench", None, node, "OK", "{}", stamp))
        for child in range(per_tree):
            runs.append(
                (f"x_{tree:08x}{child:04x}", promotion[0], "word_count", 1, promotion[1], '{"text": "a"}',
                 '{"count": 1}', 0.5, "full", stamp, "hook", node, node)
            )  # fmt: skip
    conn.executemany(
        "INSERT INTO execution_nodes (id, kind, name, parent_id, root_id, status, input_json, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        nodes,
    )
    conn.executemany(
        "INSERT INTO executions (id, promotion_id, name, version, skill_sha256, input_json, output_json, duration_s,"
        " isolation, created_at, layers, parent_id, root_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        runs,
    )
    conn.commit()
    conn.close()
    return str(nodes[len(nodes) // 2][0])


def timed(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=1000)
    parser.add_argument("--per-tree", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kavi-bench-") as folder:
        root = Path(folder) / "ws"
        adopt(root)
        middle = populate(root, args.trees, args.per_tree)
        rows: list[tuple[str, float]] = []
        with Forge.opened(root) as forge:
            rows.append(("executions (20 newest roots)", timed(lambda: list_executions(forge), args.runs)))
            rows.append(
                ("executions --skill word_count", timed(lambda: list_executions(forge, skill="word_count"), args.runs))
            )
            rows.append(
                (f"show-execution ({args.per_tree} runs)", timed(lambda: execution_tree(forge, middle), args.runs))
            )
            parent = begin_execution(forge, "chat", "bench")
            ws = forge.workspace
            top = timed(lambda: run_skill(ws, "word_count", {"text": "a b"}), args.runs)
            under = timed(lambda: run_skill(ws, "word_count", {"text": "a b"}, parent=parent), args.runs)
        conn = fast.connect(root / ".kavi" / "ledger.db")
        lookup = timed(lambda: fast.root_of(conn, parent), 1000)
        conn.close()
        rows += [
            ("run_skill at the top", top),
            ("run_skill under a parent", under),
            ("its parent's root (read)", lookup),
        ]
        total = args.trees * args.per_tree
        print(f"{total} runs in {args.trees} trees; median of {args.runs}")
        width = max(len(label) for label, _ in rows) + 2
        for label, seconds in rows:
            print(f"{label.ljust(width)}{seconds * 1000:9.3f} ms")
        print(f"{'under / top'.ljust(width)}{under / top:9.2f}")
        print(json.dumps({"runs": total, "ms": {label: round(s * 1000, 2) for label, s in rows}}))


if __name__ == "__main__":
    main()
