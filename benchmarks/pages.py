"""Dashboard benchmark: how long each page of `kavi serve` takes on a ledger with 10k proposals.

Run: uv run python -m benchmarks.pages [--proposals N] [--repeat R] [--no-kernel]

Two workspaces side by side in one run: the demo alone (its skills, runs and, unless --no-kernel, its kernel,
all through the real stages) and the same demo on top of N raw proposals with 10 chained events each (see
benchmarks/ledger.py). A real `kavi serve` answers each; a page's time is the median wall time of a GET from
a client on 127.0.0.1, after one warm-up request (the first plot request imports matplotlib).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchmarks.ledger import populate

from kavi.demo import run_demo
from kavi.stages.common import Forge
from kavi.workspace import init_workspace

KAVI = str(Path(sys.executable).parent / "kavi")
TARGET_S = 0.200


def build(root: Path, proposals: int, kernel: bool) -> None:
    workspace, _ = init_workspace(root)
    Forge.open(workspace).close()
    if proposals:
        populate(workspace, proposals, 10)
    report = run_demo(root, lambda *_: None, kernels=kernel)
    assert report.ok, report


def serve(root: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAVI_WORKSPACE": str(root)}
    process = subprocess.Popen([KAVI, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("kavi serve did not start")


def pages(client: httpx.Client, kernel: bool) -> dict[str, str]:
    """Each page's label (the same in both workspaces) and its path."""
    verification = client.get("/api/v1/proposals/word_count").json()["verifications"][-1]["id"]
    paths = ["/skills", "/proposals", "/proposals/word_count", "/live", "/integrity", "/kernels"]
    if kernel:
        paths += ["/kernels/vector_add", "/kernels/vector_add/speed.svg"]
    return {**{path: path for path in paths}, "/verifications/{id of word_count's}": f"/verifications/{verification}"}


def measure(port: int, paths: dict[str, str], repeat: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for label, path in paths.items():
            assert client.get(path).status_code == 200, path  # warm-up
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(path)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200, path
            timings[label] = statistics.median(samples)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proposals", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-kernel", action="store_true", help="skip the demo kernel (its verification is slow)")
    parser.add_argument("--keep", type=Path, help="build the workspaces here, or reuse them if they are there")
    args = parser.parse_args()
    kernel = not args.no_kernel
    base = args.keep or Path(tempfile.mkdtemp(prefix="kavi-pages-"))
    os.environ["HOME"] = str(base / "home")
    (base / "home").mkdir(parents=True, exist_ok=True)
    results: list[dict[str, float]] = []
    paths: dict[str, str] = {}
    for index, proposals in enumerate((0, args.proposals)):
        root = base / f"ws{index}"
        if not (root / ".kavi").is_dir():
            build(root, proposals, kernel)
        port = 8800 + index
        process = serve(root, port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                paths = pages(client, kernel)
            results.append(measure(port, paths, args.repeat))
        finally:
            process.terminate()
            process.wait(timeout=10)
    small, large = results
    print(f"{'page':<42} {'demo only':>11} {f'+{args.proposals} proposals':>18} {'ratio':>7}  target")
    for label in paths:
        ratio = large[label] / small[label] if small[label] else float("nan")
        verdict = "ok" if large[label] < TARGET_S else "SLOW"
        print(
            f"{label:<42} {small[label] * 1000:>9.1f}ms {large[label] * 1000:>16.1f}ms {ratio:>7.2f}  "
            f"< {TARGET_S * 1000:.0f} ms {verdict}"
        )


if __name__ == "__main__":
    main()
