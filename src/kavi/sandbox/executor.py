"""Run untrusted code in a child process with no more power than it declared.

Every gate that executes candidate code, every `run-skill` and every builder subprocess goes through
:func:`run_isolated`. Three layers, each recorded in the result as an :class:`IsolationLevel`:

* FULL: bubblewrap namespaces (read-only root, private /tmp and /dev, home hidden, only the write
  roots writable, no network (NETWORK's only way out is the egress proxy, :mod:`kavi.sandbox.egress`),
  own PID namespace, dies with its parent);
  plus all below.
* FALLBACK: no namespaces, but rlimits (CPU, address space, file size, processes, open files), a
  private temporary folder, and a scrubbed environment. Chosen when bubblewrap is missing or does
  not work here, or when ``KAVI_ISOLATION=fallback``.
* PROCESS: a scrubbed environment, the timeout and the output caps only (no ``resource`` module, or
  ``KAVI_ISOLATION=process``).

At every level the wall-clock timeout kills the whole process group, output is streamed and capped
(never buffered without bound), and a side-effect audit hook is in force when the command was built
with :func:`kavi.runtime.guard.guarded_python_argv`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from secrets import token_hex
from typing import TYPE_CHECKING, Any

from kavi.errors import ConfigError, IsolationError
from kavi.runtime.audit import EffectPolicy, checked_root, default_hidden_roots
from kavi.runtime.guard import is_guarded
from kavi.runtime.hook import BLOCKED_EXIT_CODE, BLOCKED_MARKER
from kavi.runtime.relay import RELAY_ENV
from kavi.sandbox import bwrap, confine
from kavi.side_effects import SideEffect

if TYPE_CHECKING:
    from kavi.side_effects import EffectDeclaration

DEFAULT_MAX_OUTPUT = 1_000_000
ISOLATION_ENV = "KAVI_ISOLATION"
KILL_GRACE_S = 1.0
_READ_CHUNK = 65536
_MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")


class Layer(StrEnum):
    """One mechanism that confines a child. :data:`LAYERS` is the one table of them."""

    USERNS = "userns"
    CAPS = "caps"
    PIDNS = "pidns"
    NETNS = "netns"
    SECCOMP = "seccomp"
    LANDLOCK = "landlock"
    RLIMITS = "rlimits"
    HOOK = "hook"


# name -> (what it is, whether it is a boundary). The kernel layers and the parent are boundaries;
# the hook runs in the candidate's own interpreter and is advisory. `--require-isolation` requires
# every boundary layer this host supports (the hook depends on the command, not the host).
LAYERS: dict[Layer, tuple[str, bool]] = {
    Layer.USERNS: ("user namespace, the child is uid 65534 inside (bubblewrap --unshare-user)", True),
    Layer.CAPS: ("every capability dropped (bwrap --cap-drop ALL; capset + bounding set in the fallback)", True),
    Layer.PIDNS: ("own PID namespace: host processes are invisible (bubblewrap --unshare-pid)", True),
    Layer.NETNS: ("own network namespace with only lo (bubblewrap --unshare-net), for non-NETWORK classes", True),
    Layer.SECCOMP: ("seccomp filter: mount, namespaces, ptrace, raw sockets, devices ... refused", True),
    Layer.LANDLOCK: ("Landlock: read, write and execute only where declared; signals scoped", True),
    Layer.RLIMITS: ("rlimits: CPU, memory, file size, processes, open files", True),
    Layer.HOOK: ("audit hook in the child's interpreter: named errors, advisory only", False),
}


class IsolationLevel(StrEnum):
    """How strongly a child was confined; recorded with every verification and execution."""

    FULL = "full"  # bubblewrap namespaces + rlimits + scrubbed env + audit hook
    FALLBACK = "fallback"  # rlimits + scrubbed env + audit hook, no namespaces
    PROCESS = "process"  # scrubbed env + timeout only


@dataclass(frozen=True)
class ExecPolicy:
    """The power a child gets. Paths are absolute; ``env`` is the whole environment it will see.

    ``secrets`` reach the child only for a SECRET_READ policy. A limit of ``None`` means "not
    limited" (a GPU kernel needs a large address space); ``max_procs`` counts processes beyond those
    this user already runs, because RLIMIT_NPROC is per user, not per process tree.
    """

    side_effect: SideEffect = SideEffect.READ_ONLY
    timeout_s: float = 60.0
    env: Mapping[str, str] = field(default_factory=dict)
    write_roots: tuple[Path, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    max_output_bytes: int = DEFAULT_MAX_OUTPUT
    require_isolation: bool = False
    cpu_s: int | None = 60
    memory_bytes: int | None = 4 * 1024**3
    max_file_bytes: int | None = 256 * 1024**2
    max_procs: int | None = 64
    max_open_files: int | None = 256
    readonly_paths: tuple[Path, ...] = ()
    # False: the working folder is where relative write roots resolve, not something the child may read
    # (run-skill works in the workspace, which holds the ledger, kavi.toml and whatever else is there).
    read_cwd: bool = True
    read_roots: tuple[Path, ...] = ()  # the spec's declared read roots, resolved and symlink-free
    secrets: Mapping[str, str] = field(default_factory=dict)
    hide_home: bool = True


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    isolation: IsolationLevel
    truncated: bool = False
    blocked: tuple[dict[str, str], ...] = ()
    killed_reason: str | None = None  # "timeout", "cpu", "memory", "output" or "interrupted"
    layers: tuple[str, ...] = ()  # the LAYERS in force for this child, in table order

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.blocked and self.killed_reason is None


@dataclass(frozen=True)
class IsolationReport:
    """What this machine offers, for `kavi doctor` and for the record of every run."""

    level: IsolationLevel
    forced: str | None
    bwrap_path: str | None
    bwrap_version: str | None
    bwrap_works: bool
    bwrap_error: str | None
    rlimits: tuple[str, ...]
    audit_hooks: bool
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": str(self.level),
            "forced": self.forced,
            "bwrap": {
                "path": self.bwrap_path,
                "version": self.bwrap_version,
                "works": self.bwrap_works,
                "error": self.bwrap_error,
            },
            "rlimits": list(self.rlimits),
            "audit_hooks": self.audit_hooks,
            "notes": list(self.notes),
        }


def base_environment() -> dict[str, str]:
    """The minimal environment every child starts from: nothing of the user's but a safe PATH."""
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "NO_COLOR": "1",
        # pydantic scans every installed distribution for plugins on first use (about 35 ms); no child of
        # kavi's needs a pydantic plugin, and an untrusted one has no business loading one.
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }


