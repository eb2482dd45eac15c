"""The warm runner against the cold path, side by side in one run.

    uv run python benchmarks/serve.py [--runs N] [--clients C] [--calls M]

One workspace (the demo's TRUSTED word_count, READ_ONLY), one `kavi serve` on its warm runner, and four ways to
call the skill: `kavi run-skill --no-server` (a whole process and a fresh isolated child), `kavi run-skill`
through the server's socket (a whole process), an HTTP call and an MCP tool call (streamable HTTP, the SDK's
client) on the warm runner. Latency: ``--runs`` calls one after another (p50, p99). Throughput: ``--clients``
concurrent clients making ``--calls`` calls each (calls/s, and p50/p99 under that load; every call an isolated,
recorded run). Every call of every row is checked (output and exit status), and `kavi audit` must be clean
after the load; the table says on which machine it ran. The load test of issue 12 is `--clients 8 --calls 200`.

Targets (2-core machine): HTTP and MCP <= 30 ms median, <= 80 ms p99, >= 20 isolated calls/s;
run-skill through the server <= 0.15 s whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx

KAVI = str(Path(sys.executable).parent / "kavi")
INPUT = {"text": "the quick brown fox"}
EXPECTED = {"count": 4}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(workspace: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([KAVI, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            runner = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).json()["runner"]
        except (httpx.TransportError, ValueError):
            time.sleep(0.2)
            continue
        if runner.get("unavailable") == "starting":  # the zygote starts in the background
            time.sleep(0.2)
            continue
        if runner.get("unavailable"):
            raise SystemExit(f"the warm runner is unavailable here: {runner['unavailable']}")
        return server
    server.kill()
    raise SystemExit("kavi serve did not answer within 60 s")


# --- one call of each kind ---------------------------------------------------------------------------------


def run_skill_call(env: dict[str, str], *extra: str) -> Callable[[], None]:
    argv = [KAVI, "run-skill", "word_count", "--json", json.dumps(INPUT), *extra]

    def call() -> None:
        completed = subprocess.run(argv, capture_output=True, env=env, check=False)
        if completed.returncode != 0 or json.loads(completed.stdout)["output"] != EXPECTED:
            raise SystemExit(f"{argv} failed: {completed.stdout.decode()} {completed.stderr.decode()}")

    return call


def http_call(url: str) -> Callable[[], None]:
    local = threading.local()

    def call() -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=60)
        answer = local.client.post("/api/v1/skills/word_count/run", json=INPUT)
        if answer.status_code != 200 or answer.json()["output"] != EXPECTED:
            raise SystemExit(f"HTTP call failed: {answer.status_code} {answer.text}")

    return call


async def mcp_calls(url: str, count: int, samples: list[float]) -> None:
    from mcp import Client

    async with Client(f"{url}/mcp", read_timeout_seconds=60) as client:
        for _ in range(count):
            start = time.perf_counter()
            result = await client.call_tool("word_count", INPUT)
            samples.append(time.perf_counter() - start)
            if result.is_error or result.structured_content != EXPECTED:
                raise SystemExit(f"MCP call failed: {result}")


# --- measuring ---------------------------------------------------------------------------------------------


def latencies(call: Callable[[], None], runs: int) -> list[float]:
    call()  # warm-up: connections, caches
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def throughput(call: Callable[[], None], clients: int, calls: int) -> tuple[float, list[float]]:
    """Calls per second with ``clients`` concurrent clients, and each call's latency under that load."""
    errors: list[BaseException] = []
    samples: list[float] = []

    def client() -> None:
        try:
            for _ in range(calls):
                start = time.perf_counter()
                call()
                samples.append(time.perf_counter() - start)
        except BaseException as exc:  # a failed call fails the benchmark, after the others stop
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"a call failed under load: {errors[0]}")
    return clients * calls / elapsed, samples


def mcp_latencies(url: str, runs: int) -> list[float]:
    samples: list[float] = []
    anyio.run(mcp_calls, url, runs + 1, samples)
    return samples[1:]


def mcp_throughput(url: str, clients: int, calls: int) -> tuple[float, list[float]]:
    samples: list[float] = []

    async def together() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(clients):
                group.start_soon(mcp_calls, url, calls, samples)

    start = time.perf_counter()
    anyio.run(together)
    return clients * calls / (time.perf_counter() - start), samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100, help="sequential calls per row (p50, p99)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for calls/s")
    parser.add_argument("--calls", type=int, default=25, help="calls per client for calls/s")
    parser.add_argument("--cold-runs", type=int, default=30, help="sequential calls of the cold row (slow)")
    args = parser.parse_args()
    from kavi.demo import run_demo

    workspace = Path(tempfile.mkdtemp(prefix="kavi-bench-serve-")) / "ws"
    run_demo(workspace, lambda *_: None)
    env = {**os.environ, "KAVI_WORKSPACE": str(workspace)}
    env.pop("KAVI_ISOLATION", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(workspace, port, env)
    rows: list[tuple[str, list[float], tuple[float, list[float]]]] = []
    try:
        cold = run_skill_call(env, "--no-server")
        rows.append(
            (
                "kavi run-skill --no-server (whole process)",
                latencies(cold, args.cold_runs),
                throughput(cold, args.clients, max(2, args.calls // 5)),
            )
        )
        through = run_skill_call(env)
        rows.append(
            (
                "kavi run-skill via server (whole process)",
                latencies(through, args.runs),
                throughput(through, args.clients, args.calls),
            )
        )
        http = http_call(url)
        rows.append(
            (
                "HTTP POST /skills/word_count/run (warm)",
                latencies(http, args.runs),
                throughput(http, args.clients, args.calls),
            )
        )
        rows.append(
            (
                "MCP tools/call word_count (warm)",
                mcp_latencies(url, args.runs),
                mcp_throughput(url, args.clients, args.calls),
            )
        )
        runner: dict[str, Any] = httpx.get(f"{url}/api/v1/health").json()["runner"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    audited = subprocess.run([KAVI, "audit", "--json"], capture_output=True, env=env, check=False)
    audit = json.loads(audited.stdout)
    if audited.returncode != 0:
        raise SystemExit(f"the ledger does not audit clean after the load: {audited.stdout.decode()[:2000]}")
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores, load average {os.getloadavg()[0]:.1f}; under load: {args.clients} concurrent clients")
    print(f"warm runner: {runner}")
    print(f"every call checked; `kavi audit` clean afterwards ({audit.get('counts', {}).get('executions')} executions)")
    print(f"{'call':<46} {'p50 ms':>8} {'p99 ms':>8} {'load p50':>9} {'load p99':>9} {'calls/s':>8}")
    for name, samples, (rate, loaded) in rows:
        p50, p99 = statistics.median(samples) * 1000, percentile(samples, 0.99) * 1000
        l50, l99 = statistics.median(loaded) * 1000, percentile(loaded, 0.99) * 1000
        print(f"{name:<46} {p50:>8.1f} {p99:>8.1f} {l50:>9.1f} {l99:>9.1f} {rate:>8.1f}")
    print("targets: HTTP/MCP p50 <= 30 ms, p99 <= 80 ms, >= 20 calls/s; run-skill via server <= 150 ms")


if __name__ == "__main__":
    main()
