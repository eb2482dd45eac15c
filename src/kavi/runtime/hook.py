"""The audit hook itself: decide every audited event of a child against its side-effect policy.

This is the lean half of :mod:`kavi.runtime.audit`, imported by :mod:`kavi.runtime.guard` on the
start-up path of every isolated child. It takes the policy as a plain dict (the JSON the parent
wrote) and imports nothing but the standard library's cheapest modules and kavi's stdlib-only
leaves: no ``typing``, ``dataclasses``, ``pathlib`` or ``re``.

A block raises :class:`EffectBlocked`, writes one ``KAVI-BLOCKED {json}`` line to a private
duplicate of stderr and, through an ``atexit`` handler, makes the process exit with
:data:`BLOCKED_EXIT_CODE` even if the code under test swallowed the exception.
"""

# string paths on purpose: pathlib costs start-up time and realpath semantics must match.
# ruff: noqa: PTH109, PTH110, PTH113, PTH115, PTH117, PTH118

from __future__ import annotations

import _thread
import atexit
import json
import os
import sys

from kavi.errors import SideEffectViolation

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    Policy = dict[str, Any]

BLOCKED_MARKER = "KAVI-BLOCKED "
BLOCKED_EXIT_CODE = 86
POLICY_KEYS = (
    "side_effect",
    "write_roots",
    "allow_hosts",
    "executables",
    "secrets",
    "extra_write_roots",
    "hidden_roots",
    "visible_roots",
    "private_tmp",
)
_SIDE_EFFECTS = frozenset({"READ_ONLY", "FILE_WRITE", "NETWORK", "SUBPROCESS", "SECRET_READ", "GPU_KERNEL"})
_MAX_DETAIL = 300
_MAX_REPORTS = 20
_SECRET_WORDS = (
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSW",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "SESSION",
    "PRIVATE",
)
_SECRET_PREFIXES = ("AWS_", "GCP_", "AZURE_", "GH_", "GITHUB_", "HF_")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_ALWAYS_WRITABLE = frozenset({"/dev/null"})


class EffectBlocked(SideEffectViolation, RuntimeError):
    """A skill attempted an effect its class does not declare.

    It is also a :class:`RuntimeError` because CPython silently refuses a new audit hook when an
    existing hook raises a RuntimeError for ``sys.addaudithook``; that is how later hooks are kept
    out.
    """

    def __init__(self, effect: str, detail: str, side_effect: str) -> None:
        super().__init__(
            f"{effect} blocked: {detail} is not allowed for a {side_effect} skill",
            hint=f"declare it in the spec, or choose a side-effect class that allows {effect}",
        )
        self.effect = effect
        self.detail = detail
        self.side_effect = side_effect


_installed: list[Policy] = []


def install(policy: Policy) -> None:
    """Install the hook for ``policy``; idempotent, and the first policy stays in force for good.

    Audit hooks cannot be removed, and this hook refuses every later ``sys.addaudithook``; a second
    call with a different policy raises instead of pretending to change anything.
    """
    normalized = normalize_policy(policy)
    if _installed:
        if _installed[0] != normalized:
            raise EffectBlocked(
                "policy change",
                "installing a second, different policy",
                _installed[0]["side_effect"],
            )
        return
    enforcer = _Enforcer(normalized)
    _scrub_environment(normalized)
    atexit.register(enforcer.exit_if_blocked)
    _installed.append(normalized)
    _route_fork_exec_through_audit(allow_original=may_run_programs(normalized))
    sys.addaudithook(enforcer.hook)


