"""The warm zygote: one process per served workspace that forks a fully confined child per call.

    python -I -B -m kavi.runtime.zygote CONTROL_FD

Started by :class:`kavi.sandbox.warm.Zygote` with the base environment only. It imports pydantic and the
runtime a skill child needs (:mod:`kavi.runtime.child` and what it loads), builds one throwaway model so
pydantic's lazy imports are done, freezes its heap (``gc.freeze``) and then only waits on its control socket.
Whatever it holds, every child can read (a fork copies it), so it never opens the ledger, never sees a
secret, an input or a skill's bytes, and runs no thread: a call's data travels from the server straight to
the call's own child over pipes the server made, which the zygote only hands on (``SCM_RIGHTS``) and closes.

Per call (``spawn``), three processes, none of them the zygote:

* the *keeper* (forked from the zygote; kavi's code only): reads the plan and the request from its pipe,
  enters the working folder, ``unshare``s a user namespace (mapped to uid/gid 65534, also for root) with
  mount, IPC, UTS, PID and network namespaces, and forks the sandbox's init; it waits for it and writes its
  exit status and CPU time on the status pipe. The server kills a call by killing the keeper (a pidfd the
  zygote sends back), and the init dies with it (``PR_SET_PDEATHSIG``), and the whole PID namespace with it.
* the *init* (PID 1 of the new namespace): mounts a fresh ``/proc`` and a private tmpfs on the call's tmp
  folder, brings ``lo`` up, points 0/1/2 at ``/dev/null``/the report pipe/the stderr pipe and closes every
  other descriptor, takes the plan's environment, lowers the limits, reseeds ``random``, applies no_new_privs,
  the capability drop, Landlock and seccomp (:func:`kavi.sandbox.confine.apply`, fail closed: exit 125 and
  run nothing), then is the reporter of :mod:`kavi.runtime.child`: it forks the worker, which installs the
  audit hook before the skill's bytes are compiled, and judges its one frame. When it exits, the kernel kills
  whatever the skill left in the namespace.
"""

# string paths on purpose, as in the other child-side modules
# ruff: noqa: PTH102, PTH208

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sys
from typing import Any

from kavi.runtime import child
from kavi.sandbox import confine

ZYGOTE_MODULE = "kavi.runtime.zygote"
READY = b"ready"
SPAWN = b"spawn"
PROBE = "probe"  # a plan key: apply every layer, then report what the child sees instead of running a skill
SANDBOX_ID = 65534
FDS_PER_CALL = 4  # request (read), report (write), stderr (write), status (write)

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18
_PR_SET_PDEATHSIG = 1
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def zygote_argv(control_fd: int) -> list[str]:
    return [sys.executable, "-I", "-B", "-m", ZYGOTE_MODULE, str(control_fd)]


def preload() -> None:
    """Import what every skill child needs and build one model, so a fork starts with all of it loaded."""
    import ctypes  # noqa: F401 - confine and the reporter load it in every child
    import random  # noqa: F401 - imported here so its fork handler reseeds every child

    from kavi.runtime import hook, invoke, loader, relay  # noqa: F401
    from kavi.spec import build_model

    schema = {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "items": {"type": "array", "items": {"type": "integer"}},
            "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        },
        "required": ["text"],
    }
    build_model(schema, "WarmUp").model_validate({"text": "", "items": [1], "score": None})
    confine._libc()


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[0]))
    preload()
    gc.collect()
    gc.freeze()
    if _thread_count() != 1:
        control.send(b"error: the zygote is not single-threaded")
        return 1
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the keepers; nothing here waits
    me = os.getpid()
    control.send(READY)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 64, FDS_PER_CALL)
        except OSError:
            return 0
        if not message:  # the server is gone: so are we (and every keeper, through its death signal)
            return 0
        if message != SPAWN or len(fds) != FDS_PER_CALL:
            for fd in fds:
                os.close(fd)
            control.send(b"error: bad request")
            continue
        pid = os.fork()
        if pid == 0:
            control.close()
            _keeper(fds, me)  # never returns
        for fd in fds:
            os.close(fd)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            control.send(f"error: pidfd_open: {exc}".encode())
            continue
        try:
            socket.send_fds(control, [b"%d" % pid], [pidfd])
        finally:
            os.close(pidfd)


def _thread_count() -> int:
    try:
        return len(os.listdir(f"/proc/{os.getpid()}/task"))
    except OSError:
        return 1