def policies_for_spec(
    spec: EffectDeclaration,
    workspace: Path,
    *,
    secrets: Mapping[str, str] | None = None,
    extra_write_roots: Sequence[Path] = (),
    read_workspace: bool = True,
    **limits: Any,
) -> tuple[ExecPolicy, EffectPolicy]:
    """The OS policy and the hook policy of one spec, consistent with each other.

    Write roots are anchored at ``workspace``; ``extra_write_roots`` (a gate's scratch folder) are
    writable for every class, at both layers. ``secrets`` maps the spec's secret names to values;
    a name the spec does not declare is dropped. ``limits`` are ExecPolicy fields (``timeout_s``).
    ``read_workspace`` False: the child reads nothing of ``workspace`` beyond its declared roots (a skill's
    child gets its bytes on stdin; a workspace holds the ledger, kavi.toml and secrets files).
    """
    effects = EffectPolicy.from_spec(spec, workspace)
    read_roots = tuple(checked_root(workspace, entry, "read root") for entry in getattr(spec, "read_roots", ()))
    extra = tuple(Path(os.path.realpath(path)) for path in extra_write_roots)
    effects = replace(effects, extra_write_roots=tuple(str(path) for path in extra))
    declared = {name: value for name, value in (secrets or {}).items() if name in spec.secrets}
    policy = ExecPolicy(
        side_effect=spec.side_effect,
        write_roots=tuple(Path(root) for root in effects.write_roots) + extra,
        allow_hosts=tuple(spec.allow_hosts),
        executables=tuple(spec.executables),
        secrets=declared,
        readonly_paths=(Path(os.path.realpath(workspace)),) if read_workspace else (),
        read_cwd=read_workspace,
        read_roots=read_roots,
        **limits,
    )
    return policy, effects


# --- choosing the level -----------------------------------------------------------------------


def _resource_module() -> Any:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    return resource


