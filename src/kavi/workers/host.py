"""What a worker's machine is and can do: its identity (recorded with every event it writes), its GPUs and
whether bubblewrap gives full isolation here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from typing import Any

ENV_GPUS = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class Host:
    name: str  # the worker's name (default worker@host:pid)
    host: str
    pid: int
    gpus: tuple[str, ...]  # the GPU indices this process may use
    full_isolation: bool  # bubblewrap runs here
    isolation_detail: str

    def origin(self, job_id: int, attempt: int, task: str) -> dict[str, Any]:
        """What every ledger event written for a job records about who wrote it."""
        return {
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "job_id": job_id,
            "attempt": attempt,
            "task": task,
            "full_isolation": self.full_isolation,
        }


def this_host(name: str | None = None) -> Host:
    from kavi.sandbox.bwrap import probe_bwrap

    hostname = socket.gethostname()
    pid = os.getpid()
    bwrap = probe_bwrap()
    detail = f"bubblewrap {bwrap.version or ''}".strip() if bwrap.works else (bwrap.error or "no bubblewrap")
    return Host(name or f"worker@{hostname}:{pid}", hostname, pid, visible_gpus(), bwrap.works, detail)


def visible_gpus() -> tuple[str, ...]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else those `nvidia-smi -L` lists."""
    configured = os.environ.get(ENV_GPUS)
    if configured is not None:
        return tuple(part.strip() for part in configured.split(",") if part.strip() and part.strip() != "-1")
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if listed.returncode != 0:
        return ()
    return tuple(str(index) for index, line in enumerate(listed.stdout.splitlines()) if line.startswith("GPU "))
