"""bubblewrap: find it, prove it works here, and build its command line.

bubblewrap is the boundary of a FULL isolation: a read-only root, private ``/tmp`` and ``/dev``, the
real home hidden under an empty tmpfs, only the declared write roots writable, no network unless the
class is NETWORK, its own PID namespace, and death with its parent. Finding the binary is not enough
(a container without user namespaces has it but cannot use it), so :func:`probe_bwrap` runs it once
per process.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 10.0
SANDBOX_ID = 65534  # nobody/nogroup: the uid and gid a child has inside its user namespace
GPU_DEVICE_PATTERNS = ("nvidia*", "dri")  # under /dev


@dataclass(frozen=True)
class BwrapInfo:
    """What :func:`probe_bwrap` found: where bubblewrap is, its version, whether it runs here."""

    path: str | None
    version: str | None
    works: bool
    error: str | None = None
    userns: bool = False  # whether --unshare-user (an unprivileged id inside) works too
    userns_error: str | None = None


@dataclass(frozen=True)
class Mounts:
    """The file system a sandboxed child sees, beyond the read-only root."""

    cwd: str
    write_roots: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    hidden_roots: tuple[str, ...] = ()
    visible_roots: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    tmp: str = "/tmp/.kavi"  # noqa: S108 - inside the sandbox, on its private tmpfs
    home: str = "/tmp/.kavi/home"  # noqa: S108


@functools.cache
def probe_bwrap() -> BwrapInfo:
    """Find bubblewrap and run the same namespaces kavi uses on ``true``; cached for the process.

    First with a user namespace (the child an unprivileged id inside, also when kavi is root), then,
    where user namespaces are switched off, without one: bubblewrap still gives the other
    namespaces and drops every capability, and the record says ``userns`` is missing.
    """
    path = shutil.which("bwrap")
    if path is None:
        return BwrapInfo(None, None, False, "bwrap is not on PATH")
    version = _version(path)
    userns_error = _try(path, userns=True)
    if userns_error is None:
        return BwrapInfo(path, version, True, userns=True)
    error = _try(path, userns=False)
    if error is not None:
        return BwrapInfo(path, version, False, error, userns_error=userns_error)
    return BwrapInfo(path, version, True, userns=False, userns_error=f"--unshare-user fails: {userns_error}")


def _try(path: str, *, userns: bool) -> str | None:
    """Why bubblewrap fails to run ``true`` with kavi's flags, or None when it runs."""
    true = shutil.which("true") or "/bin/true"
    argv = [path, *_namespace_flags(network=False, userns=userns), "--ro-bind", "/", "/", "--dev", "/dev"]
    argv += ["--proc", "/proc"]
    try:
        completed = subprocess.run([*argv, "--", true], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not run: {exc}"
    if completed.returncode != 0:
        return completed.stderr.decode("utf-8", "replace").strip() or f"exit {completed.returncode}"
    return None


def _version(path: str) -> str | None:
    try:
        completed = subprocess.run([path, "--version"], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = completed.stdout.decode("utf-8", "replace").strip()
    return text.rpartition(" ")[2] or None


def _namespace_flags(*, network: bool, userns: bool) -> list[str]:
    """The namespaces, plus the privilege drop: as root, bubblewrap keeps every capability in the
    sandbox unless told ``--cap-drop ALL``, and a user namespace maps the child to nobody."""
    flags = ["--unshare-user", "--uid", str(SANDBOX_ID), "--gid", str(SANDBOX_ID)] if userns else []
    flags += [
        "--cap-drop",
        "ALL",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
    ]
    if not network:
        flags.append("--unshare-net")
    return flags


def gpu_devices() -> tuple[str, ...]:
    """The device nodes a GPU kernel needs (NVIDIA and DRI), as present on this machine."""
    found: list[str] = []
    for pattern in GPU_DEVICE_PATTERNS:
        found.extend(sorted(str(path) for path in Path("/dev").glob(pattern)))
    return tuple(found)


def bwrap_argv(
    bwrap: str,
    command: Sequence[str],
    *,
    mounts: Mounts,
    env_fd: int,
    network: bool,
    userns: bool = True,
    seccomp_fd: int = -1,
) -> list[str]:
    """The bubblewrap command line; mount order matters: later mounts cover earlier ones.

    The environment is read from ``env_fd`` (see :func:`environment_arguments`), not given as
    ``--setenv`` on the command line, which any user of the machine can read in /proc.
    """
    argv = [bwrap, *_namespace_flags(network=network, userns=userns)]
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    argv += ["--tmpfs", "/tmp"]  # noqa: S108 - a fresh, private /tmp
    for hidden in mounts.hidden_roots:
        argv += ["--tmpfs", hidden]
    for visible in mounts.visible_roots:
        argv += ["--ro-bind-try", visible, visible]
    for path in (mounts.cwd, *mounts.readonly_paths):
        argv += ["--ro-bind", path, path]
    for root in mounts.write_roots:
        argv += ["--bind", root, root]
    for device in mounts.devices:
        argv += ["--dev-bind-try", device, device]
    argv += ["--dir", mounts.tmp, "--dir", mounts.home, "--chdir", mounts.cwd]
    argv += ["--clearenv", "--args", str(env_fd)]
    if seccomp_fd >= 0:
        argv += ["--seccomp", str(seccomp_fd)]
    return [*argv, "--", *command]


def environment_arguments(env: Mapping[str, str]) -> bytes:
    """``--setenv NAME VALUE`` for each variable, NUL-separated, as ``bwrap --args FD`` reads."""
    parts: list[str] = []
    for name, value in sorted(env.items()):
        parts += ["--setenv", name, value]
    return b"".join(part.encode() + b"\0" for part in parts)


def real_paths(paths: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    """Absolute, symlink-free, distinct paths: bind mounts follow links, so must the hook."""
    seen: list[str] = []
    for path in paths:
        real = os.path.realpath(os.fspath(path))
        if real not in seen:
            seen.append(real)
    return tuple(seen)