def _forced_level() -> str | None:
    value = os.environ.get(ISOLATION_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in ("full", "fallback", "process"):
        raise ConfigError(
            f"{ISOLATION_ENV}={value!r} is not an isolation level",
            hint="use full, fallback, process or auto (or unset it)",
        )
    return value


def select_level() -> IsolationLevel:
    """The strongest level available here, or the one ``KAVI_ISOLATION`` forces."""
    forced = _forced_level()
    if forced == "process":
        return IsolationLevel.PROCESS
    if forced == "fallback":
        return IsolationLevel.FALLBACK if _resource_module() is not None else IsolationLevel.PROCESS
    info = bwrap.probe_bwrap() if sys.platform.startswith("linux") else None
    if info is not None and info.works:
        return IsolationLevel.FULL
    if forced == "full":
        raise IsolationError(
            f"{ISOLATION_ENV}=full but bubblewrap cannot run here: {info.error if info else 'not Linux'}",
            hint="install bubblewrap (apt-get install bubblewrap) or unset KAVI_ISOLATION",
        )
    return IsolationLevel.FALLBACK if _resource_module() is not None else IsolationLevel.PROCESS


def probe_isolation() -> IsolationReport:
    """What is available (bubblewrap, rlimits, audit hooks) and which level a run would get now."""
    info = bwrap.probe_bwrap() if sys.platform.startswith("linux") else None
    resource = _resource_module()
    names = ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NPROC", "RLIMIT_NOFILE")
    rlimits = tuple(name for name in names if resource is not None and hasattr(resource, name))
    notes: list[str] = []
    try:
        level = select_level()
        forced = _forced_level()
    except ConfigError as exc:
        level, forced = IsolationLevel.PROCESS, None
        notes.append(str(exc))
    if level != IsolationLevel.FULL:
        notes.append("below FULL: install bubblewrap for namespace isolation (the audit hook is no boundary)")
        notes.append("below FULL: only the audit hook checks NETWORK hosts (no network namespace, no egress proxy)")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        notes.append("running as root: RLIMIT_NPROC does not bind root; the PID namespace and the hook contain forks")
    return IsolationReport(
        level=level,
        forced=forced,
        bwrap_path=info.path if info else None,
        bwrap_version=info.version if info else None,
        bwrap_works=bool(info and info.works),
        bwrap_error=info.error if info else "bubblewrap needs Linux",
        rlimits=rlimits,
        audit_hooks=hasattr(sys, "addaudithook"),
        notes=tuple(notes),
    )


# --- running ----------------------------------------------------------------------------------


def run_isolated(
    argv: Sequence[str],
    *,
    cwd: Path,
    policy: ExecPolicy,
    stdin: bytes | None = None,
) -> ExecResult:
    """Run ``argv`` in ``cwd`` under ``policy``; never raises for what the child does.

    Raises :class:`IsolationError` only before starting anything, when ``policy.require_isolation``
    asks for every layer this host supports and this run would miss one.
    """
    level = select_level()
    if policy.require_isolation:
        _check_required(level, policy)
    cwd = Path(os.path.realpath(cwd))
    for root in policy.write_roots:
        Path(root).mkdir(parents=True, exist_ok=True)
    with _private_tmp(level) as tmp:
        home = f"{tmp}/home"
        env = _child_environment(policy, tmp=tmp, home=home)
        plan = _plan(level, argv, cwd=cwd, policy=policy, env=env, tmp=tmp)
        if level != IsolationLevel.FULL:
            Path(home).mkdir(exist_ok=True)
            preexec = _rlimit_setter(policy) if level == IsolationLevel.FALLBACK else None
            result = _supervise(
                plan.argv,
                cwd=cwd,
                env=plan.env,
                policy=policy,
                stdin=stdin,
                level=level,
                preexec=preexec,
            )
        elif policy.side_effect == SideEffect.NETWORK:
            result = _run_behind_egress_proxy(plan.argv, cwd=cwd, policy=policy, env=plan.env, home=home, stdin=stdin)
        else:
            result = _run_in_bwrap(plan.argv, cwd=cwd, policy=policy, env=plan.env, home=home, stdin=stdin)
        return replace(result, layers=_layers_in_force(plan.layers, result))


def _check_required(level: IsolationLevel, policy: ExecPolicy) -> None:
    missing = [name for name in required_layers(policy) if name not in planned_layers(level, policy)]
    if level == IsolationLevel.FULL and not missing:
        return
    forced = _forced_level()
    if forced and forced != "full":
        hint = f"unset {ISOLATION_ENV} (it is set to {forced})"
    else:
        hint = "install bubblewrap (apt-get install bubblewrap); `kavi doctor` says which layers this host has"
    what = ", ".join(missing) or "bubblewrap"
    raise IsolationError(
        f"this run requires every isolation layer this host supports but would miss {what}"
        f" (level {level.value.upper()})",
        hint=hint,
    )


# --- layers: what the host has, what a child gets ---------------------------------------------


def host_layers() -> dict[Layer, str | None]:
    """Each layer, mapped to None when this host supports it, else why it does not."""
    linux = sys.platform.startswith("linux")
    info = bwrap.probe_bwrap() if linux else None
    no_bwrap = f"bubblewrap cannot run here: {info.error if info else 'not Linux'}"
    full = bool(info and info.works)
    userns = None if full and info is not None and info.userns else (info.userns_error if full and info else no_bwrap)
    abi = _landlock_abi() if linux else 0
    return {
        Layer.USERNS: userns,
        Layer.CAPS: None if linux else "needs Linux",
        Layer.PIDNS: None if full else no_bwrap,
        Layer.NETNS: None if full else no_bwrap,
        Layer.SECCOMP: None if confine.seccomp_arch() else f"no seccomp filter for {os.uname().machine} here",
        Layer.LANDLOCK: None
        if abi > 0
        else "the kernel has no Landlock (needs Linux 5.13+ with landlock in the lsm= list)",
        Layer.RLIMITS: None if _resource_module() is not None else "no resource module",
        Layer.HOOK: None if hasattr(sys, "addaudithook") else "no audit hooks (Python < 3.8)",
    }


def planned_layers(level: IsolationLevel, policy: ExecPolicy, *, guarded: bool = True) -> tuple[Layer, ...]:
    """The layers a child at ``level`` gets on this host (the hook only when the command is guarded)."""
    host = host_layers()
    wanted: set[Layer] = set()
    if level == IsolationLevel.FULL:
        # NETWORK too: its namespace's only way out is the parent's egress proxy
        wanted |= {Layer.USERNS, Layer.CAPS, Layer.PIDNS, Layer.NETNS, Layer.SECCOMP, Layer.LANDLOCK, Layer.RLIMITS}
    elif level == IsolationLevel.FALLBACK:
        wanted |= {Layer.CAPS, Layer.SECCOMP, Layer.LANDLOCK, Layer.RLIMITS}
    if guarded:
        wanted.add(Layer.HOOK)
    return tuple(layer for layer in LAYERS if layer in wanted and host[layer] is None)


def required_layers(policy: ExecPolicy) -> tuple[Layer, ...]:
    """What ``--require-isolation`` requires: every boundary layer this host supports."""
    host = host_layers()
    return tuple(layer for layer, (_, boundary) in LAYERS.items() if boundary and host[layer] is None)


@dataclass(frozen=True)
class _Plan:
    argv: list[str]
    env: dict[str, str]
    layers: tuple[Layer, ...]


# Python entry points of kavi's own that apply ``KAVI_CONFINE`` and install the audit hook before any
# candidate byte runs (the guard launcher is recognised by its argv); every other command is started
# through the confining launcher.
SELF_CONFINING_MODULES = ("kavi.runtime.child",)


def _self_confining(argv: Sequence[str]) -> bool:
    if is_guarded(argv):
        return True
    args = list(argv[1:])
    return "-m" in args and args.index("-m") + 1 < len(args) and args[args.index("-m") + 1] in SELF_CONFINING_MODULES


def _plan(
    level: IsolationLevel, argv: Sequence[str], *, cwd: Path, policy: ExecPolicy, env: dict[str, str], tmp: str
) -> _Plan:
    """Decide the layers and, for those the child applies to itself, how it gets them: a guarded
    Python child reads ``KAVI_CONFINE`` in the guard; any other command is started by the launcher."""
    guarded = _self_confining(argv)
    layers = planned_layers(level, policy, guarded=guarded)
    self_applied = {Layer.LANDLOCK, Layer.SECCOMP, Layer.CAPS} & set(layers)
    if level == IsolationLevel.FULL:
        self_applied -= {Layer.SECCOMP, Layer.CAPS}  # bubblewrap applies them
    if not self_applied:
        return _Plan(list(argv), env, layers)
    program = _resolve_program(argv[0], cwd=cwd, path=env.get("PATH", ""))
    confinement = confine.Confinement(
        rules=_landlock_rules(policy, cwd=cwd, tmp=tmp, path=env.get("PATH", ""), program=None if guarded else program)
        if Layer.LANDLOCK in self_applied
        else (),
        landlock=Layer.LANDLOCK in self_applied,
        seccomp=seccomp_program().hex() if Layer.SECCOMP in self_applied else "",
        drop_caps=Layer.CAPS in self_applied,
        deny_tcp=policy.side_effect != SideEffect.NETWORK,
    )
    child_env = {**env, confine.ENV_NAME: confinement.to_json()}
    if guarded or program is None:
        return _Plan(list(argv), child_env, layers)
    return _Plan(confine.launcher_argv(argv, program), child_env, layers)


def _layers_in_force(planned: tuple[Layer, ...], result: ExecResult) -> tuple[str, ...]:
    """A child that could not apply its layers ran nothing and exited: claim none of its own."""
    if result.returncode == confine.CONFINE_EXIT_CODE and confine.CONFINE_MARKER in result.stderr:
        planned = tuple(layer for layer in planned if layer not in (Layer.LANDLOCK, Layer.SECCOMP, Layer.HOOK))
    layers = tuple(str(layer) for layer in planned)
    note_layers(layers)
    return layers


def note_layers(layers: tuple[str, ...]) -> None:
    """Add one child's layers to the record being collected (:func:`recording_layers`), if any."""
    log = _LAYER_LOG.get()
    if log is not None:
        log.append(layers)


_LAYER_LOG: contextvars.ContextVar[list[tuple[str, ...]] | None] = contextvars.ContextVar("kavi_layers", default=None)


@contextlib.contextmanager
def recording_layers() -> Iterator[list[tuple[str, ...]]]:
    """Collect the layers of every child run inside the block (a gate's children, for its record)."""
    log: list[tuple[str, ...]] = []
    token = _LAYER_LOG.set(log)
    try:
        yield log
    finally:
        _LAYER_LOG.reset(token)


def weakest_layers(runs: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The layers every one of ``runs`` had, in table order: what a record of them may claim."""
    common = set(LAYERS) if runs else set()
    for layers in runs:
        common &= set(layers)
    return tuple(str(layer) for layer in LAYERS if layer in common)


_landlock_abi = functools.cache(confine.landlock_abi)


@functools.cache
def seccomp_program() -> bytes:
    """The BPF filter, assembled once per parent process."""
    return confine.build_seccomp_filter()


def _resolve_program(name: str, *, cwd: Path, path: str) -> str | None:
    if "/" in name:
        return os.path.realpath(cwd / name)
    found = shutil.which(name, path=path)
    return os.path.realpath(found) if found else None


# Files the C library and Python read at run time (name service, time zones, certificates); none
# holds a secret. /etc/shadow, kavi.toml, the ledger and the home folder are not among them.
_SYSTEM_READS = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/timezone",
    "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf",
    "/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/ssl", "/etc/ca-certificates",
    "/etc/mime.types", "/usr/share/zoneinfo", "/usr/share/ca-certificates", "/usr/share/locale",
    "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/dev/urandom", "/dev/random", "/dev/zero",
)  # fmt: skip
# A GPU kernel compiles and loads: the toolchain, headers, the driver's devices, /proc and /sys.
_KERNEL_READS = ("/usr", "/proc", "/sys", "/opt", "/etc/alternatives")
_KERNEL_EXECUTES = ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/lib", "/usr/libexec", "/usr/local", "/opt")


@functools.cache
def _runtime_rules() -> tuple[tuple[str, int], ...]:
    """What every Python child needs to read: the interpreter's prefixes, the import folders inside them,
    the folder kavi itself is imported from, the shared libraries; computed once per parent process.

    Not every entry of the parent's ``sys.path``: the first one is the folder of whatever script started
    the parent (a project, a home folder, /tmp), and ``python -m`` puts the working folder there, which
    may be the workspace with its ledger and kavi.toml. A child reads those only if a spec declares them."""
    reads = [*_runtime_read_paths(), *_SYSTEM_READS]
    # /proc/self: the child's own entry (its status, limits, fds); its environ holds only what the executor
    # gave it, and other processes' entries stay closed.
    return (*((path, confine.READ) for path in reads), ("/dev/null", confine.DEVICE), ("/proc/self", confine.READ))


def _runtime_read_paths() -> list[str]:
    import kavi

    def real(path: str) -> str | None:
        return os.path.realpath(path) if path and Path(path).is_absolute() and Path(path).exists() else None

    prefixes = [p for p in map(real, (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)) if p]
    inside = [p for p in map(real, sys.path) if p and any(_is_within(p, prefix) for prefix in prefixes)]
    # The folder kavi is imported from (site-packages, or a checkout's src/ for an editable install): the
    # import system lists it to find the package.
    homes = [p for p in (real(str(Path(path).parent)) for path in kavi.__path__) if p]
    executable = real(str(Path(sys.executable).resolve().parent))
    return list(dict.fromkeys([*prefixes, *inside, *homes, *([executable] if executable else [])]))


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")




def _landlock_rules(
    policy: ExecPolicy, *, cwd: Path, tmp: str, path: str, program: str | None
) -> list[tuple[str, int]]:
    rules = list(_runtime_rules())
    if policy.read_cwd:
        rules += [(str(cwd), confine.READ)]
    rules += [(os.path.realpath(p), confine.READ) for p in (*policy.readonly_paths, *policy.read_roots)]
    rules += [(os.path.realpath(root), confine.WRITE) for root in policy.write_roots]
    rules.append((tmp, confine.WRITE))
    programs = [program] if program else []
    for name in policy.executables:
        found = name if "/" in name else shutil.which(name, path=path)
        if found:
            programs.append(found)
    for found in programs:
        rules += [(part, confine.EXECUTE) for part in confine.exec_closure(found)]
    if policy.side_effect == SideEffect.GPU_KERNEL:
        rules += [(p, confine.READ) for p in _KERNEL_READS]
        rules += [(p, confine.EXECUTE | confine.READ) for p in _KERNEL_EXECUTES]
        rules += [(p, confine.EXECUTE | confine.READ) for p in (sys.prefix, sys.base_prefix)]
        rules += [(device, confine.DEVICE | confine.READ) for device in bwrap.gpu_devices()]
        rules.append(("/dev/shm", confine.WRITE))  # noqa: S108 - torch's shared memory, Landlock-bounded
    return rules


# --- NETWORK at FULL: a network namespace whose only way out is the parent's egress proxy ---------------


def _run_behind_egress_proxy(
    argv: Sequence[str],
    *,
    cwd: Path,
    policy: ExecPolicy,
    env: Mapping[str, str],
    home: str,
    stdin: bytes | None,
) -> ExecResult:
    """The child gets ``--unshare-net``; the relay (:mod:`kavi.runtime.relay`) starts first inside it and
    carries ``127.0.0.1:PORT`` to the proxy's unix socket; the proxy's refusals join the hook's in
    ``blocked``. The proxy and its threads end with the run."""
    from kavi.runtime import relay
    from kavi.sandbox.egress import EgressProxy

    port = relay.relay_port(policy.allow_hosts)
    with EgressProxy(policy.allow_hosts, side_effect=str(policy.side_effect)) as proxy:
        launcher = [sys.executable, "-I", "-S", "-B", relay.__file__, "--listen", str(port), "--unix"]
        command = [*launcher, proxy.socket_path, "--", *argv]
        env = {**env, **relay.proxy_environment(port)}
        result = _run_in_bwrap(
            command, cwd=cwd, policy=policy, env=env, home=home, stdin=stdin, egress_socket=proxy.socket_path
        )
    return replace(result, blocked=(*result.blocked, *proxy.blocked)) if proxy.blocked else result


def _run_in_bwrap(
    argv: Sequence[str],
    *,
    cwd: Path,
    policy: ExecPolicy,
    env: Mapping[str, str],
    home: str,
    stdin: bytes | None,
    egress_socket: str | None = None,
) -> ExecResult:
    """FULL: the environment and the seccomp filter travel in memfds bubblewrap reads (``--args``,
    ``--seccomp``)."""
    env_fd = os.memfd_create("kavi-bwrap-env")
    seccomp_fd = -1
    try:
        os.write(env_fd, bwrap.environment_arguments(env))
        os.lseek(env_fd, 0, os.SEEK_SET)
        if host_layers()[Layer.SECCOMP] is None:
            seccomp_fd = os.memfd_create("kavi-seccomp")
            os.write(seccomp_fd, seccomp_program())
            os.lseek(seccomp_fd, 0, os.SEEK_SET)
        command = _wrap_in_bwrap(
            list(argv),
            cwd=cwd,
            policy=policy,
            env_fd=env_fd,
            home=home,
            seccomp_fd=seccomp_fd,
            egress_socket=egress_socket,
        )
        return _supervise(
            command,
            cwd=cwd,
            env=base_environment(),
            policy=policy,
            stdin=stdin,
            level=IsolationLevel.FULL,
            preexec=_rlimit_setter(policy),
            pass_fds=(env_fd,) if seccomp_fd < 0 else (env_fd, seccomp_fd),
        )
    finally:
        os.close(env_fd)
        if seccomp_fd >= 0:
            os.close(seccomp_fd)


@contextlib.contextmanager
def _private_tmp(level: IsolationLevel) -> Any:
    """FULL gets a fresh tmpfs at /tmp; the other levels a fresh folder, removed afterwards."""
    if level == IsolationLevel.FULL:
        # Inside the sandbox /tmp is a private tmpfs; a folder of its own keeps the hook's
        # writable tmp from covering a working folder that happens to live under the host's /tmp.
        yield f"/tmp/.kavi-{token_hex(6)}"  # noqa: S108
        return
    folder = tempfile.mkdtemp(prefix="kavi-run-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _child_environment(policy: ExecPolicy, *, tmp: str, home: str) -> dict[str, str]:
    env = {**base_environment(), **policy.env, "HOME": home, "TMPDIR": tmp}
    if policy.side_effect == SideEffect.SECRET_READ:
        env.update(policy.secrets)
    env.pop(ISOLATION_ENV, None)
    env.pop(RELAY_ENV, None)  # set only by _run_behind_egress_proxy, where a relay really runs
    return env


def _wrap_in_bwrap(
    command: list[str],
    *,
    cwd: Path,
    policy: ExecPolicy,
    env_fd: int,
    home: str,
    seccomp_fd: int,
    egress_socket: str | None = None,
) -> list[str]:
    info = bwrap.probe_bwrap()
    assert info.path is not None  # select_level returned FULL only because it works
    write_roots = bwrap.real_paths(policy.write_roots)
    declared = [p for p in (*policy.readonly_paths, *policy.read_roots) if Path(p).exists()]
    readonly = bwrap.real_paths(declared + list(_roots_under_tmp()))
    if egress_socket is not None:  # the proxy's socket, at the same path inside: the sandbox's only way out
        readonly = (*readonly, egress_socket)
    hidden, visible = _hidden_and_visible(policy, cwd, (*write_roots, *readonly))
    mounts = bwrap.Mounts(
        cwd=str(cwd),
        write_roots=write_roots,
        readonly_paths=readonly,
        hidden_roots=hidden,
        visible_roots=visible,
        devices=bwrap.gpu_devices() if policy.side_effect == SideEffect.GPU_KERNEL else (),
        tmp=str(Path(home).parent),
        home=home,
    )
    return bwrap.bwrap_argv(
        info.path,
        command,
        mounts=mounts,
        env_fd=env_fd,
        network=policy.side_effect == SideEffect.NETWORK and egress_socket is None,
        userns=info.userns,
        seccomp_fd=seccomp_fd,
    )


def _roots_under_tmp() -> tuple[str, ...]:
    """The interpreter, virtual environment and import folders that live under /tmp (a clone checked out
    there, a venv made there): the child's fresh /tmp would hide them, so they are bound back read-only."""
    tmp = Path("/tmp")  # noqa: S108 - the folder bubblewrap replaces with a private tmpfs
    candidates = [sys.prefix, sys.exec_prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent), *sys.path]
    found: list[str] = []
    for candidate in candidates:
        path = Path(candidate) if candidate else None
        if path is None or not path.is_absolute() or not path.is_dir():
            continue
        real = path.resolve()
        if real != tmp and real.is_relative_to(tmp) and str(real) not in found:
            found.append(str(real))
    return tuple(found)


def _hidden_and_visible(
    policy: ExecPolicy, cwd: Path, needed: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Hide the home folder unless the child's own folders are the home or contain it."""
    if not policy.hide_home:
        return (), ()
    hidden, visible = default_hidden_roots(extra_visible=(str(cwd), *needed))
    for root in hidden:
        for path in (str(cwd), *needed):
            if root == path or root.startswith(path.rstrip("/") + "/"):
                return (), ()
    return hidden, visible


def _rlimit_setter(policy: ExecPolicy) -> Callable[[], None] | None:
    """A pre-exec function that lowers the child's limits, hard ones too so they stay lowered.

    A GPU kernel gets no address-space limit: CUDA reserves far more virtual memory than it uses.
    """
    resource = _resource_module()
    if resource is None:
        return None
    limits: list[tuple[int, int, int]] = []
    if policy.cpu_s is not None:
        limits.append((resource.RLIMIT_CPU, policy.cpu_s, policy.cpu_s + 1))
    if policy.memory_bytes is not None and policy.side_effect != SideEffect.GPU_KERNEL:
        limits.append((resource.RLIMIT_AS, policy.memory_bytes, policy.memory_bytes))
    if policy.max_file_bytes is not None:
        limits.append((resource.RLIMIT_FSIZE, policy.max_file_bytes, policy.max_file_bytes))
    if policy.max_procs is not None and os.geteuid() != 0:  # the limit never binds root
        procs = _count_user_tasks() + policy.max_procs
        limits.append((resource.RLIMIT_NPROC, procs, procs))
    if policy.max_open_files is not None:
        limits.append((resource.RLIMIT_NOFILE, policy.max_open_files, policy.max_open_files))

    # The address-space limit goes last: the parent may already map more than it allows (a process that
    # imported torch does), and after it no allocation in the forked child could be relied on.
    limits.sort(key=lambda limit: limit[0] == resource.RLIMIT_AS)
    getrlimit, setrlimit, infinity = resource.getrlimit, resource.setrlimit, resource.RLIM_INFINITY

    def apply() -> None:
        for which, soft, hard in limits:
            current_hard = getrlimit(which)[1]
            if current_hard != infinity:
                hard = min(hard, current_hard)
                soft = min(soft, hard)
            try:  # noqa: SIM105 - no context manager object in a forked child after its limits are lowered
                setrlimit(which, (soft, hard))
            except (ValueError, OSError):
                pass

    return apply


def _count_user_tasks() -> int:
    """How many threads this user runs now: RLIMIT_NPROC counts all of them, not just our tree."""
    uid = os.getuid()
    count = 0
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return 0
    for entry in entries:
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += sum(1 for _ in (entry / "task").iterdir())
    return count


@dataclass
class _Capture:
    """One output stream, kept up to a cap; the rest is read and dropped, never held in memory."""

    cap: int
    data: bytearray = field(default_factory=bytearray)
    overflowed: bool = False

    def feed(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.overflowed = True
        if room > 0:
            self.data += chunk[:room]


def _supervise(
    command: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    policy: ExecPolicy,
    stdin: bytes | None,
    level: IsolationLevel,
    preexec: Callable[[], None] | None,
    pass_fds: tuple[int, ...] = (),
) -> ExecResult:
    start = time.perf_counter()
    if _stopping.is_set():
        return ExecResult(130, "", "not started: kavi was interrupted", 0.0, False, level, killed_reason=INTERRUPTED)
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec,
            pass_fds=pass_fds,
        )
    except (OSError, subprocess.SubprocessError) as exc:  # SubprocessError: the pre-exec function failed
        return ExecResult(127, "", f"could not start {command[0]}: {exc}", 0.0, False, level)
    _live[process.pid] = process
    try:
        if _stopping.is_set():  # interrupted between the check above and the registration
            _kill_group(process)
        if stdin is not None:
            threading.Thread(target=_feed_stdin, args=(process, stdin), daemon=True).start()
        out, err = _Capture(policy.max_output_bytes), _Capture(policy.max_output_bytes)
        reason = _pump(process, out, err, deadline=start + policy.timeout_s)
        wait_until = start + policy.timeout_s if reason is None else time.perf_counter() + KILL_GRACE_S
        returncode, cpu_used, killed = _reap(process, deadline=wait_until)
    except BaseException:
        _kill_group(process)  # KeyboardInterrupt in this thread: the child must not outlive the wait for it
        raise
    finally:
        _live.pop(process.pid, None)
    if killed and reason is None:
        reason = "timeout"
    stderr_text = err.data.decode("utf-8", "replace")
    blocked = _parse_blocked(stderr_text)
    if reason is None:
        reason = _classify_exit(returncode, cpu_used, policy, stderr_text)
    return ExecResult(
        returncode=returncode,
        stdout=out.data.decode("utf-8", "replace"),
        stderr=stderr_text,
        duration_s=time.perf_counter() - start,
        timed_out=reason == "timeout",
        isolation=level,
        truncated=out.overflowed or err.overflowed,
        blocked=blocked,
        killed_reason=reason,
    )


def _feed_stdin(process: subprocess.Popen[bytes], data: bytes) -> None:
    assert process.stdin is not None
    with contextlib.suppress(OSError):
        process.stdin.write(data)
    with contextlib.suppress(OSError):
        process.stdin.close()


def _pump(process: subprocess.Popen[bytes], out: _Capture, err: _Capture, *, deadline: float) -> str | None:
    """Stream both pipes until they close; kill the group on timeout or overflow. Returns why it
    killed."""
    assert process.stdout is not None and process.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, out)
    selector.register(process.stderr, selectors.EVENT_READ, err)
    reason: str | None = None
    try:
        while selector.get_map():
            now = time.perf_counter()
            if reason is None and _stopping.is_set():
                reason = INTERRUPTED
                _kill_group(process)
                deadline = now + KILL_GRACE_S
            elif reason is None and now >= deadline:
                reason = "timeout"
                _kill_group(process)
                deadline = now + KILL_GRACE_S  # drain what is left, but not forever
            elif reason is not None and now >= deadline:
                break  # a descendant outside the group holds a pipe open; stop waiting for it
            for key, _ in selector.select(timeout=max(0.0, min(0.1, deadline - now))):
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                capture: _Capture = key.data
                capture.feed(chunk)
                if capture.overflowed and reason is None:
                    reason = "output"
                    _kill_group(process)
                    deadline = time.perf_counter() + KILL_GRACE_S
    finally:
        selector.close()
        process.stdout.close()
        process.stderr.close()
    return reason


def _reap(process: subprocess.Popen[bytes], *, deadline: float) -> tuple[int, float, bool]:
    """Wait for the child until ``deadline``, then kill its group; (exit code, CPU s, killed).

    A child may close its pipes and keep working, so the wait runs to the run's own deadline.
    """
    killed = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            _kill_group(process)  # leftovers of a child that exited but left its group running
            return process.returncode, usage.ru_utime + usage.ru_stime, killed
        if time.perf_counter() >= deadline or (_stopping.is_set() and not killed):
            _kill_group(process)
            killed = True
            deadline = time.perf_counter() + KILL_GRACE_S
        time.sleep(0.005)


# --- interrupts -------------------------------------------------------------------------------

INTERRUPTED = "interrupted"
# The supervised children alive now, by pid. Plain dict operations are atomic under the GIL, so the
# SIGINT handler may read it without a lock (a lock taken in a handler can deadlock its own thread).
_live: dict[int, subprocess.Popen[bytes]] = {}
_stopping = threading.Event()


def stop_all_children() -> None:
    """Ctrl-C: kill every supervised child's process group now and start no new child in this process.

    Gates run in worker threads, and Python delivers SIGINT to the main thread only: without this,
    an interrupted verify would wait for each running gate to finish or time out. Children live in
    sessions of their own (a terminal's Ctrl-C never reaches them), so kavi has to stop them itself.
    Called from the command line's SIGINT handler; the process is expected to exit afterwards.
    """
    _stopping.set()
    for process in list(_live.values()):
        _kill_group(process)


@contextlib.contextmanager
def tracked(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Count a child started elsewhere (a trusted tool in a session of its own) among those an
    interrupt stops; one started after the interrupt is stopped at once."""
    _live[process.pid] = process
    try:
        if _stopping.is_set():
            _kill_group(process)
        yield
    except BaseException:
        _kill_group(process)
        raise
    finally:
        _live.pop(process.pid, None)


def _classify_exit(returncode: int, cpu_used: float, policy: ExecPolicy, stderr: str) -> str | None:
    """Name the limit that ended a child: a killed run says why, not just that it failed."""
    if returncode in (0, BLOCKED_EXIT_CODE):
        return None
    signals = {-returncode} if returncode < 0 else {returncode - 128}
    if signal.SIGXCPU in signals:
        return "cpu"
    if signal.SIGKILL in signals and policy.cpu_s is not None and cpu_used >= policy.cpu_s * 0.9:
        return "cpu"
    tail = stderr[-4000:]
    if any(marker in tail for marker in _MEMORY_MARKERS):
        return "memory"
    return None


def _parse_blocked(stderr: str) -> tuple[dict[str, str], ...]:
    """The effects the audit hook refused, from its one-line JSON reports. A report may follow output that
    did not end its line (pytest's progress dots share the stream), so the marker is looked for anywhere."""
    import json

    found: list[dict[str, str]] = []
    if BLOCKED_MARKER not in stderr:
        return ()
    for line in stderr.splitlines():
        at = line.find(BLOCKED_MARKER)
        if at >= 0:
            try:
                record = json.loads(line[at + len(BLOCKED_MARKER) :])
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append({str(key): str(value) for key, value in record.items()})
    return tuple(found)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill a child started in a session of its own together with everything it started."""
    _kill_group(process)