def _route_fork_exec_through_audit(*, allow_original: bool) -> None:
    """``_posixsubprocess.fork_exec`` starts programs without an audit event: give it one.

    ``subprocess`` audits itself; ``multiprocessing.util.spawnv_passfds`` or a direct call do not.
    The replacement raises ``kavi.fork_exec`` first; for classes without SUBPROCESS it keeps no
    reference to the original at all, and a fresh import of the module is refused by the hook.
    """
    try:
        import _posixsubprocess
    except ImportError:  # not POSIX: nothing to route
        return
    original = _posixsubprocess.fork_exec

    def fork_exec(*args: Any) -> Any:
        sys.audit("kavi.fork_exec", args[1] if len(args) > 1 else ())
        if not allow_original:
            raise OSError("process creation is not allowed")
        return original(*args)

    if not allow_original:
        del original
    _posixsubprocess.fork_exec = fork_exec
    loaded = sys.modules.get("subprocess")
    if loaded is not None and hasattr(loaded, "_fork_exec"):
        vars(loaded)["_fork_exec"] = fork_exec


def normalize_policy(policy: Policy) -> Policy:
    """Fill defaults, make every list a tuple, refuse unknown keys and classes: a typo must not
    loosen."""
    unknown = set(policy) - set(POLICY_KEYS)
    if unknown:
        raise ValueError(f"unknown policy keys {sorted(unknown)}")
    side_effect = str(policy.get("side_effect", "READ_ONLY"))
    if side_effect not in _SIDE_EFFECTS:
        raise ValueError(f"unknown side-effect class {side_effect!r}")
    normalized: Policy = {
        "side_effect": side_effect,
        "private_tmp": bool(policy.get("private_tmp", True)),
    }
    for key in POLICY_KEYS[1:-1]:
        normalized[key] = tuple(str(item) for item in policy.get(key, ()))
    return normalized


def may_run_programs(policy: Policy) -> bool:
    """Whether the policy may start its declared programs.

    SUBPROCESS may; so may GPU_KERNEL when the kernel gate declares its compilers (Triton builds its
    launcher with ``cc`` and its kernels with ``ptxas``).
    """
    return policy["side_effect"] == "SUBPROCESS" or (
        policy["side_effect"] == "GPU_KERNEL" and bool(policy["executables"])
    )


def is_secret_name(name: str) -> bool:
    """A variable name that looks like a credential (the executor never passes one undeclared)."""
    upper = name.upper()
    return upper.startswith(_SECRET_PREFIXES) or any(word in upper for word in _SECRET_WORDS)


def _scrub_environment(policy: Policy) -> None:
    """Defense in depth for secrets: the executor already passed a clean environment."""
    declared = set(policy["secrets"])
    keep = declared if policy["side_effect"] == "SECRET_READ" else set()
    for name in list(os.environ):
        if name not in keep and (name in declared or is_secret_name(name)):
            del os.environ[name]


def is_under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _is_process_secret(real: str) -> bool:
    """/proc/PID/environ and /proc/PID/mem (any process, any thread) hold other secrets."""
    return real.endswith(("/environ", "/mem"))


