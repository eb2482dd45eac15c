"""Spawning :mod:`kavi.gpu.child` through the isolated executor.

The child gets a scrubbed environment plus what kernels need: the Triton interpreter switch when
there is
no GPU (set before any candidate module is imported), a private Triton cache, and the CUDA device
selection the parent was given.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kavi.gpu.channel import KEY_BYTES, MAC_SUFFIX, answer_mac
from kavi.sandbox.executor import ExecPolicy, ExecResult, run_isolated
from kavi.side_effects import SideEffect

_PASSED_THROUGH = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "CUDA_HOME")


@dataclass(frozen=True)
class ChildRun:
    """How a child run ended, with its stderr tail for the report."""

    result: ExecResult
    out_path: Path
    key: bytes = b""
    started: float = 0.0  # the parent's wall clock (time.time()) around the child
    ended: float = 0.0

    @property
    def failure(self) -> str | None:
        if self.result.timed_out:
            return f"timed out after {self.result.duration_s:.0f}s"
        if self.result.returncode != 0:
            tail = "\n".join(self.result.stderr.strip().splitlines()[-15:])
            return f"exited with status {self.result.returncode}:\n{tail}"
        if not self.out_path.exists():
            return "wrote no answer"
        if not self.authentic:
            return (
                "wrote an answer the harness did not sign [timing-channel]: it was forged or altered "
                "after the harness wrote it"
            )
        return None

    @property
    def authentic(self) -> bool:
        """Whether the answer file carries the harness's MAC under this run's one-time key."""
        mac_path = self.out_path.with_name(self.out_path.name + MAC_SUFFIX)
        if not self.key or not mac_path.is_file():
            return False
        expected = answer_mac(self.key, self.out_path.read_bytes())
        return hmac.compare_digest(expected, mac_path.read_text(encoding="ascii").strip())


def private_copy(kernel_file: Path, workdir: Path) -> Path:
    """The candidate copied alone into the child's scratch folder: the folder it is imported from
    holds nothing else, so no reference file (``kernels/references/``) is on its import path or
    readable to it."""
    folder = workdir / "candidate"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / kernel_file.name
    shutil.copyfile(kernel_file, target)
    return target


def child_environment(workdir: Path, *, interpret: bool) -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    env["TRITON_CACHE_DIR"] = str(workdir / "triton-cache")
    env["TORCHINDUCTOR_CACHE_DIR"] = str(workdir / "inductor-cache")
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return env


def spawn_child(
    command: str,
    request: dict[str, Any],
    workdir: Path,
    *,
    out_name: str,
    timeout_s: float,
    interpret: bool,
    require_isolation: bool = False,
    readable: tuple[Path, ...] = (),
) -> ChildRun:
    """Write the request, run ``python -m kavi.gpu.child COMMAND request.json`` in ``workdir``,
    return.

    The child reads a one-time key from its stdin before it imports any candidate code and signs its
    answer with it; :attr:`ChildRun.failure` refuses an answer without that signature, so a candidate
    that writes the answer file itself (its numbers, its outputs) is caught, not believed."""
    workdir.mkdir(parents=True, exist_ok=True)
    out_path = workdir / out_name
    out_path.unlink(missing_ok=True)
    request = {**request, "out_path": str(out_path)}
    request_path = workdir / f"{command}-request.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    policy = ExecPolicy(
        side_effect=SideEffect.GPU_KERNEL,
        timeout_s=timeout_s,
        env=child_environment(workdir, interpret=interpret),
        # The child's private scratch folder (inputs, its answer, Triton's cache) is its only writable place.
        write_roots=(workdir.resolve(),),
        readonly_paths=tuple(path.resolve() for path in readable),
        require_isolation=require_isolation,
    )
    key = secrets.token_bytes(KEY_BYTES)
    out_path.with_name(out_path.name + MAC_SUFFIX).unlink(missing_ok=True)
    started = time.time()
    result = run_isolated(
        [sys.executable, "-m", "kavi.gpu.child", command, str(request_path)],
        cwd=workdir,
        policy=policy,
        stdin=key,
    )
    return ChildRun(result, out_path, key, started, time.time())