# --- the keeper ----------------------------------------------------------------------------------------


def _keeper(fds: list[int], zygote: int) -> None:
    request_fd, report_fd, stderr_fd, status_fd = fds
    code = confine.CONFINE_EXIT_CODE
    answer: dict[str, Any]
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        libc = confine._libc()
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != zygote:
            os._exit(code)
        data = _read_all(request_fd)
        os.close(request_fd)
        header, _, request = data.partition(b"\n")
        plan = json.loads(header)
        os.chdir(plan["cwd"])
        uid, gid = os.geteuid(), os.getegid()
        flags = _CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWIPC | _CLONE_NEWUTS | _CLONE_NEWPID | _CLONE_NEWNET
        _check(libc.unshare(flags), "unshare")
        _write("/proc/self/uid_map", f"{SANDBOX_ID} {uid} 1\n")
        _write("/proc/self/setgroups", "deny\n")
        _write("/proc/self/gid_map", f"{SANDBOX_ID} {gid} 1\n")
        life_read, life_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(status_fd)
            os.close(life_write)
            _init(plan, request, report_fd, stderr_fd, life_read)  # never returns
        os.close(report_fd)
        os.close(stderr_fd)
        os.close(life_read)
        _, status, usage = os.wait4(pid, 0)
        answer = {"returncode": os.waitstatus_to_exitcode(status), "cpu_s": usage.ru_utime + usage.ru_stime}
        code = 0
    except BaseException as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        os.write(status_fd, json.dumps(answer).encode())
    finally:
        os._exit(code)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _check(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, f"{what} failed: {os.strerror(errno)}")


# --- the init: PID 1 of the call's namespaces, then its reporter ---------------------------------------


def _init(plan: dict[str, Any], request: bytes, report_fd: int, stderr_fd: int, life: int) -> None:
    try:
        libc = confine._libc()
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        import select

        if select.select([life], [], [], 0)[0]:  # the keeper died before the death signal was armed
            os._exit(confine.CONFINE_EXIT_CODE)
        os.close(life)
        os.setsid()
        _mount(libc, plan["tmp"])
        _loopback_up()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(report_fd, 1)
        os.dup2(stderr_fd, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 65536)
        os.environ.clear()
        os.environ.update(plan["env"])
        os.mkdir(plan["env"]["HOME"], 0o700)
        _lower_limits(plan["rlimits"])
        import random

        random.seed()
        confine.apply(confine.Confinement.from_json(plan["confine"]))
    except BaseException as exc:
        _say(f"{confine.CONFINE_MARKER}{type(exc).__name__}: {exc}\n", 2)
        os._exit(confine.CONFINE_EXIT_CODE)
    try:
        child._not_dumpable()
        report = _probe_report() if plan.get(PROBE) else child.supervise(json.loads(request))
        _say(json.dumps(report, default=str) + "\n", 1)
    finally:
        os._exit(0)


def _mount(libc: Any, tmp: str) -> None:
    """A private propagation, a /proc of this PID namespace and a fresh tmpfs on the call's tmp folder."""
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    _check(libc.mount(b"proc", b"/proc", b"proc", flags, None), "mounting /proc")
    _check(libc.mount(b"tmpfs", tmp.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0700"), "mounting tmp")


def _loopback_up() -> None:
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        current = fcntl.ioctl(probe, _SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack_from("16sH", current)[1] | _IFF_UP
        fcntl.ioctl(probe, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags))


def _lower_limits(limits: list[list[int]]) -> None:
    import resource

    for which, soft, hard in limits:  # the address space comes last (kavi.sandbox.executor.rlimit_values)
        current_hard = resource.getrlimit(which)[1]
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))


def _say(text: str, fd: int) -> None:
    view = memoryview(text.encode("utf-8"))
    while view:
        view = view[os.write(fd, view) :]


def _probe_report() -> dict[str, Any]:
    """What the start-up probe checks: the child is 65534, PID 1, alone, with no capability left."""
    with open("/proc/self/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {
        "ok": True,
        "uid": os.getuid(),
        "gid": os.getgid(),
        "pid": os.getpid(),
        "cap_eff": fields.get("CapEff", "").strip(),
        "cap_bnd": fields.get("CapBnd", "").strip(),
        "no_new_privs": fields.get("NoNewPrivs", "").strip(),
        "seccomp": fields.get("Seccomp", "").strip(),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