class _Enforcer:
    """Holds the resolved policy in immutable containers and decides each audited event."""

    def __init__(self, policy: Policy) -> None:
        effect = self.side_effect = policy["side_effect"]
        writable = list(policy["extra_write_roots"])
        if effect == "FILE_WRITE":
            writable.extend(policy["write_roots"])
        tmp = os.environ.get("TMPDIR", "")
        if policy["private_tmp"] and os.path.isabs(tmp) and os.path.realpath(tmp) != "/":
            writable.append(tmp)
        self.write_roots = tuple(os.path.realpath(root) for root in writable)
        self.hidden = tuple(os.path.realpath(root) for root in policy["hidden_roots"])
        self.trusted_reads = _trusted_read_prefixes(self.write_roots, self.hidden)
        self.visible = tuple(os.path.realpath(root) for root in policy["visible_roots"])
        self.network = effect == "NETWORK"
        self.hosts = tuple(_parse_host(entry) for entry in policy["allow_hosts"]) if self.network else ()
        self.resolved: dict[str, frozenset[str]] = {}
        self.resolving = 0  # the thread resolving an allowed name, so its own lookup passes
        self.subprocess = may_run_programs(policy)
        self.executables = _resolve_executables(policy["executables"]) if self.subprocess else frozenset()
        self.native = effect == "GPU_KERNEL"
        self.blocked: list[dict[str, str]] = []  # the first reports; block_count counts them all
        self.block_count = 0
        self.report_fd = _private_stderr()
        self.handlers = self._handlers()

    def _handlers(self) -> dict[str, Callable[[tuple[Any, ...]], None]]:
        path_writes: dict[str, Callable[[tuple[Any, ...]], None]] = {
            "os.remove": lambda a: self.check_write(a[0], a[1]),
            "os.rmdir": lambda a: self.check_write(a[0], a[1]),
            "os.mkdir": lambda a: self.check_write(a[0], a[2]),
            "os.chmod": lambda a: self.check_write(a[0], a[2]),
            "os.chown": lambda a: self.check_write(a[0], a[3]),
            "os.utime": lambda a: self.check_write(a[0], a[3]),
            "os.truncate": lambda a: self.check_write(a[0]),
            "os.setxattr": lambda a: self.check_write(a[0]),
            "os.removexattr": lambda a: self.check_write(a[0]),
            "os.rename": self.check_write_pair,
            "os.link": self.check_write_pair,
            "os.symlink": lambda a: self.check_write(a[1], a[2]),
            "shutil.rmtree": lambda a: self.check_write(a[0], a[1]),
        }
        return {
            "open": self.on_open,
            **path_writes,
            "os.listdir": lambda a: self.check_read(a[0] if a[0] is not None else "."),
            "os.scandir": lambda a: self.check_read(a[0] if a[0] is not None else "."),
            "socket.connect": lambda a: self.check_address("connect", a[1]),
            "socket.sendto": lambda a: self.check_address("sendto", a[1]),
            "socket.sendmsg": lambda a: self.check_address("sendmsg", a[1]),
            "socket.bind": self.on_bind,
            "socket.getaddrinfo": lambda a: self.check_lookup(a[0], a[1]),
            "socket.gethostbyname": lambda a: self.check_lookup(a[0], None),
            "socket.gethostbyname_ex": lambda a: self.check_lookup(a[0], None),
            "socket.gethostbyaddr": lambda a: self.check_lookup(a[0], None),
            "socket.getnameinfo": lambda a: self.check_lookup(str(a[0][0]), None),
            "socket.sethostname": lambda a: self.block("network", f"sethostname {a[0]!r}"),
            "subprocess.Popen": lambda a: self.check_exec(a[0] if a[0] is not None else a[1][0]),
            "os.exec": lambda a: self.check_exec(a[0]),
            "os.posix_spawn": lambda a: self.check_exec(a[0]),
            "os.spawn": lambda a: self.check_exec(a[1]),
            "os.system": lambda a: self.check_exec("sh"),
            "os.fork": lambda a: self.check_fork("fork"),
            "os.forkpty": lambda a: self.check_fork("forkpty"),
            "kavi.fork_exec": self.check_fork_exec,
            "import": self.on_import,
            "os.kill": lambda a: self.check_signal(a[0]),
            "os.killpg": lambda a: self.check_signal(-1),
            "signal.pthread_kill": lambda a: None,
            "sys.addaudithook": lambda a: self.block("audit hook", "adding another audit hook"),
            "sys.settrace": lambda a: self.block("introspection", "sys.settrace"),
            "sys.setprofile": lambda a: self.block("introspection", "sys.setprofile"),
            "gc.get_objects": lambda a: self.block("introspection", "gc.get_objects"),
            "gc.get_referrers": lambda a: self.block("introspection", "gc.get_referrers"),
            "gc.get_referents": lambda a: self.block("introspection", "gc.get_referents"),
        }

    # The hook itself: one dict lookup for the thousands of events nobody cares about.
    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        handler = self.handlers.get(event)
        if handler is not None:
            try:
                handler(args)
            except EffectBlocked:
                raise
            except Exception as exc:  # fail closed: an event the hook cannot read is refused
                self.block("unchecked", f"{event}: the hook could not check {_short(args)} ({exc!r})")
        elif event.startswith("ctypes.") and not self.native:
            self.block("ctypes", f"{event} {_short(args)}")

    def block(self, effect: str, detail: str) -> None:
        detail = detail[:_MAX_DETAIL]
        record = {"effect": effect, "detail": detail, "side_effect": self.side_effect}
        self.block_count += 1
        if self.block_count <= _MAX_REPORTS:  # a loop of refused forks must not flood stderr
            self.blocked.append(record)
            line = BLOCKED_MARKER + json.dumps(record, sort_keys=True) + "\n"
            try:  # noqa: SIM105 - contextlib is not worth importing on the start-up path
                os.write(self.report_fd, line.encode("utf-8", "replace"))
            except OSError:
                pass
        raise EffectBlocked(effect, detail, self.side_effect)

    def exit_if_blocked(self) -> None:
        """Make a swallowed block still fail the run: nothing after a block looks like success."""
        if not self.block_count:
            return
        for stream in (sys.stdout, sys.stderr):
            try:  # noqa: SIM105 - contextlib is not worth importing on the start-up path
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(BLOCKED_EXIT_CODE)

    # --- files ---
    def on_open(self, args: tuple[Any, ...]) -> None:
        path, mode, flags = args
        if isinstance(path, int):
            return  # an already open descriptor: its opening was checked
        writes = bool(flags & _WRITE_FLAGS) if isinstance(flags, int) else any(c in (mode or "") for c in "wax+")
        if writes:
            self.check_write(path)
        else:
            self.check_read(path)

    def check_write(self, path: Any, dir_fd: Any = None) -> None:
        if isinstance(path, int):
            return
        real = _resolve(path, dir_fd)
        if real in _ALWAYS_WRITABLE or is_under(real, self.write_roots):
            return
        self.block("file write", real)

    def check_write_pair(self, args: tuple[Any, ...]) -> None:
        """rename and link touch two paths (a hard link to an outside file is a write to it)."""
        self.check_write(args[0], args[2])
        self.check_write(args[1], args[3])

    def check_read(self, path: Any) -> None:
        if isinstance(path, int):
            return
        if isinstance(path, str) and path.startswith(self.trusted_reads) and "/.." not in path:
            return  # an import from the interpreter's own tree, where no skill can plant a symlink
        real = _resolve(path, None)
        if real.startswith("/proc/") and _is_process_secret(real):
            self.block("file read", real)
        if self.hidden and is_under(real, self.hidden) and not is_under(real, self.visible):
            self.block("file read", real)

    # --- network ---
    def check_address(self, action: str, address: Any) -> None:
        if not self.network:
            self.block("network", f"{action} {address!r}")
        if not isinstance(address, tuple) or len(address) < 2:
            self.block("network", f"{action} to a local socket {address!r}")
        host, port = str(address[0]), address[1]
        for allowed_host, allowed_port in self.hosts:
            if allowed_port is not None and allowed_port != port:
                continue
            if host == allowed_host or host in self._addresses(allowed_host):
                return
        self.block("network", f"{action} {host}:{port}")

    def on_bind(self, args: tuple[Any, ...]) -> None:
        address = args[1]
        if self.network and isinstance(address, tuple) and len(address) >= 2 and address[1] == 0:
            return  # a client choosing its source address, not a listener on a known port
        self.block("network", f"bind {address!r}")

    def check_lookup(self, host: Any, port: Any) -> None:
        if not self.network:
            self.block("network", f"resolve {host!r}")
        if self.resolving == _thread.get_ident():
            return  # the hook's own resolution of an allowed host name, in this thread
        name = os.fsdecode(host).lower() if isinstance(host, str | bytes) else str(host)
        for allowed_host, allowed_port in self.hosts:
            if allowed_port is not None and port is not None and str(port) != str(allowed_port):
                continue
            if name == allowed_host or name in self._addresses(allowed_host):
                return  # the name itself, or an address literal it resolves to
        self.block("network", f"resolve {name}:{port}")

    def _addresses(self, host: str) -> frozenset[str]:
        """The addresses an allowed host name resolves to, looked up once, lazily."""
        if host not in self.resolved:
            import socket

            self.resolving = _thread.get_ident()
            try:
                infos = socket.getaddrinfo(host, None)
                self.resolved[host] = frozenset(str(info[4][0]) for info in infos)
            except OSError:
                self.resolved[host] = frozenset()
            finally:
                self.resolving = 0
        return self.resolved[host]

    # --- processes ---
    def check_exec(self, executable: Any) -> None:
        name = os.fsdecode(executable) if isinstance(executable, str | bytes | os.PathLike) else str(executable)
        if not self.subprocess:
            self.block("process", f"run {name}")
        if _which_real(name) not in self.executables:
            self.block("process", f"run {name} (not a declared executable)")

    def check_fork_exec(self, args: tuple[Any, ...]) -> None:
        """The program ``fork_exec`` would run: the first candidate path that exists."""
        candidates = [os.fsdecode(path) for path in args[0]] if args and args[0] else []
        program = next((path for path in candidates if os.path.exists(path)), "")
        if not self.subprocess:
            self.block("process", f"fork_exec {program or candidates!r}")
        if not program or os.path.realpath(program) not in self.executables:
            self.block("process", f"run {program or candidates!r} (not a declared executable)")

    def on_import(self, args: tuple[Any, ...]) -> None:
        if args and args[0] == "_posixsubprocess":
            self.block("process", "a fresh import of _posixsubprocess")

    def check_fork(self, what: str) -> None:
        if not self.subprocess:
            self.block("process", what)

    def check_signal(self, pid: Any) -> None:
        if not self.subprocess and pid != os.getpid():
            self.block("process", f"signal to pid {pid}")


