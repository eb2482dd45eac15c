"""The server's side of the warm zygote (:mod:`kavi.runtime.zygote`): a drop-in for :func:`run_isolated`.

:meth:`Zygote.run` takes what :func:`~kavi.sandbox.executor.run_isolated` takes and returns the same
:class:`~kavi.sandbox.executor.ExecResult`, so :func:`kavi.stages.run.run_skill` records a warm call exactly
as a cold one (hash check, validation, one execution row, the layers in force). The policy is derived once,
by :func:`~kavi.sandbox.executor.warm_plan`, from the same ``ExecPolicy`` the cold path uses.

A call goes cold (``run_isolated``), and the reason is counted, when the zygote cannot give what the cold
path would: not the skill child, not FULL here (no bubblewrap, ``KAVI_ISOLATION`` set), a NETWORK skill
(its way out is the egress proxy of the cold path) or a GPU kernel, a zygote that failed its start-up probe
or died, or a warm child that could not apply a layer (it exits 125 before running anything, and the call is
run again cold).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kavi.runtime.child import child_argv
from kavi.runtime.zygote import FDS_PER_CALL, PROBE, READY, SANDBOX_ID, SPAWN, zygote_argv
from kavi.sandbox import confine
from kavi.sandbox.executor import (
    KILL_GRACE_S,
    ExecPolicy,
    ExecResult,
    IsolationLevel,
    Layer,
    OutputCapture,
    WarmPlan,
    base_environment,
    finished_result,
    run_isolated,
    warm_plan,
)
from kavi.side_effects import SideEffect

START_TIMEOUT_S = 30.0
CONTROL_TIMEOUT_S = 10.0
# NETWORK needs the cold path's egress proxy (a relay inside the sandbox); a GPU kernel its devices.
COLD_CLASSES = frozenset({SideEffect.NETWORK, SideEffect.GPU_KERNEL})
_READ_CHUNK = 65536


class Zygote:
    """One warm zygote process and the calls forked from it; thread-safe, one instance per workspace."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._folder = tempfile.mkdtemp(prefix="kavi-warm-")
        # The mount point of every call's private tmpfs: each child mounts its own on it, in its own mount
        # namespace, so no call sees another's files and nothing is left on the host's disk.
        self.tmp = str(Path(self._folder, "tmp"))
        Path(self.tmp).mkdir(mode=0o700)
        self.unavailable: str | None = "not started"
        self.routes: Counter[str] = Counter()
        self._started = threading.Event()

    # --- life ------------------------------------------------------------------------------------------

    def start(self, *, wait: bool = True) -> Zygote:
        """Start the zygote and prove, with one probe child, that it applies every layer here; on failure
        :attr:`unavailable` says why and every call runs cold. ``wait=False`` starts it in the background (a
        server answers at once; a call waits for the start before choosing its path)."""
        self.unavailable = "starting"
        if wait:
            self._start_and_probe()
        else:
            threading.Thread(target=self._start_and_probe, name="kavi-zygote-start", daemon=True).start()
        return self

    def _start_and_probe(self) -> None:
        try:
            self._start()
            self.unavailable = self._probe()
        except Exception as exc:  # any failure to start means: every call runs cold, and says why
            self.unavailable = f"the zygote did not start: {exc}"
        finally:
            if self.unavailable is not None:
                self._stop_process()
            self._started.set()

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                zygote_argv(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                env=base_environment(),  # no secret, no setting of the server's: children read its memory
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            theirs.close()
        ours.settimeout(START_TIMEOUT_S)
        self._control = ours
        message = ours.recv(256)
        if message != READY:
            raise ValueError(message.decode("utf-8", "replace") or "it exited")
        ours.settimeout(CONTROL_TIMEOUT_S)

    def _probe(self) -> str | None:
        folder = Path(self._folder)
        plan = warm_plan(ExecPolicy(timeout_s=CONTROL_TIMEOUT_S), cwd=folder, tmp=self.tmp)
        if plan is None:
            return "this host does not run the cold path at FULL"
        outcome = self._call(plan, ExecPolicy(timeout_s=CONTROL_TIMEOUT_S), folder, b"{}", probe=True)
        if isinstance(outcome, str):
            return outcome
        try:
            report = json.loads(outcome.stdout)
        except ValueError:
            return f"the probe child answered nothing: {outcome.stderr.strip()[-300:]}"
        expected = {"uid": SANDBOX_ID, "gid": SANDBOX_ID, "pid": 1, "cap_eff": "0" * 16, "no_new_privs": "1"}
        if Layer.SECCOMP in plan.layers:
            expected["seccomp"] = "2"
        wrong = {key: report.get(key) for key, value in expected.items() if report.get(key) != value}
        return f"the probe child is not confined as planned: {wrong}" if wrong else None

    def close(self) -> None:
        self._stop_process()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _stop_process(self) -> None:
        with self._lock:
            if self._control is not None:
                self._control.close()  # the zygote sees EOF and exits; its keepers die with it
                self._control = None
            process, self._process = self._process, None
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def describe(self) -> dict[str, Any]:
        return {"kind": "warm", "unavailable": self.unavailable, "routes": dict(self.routes)}

    # --- running ---------------------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, cwd: Path, policy: ExecPolicy, stdin: bytes | None = None) -> ExecResult:
        """Run the skill child warm when every layer the cold path gives can be given, else cold."""
        if self.unavailable == "starting":
            self._started.wait(START_TIMEOUT_S)
        why_cold = self._why_cold(argv, policy)
        plan = None
        if why_cold is None:
            plan = warm_plan(policy, cwd=cwd, tmp=self.tmp)
            why_cold = "not FULL here" if plan is None else None
        if plan is not None:
            outcome = self._call(plan, policy, Path(os.path.realpath(cwd)), stdin or b"")
            if not isinstance(outcome, str):
                self.routes["warm"] += 1
                return outcome
            self.unavailable = outcome  # nothing of the skill ran: say why, and run it cold
            self._stop_process()
            why_cold = outcome
        self.routes[f"cold: {why_cold}"] += 1
        return run_isolated(argv, cwd=cwd, policy=policy, stdin=stdin)

    def _why_cold(self, argv: Sequence[str], policy: ExecPolicy) -> str | None:
        if list(argv) != child_argv():
            return "not the skill child"
        if policy.side_effect in COLD_CLASSES:
            return f"{policy.side_effect} runs on the cold path"
        if self.unavailable is not None:
            return self.unavailable
        return None

    def _call(
        self, plan: WarmPlan, policy: ExecPolicy, cwd: Path, stdin: bytes, *, probe: bool = False
    ) -> ExecResult | str:
        """One warm child; a string says why none could be started or confined (nothing of it ran)."""
        ends = [os.pipe() for _ in range(FDS_PER_CALL)]  # request, report, stderr, status
        child_ends = [ends[0][0], ends[1][1], ends[2][1], ends[3][1]]
        request_w, report_r, stderr_r, status_r = ends[0][1], ends[1][0], ends[2][0], ends[3][0]
        try:
            pidfd = self._spawn(child_ends)
        finally:
            for fd in child_ends:
                os.close(fd)
        if isinstance(pidfd, str):
            for fd in (request_w, report_r, stderr_r, status_r):
                os.close(fd)
            return pidfd
        started = time.perf_counter()
        header = {
            "cwd": str(cwd),
            "env": plan.env,
            "confine": plan.confinement.to_json(),
            "rlimits": plan.rlimits,
            "tmp": self.tmp,
            PROBE: probe,
        }
        try:
            _write_all(request_w, json.dumps(header).encode() + b"\n" + stdin)
        except OSError:
            pass  # the keeper is gone: its status says why
        finally:
            os.close(request_w)
        out, err = OutputCapture(policy.max_output_bytes), OutputCapture(policy.max_output_bytes)
        try:
            reason = _pump(report_r, stderr_r, out, err, pidfd, deadline=started + policy.timeout_s)
            status = _read_status(status_r, deadline=time.perf_counter() + KILL_GRACE_S + 1.0)
        finally:
            _kill(pidfd)  # whatever is left of the call (nothing, normally)
            for fd in (report_r, stderr_r, status_r, pidfd):
                os.close(fd)
        if "error" in status:
            return f"a warm child could not start: {status['error']}"
        returncode = int(status.get("returncode", -signal.SIGKILL))
        stderr_text = bytes(err.data).decode("utf-8", "replace")
        if returncode == confine.CONFINE_EXIT_CODE and confine.CONFINE_MARKER in stderr_text:
            return f"a warm child could not apply its layers: {stderr_text.strip()[-300:]}"
        return finished_result(
            returncode=returncode,
            stdout=out,
            stderr=err,
            started=started,
            reason=reason,
            cpu_used=float(status.get("cpu_s", 0.0)),
            policy=policy,
            level=IsolationLevel.FULL,
            planned=plan.layers,
        )

    def _spawn(self, fds: list[int]) -> int | str:
        """Ask the zygote to fork a keeper holding ``fds``; its pidfd, or why not."""
        with self._lock:
            control = self._control
            if control is None:
                return self.unavailable or "the zygote is not running"
            try:
                socket.send_fds(control, [SPAWN], fds)
                message, got, _, _ = socket.recv_fds(control, 256, 1)
            except OSError as exc:
                return f"the zygote stopped answering: {exc}"
        if not got:
            return f"the zygote refused: {message.decode('utf-8', 'replace') or 'it exited'}"
        return got[0]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _kill(pidfd: int) -> None:
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)


