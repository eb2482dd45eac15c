"""`kavi worker`: take jobs from the queues in the ledger's database and run them here.

A worker runs one job at a time (a verification already runs its gates in parallel). For the ``gpu`` queue
it starts one child worker per visible GPU, each with ``CUDA_VISIBLE_DEVICES`` set to its one GPU, so a GPU
never runs two speed gates at once; without a GPU it says so and leaves that queue to other machines.

A worker killed mid-job (kill -9, a lost machine) stops its heartbeat; every worker sweeps the queue now and
then, and a job whose worker has not sent a heartbeat for ``stalled_after_s`` goes back to the queue for
another worker (procrastinate's heartbeats, kavi's sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import procrastinate

from kavi.errors import UsageError
from kavi.ledger.jobs import add_progress, stalled_count
from kavi.ledger.store import Ledger
from kavi.workers.host import ENV_GPUS, Host
from kavi.workers.queue import QUEUES, conninfo, ensure_queue_schema
from kavi.workers.tasks import WorkerState, queue_app

HEARTBEAT_S = 10.0  # procrastinate's default
STALLED_AFTER_S = 30.0  # three missed heartbeats
STALLED_MAX = 3  # a job whose worker stopped this many times is failed: it may be what kills them
ENV_GPU_CHILD = "KAVI_WORKER_GPU_CHILD"  # set in a per-GPU child: it takes the gpu queue on its one GPU

logger = logging.getLogger("kavi.worker")


@dataclass(frozen=True)
class WorkerPlan:
    """What this worker process takes, decided before it starts (so `kavi worker` can say it)."""

    queues: tuple[str, ...]  # taken by this process
    gpu_children: tuple[str, ...]  # one child process per GPU for the gpu queue
    notes: tuple[str, ...]  # what a person should know (no GPU here, no bubblewrap here)


def plan_worker(requested: Sequence[str], host: Host) -> WorkerPlan:
    unknown = [queue for queue in requested if queue not in QUEUES]
    if unknown or not requested:
        raise UsageError(
            f"unknown queue(s): {', '.join(unknown) or '(none given)'}",
            hint="--queues takes a comma-separated list of " + ", ".join(QUEUES),
        )
    queues = [queue for queue in requested if queue != "gpu"]
    notes: list[str] = []
    gpu_children: tuple[str, ...] = ()
    if "gpu" in requested:
        if os.environ.get(ENV_GPU_CHILD):
            queues.append("gpu")
        elif host.gpus:
            gpu_children = host.gpus
        else:
            notes.append("no GPU here (no CUDA_VISIBLE_DEVICES, nvidia-smi lists none): this worker takes no gpu jobs")
    if not host.full_isolation:
        notes.append(f"no full isolation here ({host.isolation_detail}): jobs that require it are left to others")
    if not queues and not gpu_children:
        raise UsageError("this worker would take no jobs", hint="run it on a machine with a GPU, or add --queues gates")
    return WorkerPlan(tuple(queues), gpu_children, tuple(notes))


def check_timing(heartbeat_s: float, stalled_after_s: float) -> None:
    """A live worker must never look stalled: it beats at least twice within the stall limit."""
    if heartbeat_s <= 0 or stalled_after_s < 2 * heartbeat_s:
        raise UsageError(
            f"--stalled-after {stalled_after_s:g} must be at least twice --heartbeat {heartbeat_s:g}, both positive",
            hint="otherwise a live worker's job would be handed to another; the defaults are 10 and 30",
        )


def run_worker(
    workspace_root: Path,
    ledger: Ledger,
    plan: WorkerPlan,
    host: Host,
    *,
    heartbeat_s: float = HEARTBEAT_S,
    stalled_after_s: float = STALLED_AFTER_S,
    say: Callable[[str], None] = print,
) -> None:
    """Run until stopped (SIGINT/SIGTERM finish the current job first)."""
    ensure_queue_schema(ledger)
    children = _start_gpu_children(plan.gpu_children, workspace_root, host.name, heartbeat_s, stalled_after_s)
    try:
        if plan.queues:
            say(f"{host.name} takes {', '.join(plan.queues)} from the ledger's queue")
            asyncio.run(_work(ledger, plan.queues, workspace_root, host, heartbeat_s, stalled_after_s))
        for child in children:
            child.wait()
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=30)


def _start_gpu_children(
    gpus: Sequence[str], workspace_root: Path, name: str, heartbeat_s: float, stalled_after_s: float
) -> list[subprocess.Popen[bytes]]:
    """One worker process per GPU, that GPU its only visible one, named after this worker and its GPU."""
    children = []
    for gpu in gpus:
        env = {**os.environ, ENV_GPUS: gpu, ENV_GPU_CHILD: "1"}
        argv = [sys.executable, "-m", "kavi", "worker", "--queues", "gpu", "--name", f"{name}/gpu{gpu}"]
        argv += ["--workspace", str(workspace_root)]
        argv += ["--heartbeat", str(heartbeat_s), "--stalled-after", str(stalled_after_s)]
        children.append(subprocess.Popen(argv, env=env))
    return children


async def _work(
    ledger: Ledger,
    queues: Sequence[str],
    workspace_root: Path,
    host: Host,
    heartbeat_s: float,
    stalled_after_s: float,
) -> None:
    app = queue_app(procrastinate.PsycopgConnector(conninfo=conninfo(ledger)))
    async with app.open_async():
        sweeper = asyncio.create_task(_sweep_stalled(app, ledger, host.name, heartbeat_s, stalled_after_s))
        try:
            await app.run_worker_async(
                queues=list(queues),
                name=host.name,
                concurrency=1,
                wait=True,
                update_heartbeat_interval=heartbeat_s,
                stalled_worker_timeout=stalled_after_s,
                fetch_job_polling_interval=max(heartbeat_s / 2, 0.2),
                additional_context={"kavi": WorkerState(workspace_root, host)},
                install_signal_handlers=True,
            )
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper


async def _sweep_stalled(
    app: procrastinate.App, ledger: Ledger, name: str, interval_s: float, stalled_after_s: float
) -> None:
    """Put back in the queue every job whose worker stopped sending heartbeats; fail one whose workers stopped
    :data:`STALLED_MAX` times. Several workers may sweep at once: procrastinate changes only a job that is still
    running, and a sweeper that lost the race skips it."""
    manager = app.job_manager
    while True:
        await asyncio.sleep(interval_s)
        try:
            for job in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s):
                assert job.id is not None
                stalls = 1 + stalled_count(ledger.engine, job.id)
                with contextlib.suppress(procrastinate.exceptions.ProcrastinateException):
                    if stalls >= STALLED_MAX:
                        await manager.finish_job(job, procrastinate.jobs.Status.FAILED, delete_job=False)
                        why = f"its worker stopped {stalls} times (no heartbeat for {stalled_after_s:g} s): failed"
                        add_progress(ledger.engine, job.id, name, "error", why)
                    else:
                        await manager.retry_job(job)
                        why = f"its worker stopped (no heartbeat for {stalled_after_s:g} s): back in the queue"
                        add_progress(ledger.engine, job.id, name, "stalled", why)
                    logger.warning("job %s: %s", job.id, why)
            await manager.prune_stalled_workers(seconds_since_heartbeat=stalled_after_s)
        except procrastinate.exceptions.ProcrastinateException as exc:
            logger.warning("could not sweep stalled jobs: %s", exc)