def _resolve(path: Any, dir_fd: Any) -> str:
    """The real path an operation touches: relative to ``dir_fd`` or the cwd, every symlink
    followed."""
    text = os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else str(path)
    if not os.path.isabs(text):
        if isinstance(dir_fd, int) and dir_fd >= 0:
            try:
                base = os.readlink(f"/proc/self/fd/{dir_fd}")
            except OSError:
                base = os.getcwd()
        else:
            base = os.getcwd()
        text = os.path.join(base, text)
    return os.path.realpath(text)


def _trusted_read_prefixes(write_roots: Sequence[str], hidden: Sequence[str]) -> tuple[str, ...]:
    """The interpreter's folders, where reads are imports; none overlaps a write or hidden root."""
    prefixes = []
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        real = os.path.realpath(prefix)
        overlaps = any(is_under(root, (real,)) or is_under(real, (root,)) for root in write_roots)
        overlaps = overlaps or any(is_under(root, (real,)) for root in hidden)
        if real != "/" and not overlaps:
            prefixes.append(real.rstrip("/") + "/")
            if prefix.rstrip("/") != real:
                prefixes.append(prefix.rstrip("/") + "/")
    return tuple(prefixes)


def _parse_host(entry: str) -> tuple[str, int | None]:
    host, _, port = entry.strip().rpartition(":") if entry.count(":") == 1 else (entry, "", "")
    return host.lower(), int(port) if port else None


def _resolve_executables(names: Sequence[str]) -> frozenset[str]:
    found = {_which_real(name) for name in names}
    found.discard("")
    return frozenset(found)


def _which_real(name: str) -> str:
    """The real file a program name or path runs, or "" when it does not exist."""
    if "/" in name:
        return os.path.realpath(name) if os.path.exists(name) else ""
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return ""


def _private_stderr() -> int:
    """A duplicate of stderr the skill does not know of: redirecting fd 2 cannot hide a block."""
    try:
        import fcntl

        return fcntl.fcntl(2, fcntl.F_DUPFD_CLOEXEC, 200)
    except (ImportError, OSError):
        return 2


def _short(args: tuple[Any, ...]) -> str:
    return repr(args)[:120]