def _pump(
    report: int, stderr: int, out: OutputCapture, err: OutputCapture, pidfd: int, *, deadline: float
) -> str | None:
    """Read both pipes until they close (the sandbox's init has exited and its namespace with it); kill the
    call on timeout or overflow. Returns why it killed."""
    selector = selectors.DefaultSelector()
    selector.register(report, selectors.EVENT_READ, out)
    selector.register(stderr, selectors.EVENT_READ, err)
    reason: str | None = None
    try:
        while selector.get_map():
            now = time.perf_counter()
            if now >= deadline:
                if reason is not None:
                    break  # killed, and still something holds a pipe: stop waiting for it
                reason = "timeout"
                _kill(pidfd)
                deadline = now + KILL_GRACE_S
            for key, _ in selector.select(timeout=max(0.0, deadline - now)):
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                capture: OutputCapture = key.data
                capture.feed(chunk)
                if capture.overflowed and reason is None:
                    reason = "output"
                    _kill(pidfd)
                    deadline = time.perf_counter() + KILL_GRACE_S
    finally:
        selector.close()
    return reason


def _read_status(fd: int, *, deadline: float) -> dict[str, Any]:
    """The keeper's one status object; empty when it was killed first."""
    import select

    data = bytearray()
    while (left := deadline - time.perf_counter()) > 0 and select.select([fd], [], [], left)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    try:
        status = json.loads(data) if data else {}
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}
