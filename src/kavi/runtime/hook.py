"""The audit hook itself: decide every audited event of a child against its side-effect policy.

This is the lean half of :mod:`kavi.runtime.audit`, imported by :mod:`kavi.runtime.guard` on the
start-up path of every isolated child. It takes the policy as a plain dict (the JSON the parent
wrote) and imports nothing but the standard library's cheapest modules and kavi's stdlib-only
leaves: no ``typing``, ``dataclasses``, ``pathlib`` or ``re`` at import time.

A block writes one ``KAVI-BLOCKED {json}`` line to a private duplicate of stderr, makes the refused
operation raise, and, through an ``atexit`` handler, makes the process exit with
:data:`BLOCKED_EXIT_CODE` even if the code under test swallowed the exception. The operation raises a
``TypeError`` whose message starts with "EffectBlocked" rather than :class:`EffectBlocked` itself: the
hook is ``pow`` bound to an object whose ``__pow__`` decides, so the error is raised by C code and its
traceback holds no frame of the hook (a frame's locals would hand the hook's state to the candidate).

Why everything lives inside :func:`_build`: candidate code shares this interpreter, so any name the
hook looked up at call time (a module global of this module, a builtin, ``os.path.realpath``,
``json.dumps``) is a name the candidate can rebind (``sys.modules[...]``, ``enum.global_enum``,
``builtins.isinstance = ...``). The hook binds every helper, builtin and C function it uses when it
is installed and reaches them only through its own closure; it never calls a method of an object
the candidate made (a ``str`` subclass's ``__str__``, ``startswith``, ``__eq__``, ``__fspath__``):
arguments are first normalised to exact built-in types through C-level conversions, or refused.
The hook is still advisory: the kernel layers are the boundary (docs/isolation.md).
"""

# string paths on purpose: pathlib costs start-up time and realpath semantics must match.
# ruff: noqa: PTH113, PTH116, PTH117, PTH118

from __future__ import annotations

import _thread
import atexit
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
# Modules that start a subinterpreter: a new interpreter starts with no audit hook at all (hooks are per
# interpreter).
SUBINTERPRETER_MODULES = (
    "_xxsubinterpreters",
    "_interpreters",
    "_xxinterpchannels",
    "_interpchannels",
    "_xxinterpqueues",
    "_interpqueues",
    "concurrent.interpreters",
    "interpreters",
    # CPython's test modules start interpreters with no thread state, so no audit event fires at all
    "_testcapi",
    "_testinternalcapi",
    "_testsinglephase",
    "_testmultiphase",
)
# Native modules whose functions the hook replaces with audited closures: a fresh copy of one of them
# would hand back the unaudited originals.
_ROUTED_MODULES = ("_posixsubprocess", "posix", "_signal", "_imp")
# Variables that make a program run another program, load a library or change an interpreter: never
# passed to a child process, never set by a skill.
_PROGRAM_ENV_PREFIXES = ("GIT_", "LD_", "PYTHON", "DYLD_", "BASH_FUNC_", "PERL5", "RUBY", "NODE_", "LESS")
_PROGRAM_ENV_SUFFIXES = ("_COMMAND", "_ASKPASS", "_SSH", "_EDITOR", "_PAGER")
_PROGRAM_ENV_NAMES = frozenset(
    {"BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "EDITOR", "VISUAL", "PAGER", "IFS"}
)
# fork_exec(args, executable_list, close_fds, pass_fds, cwd, env, ..., umask, preexec_fn[, allow_vfork])
_PREEXEC_INDEX = 21
# What a SUBPROCESS child gets from its parent's environment: nothing else.
SUBPROCESS_BASE_ENV = ("PATH", "LANG", "HOME", "TMPDIR")
# Socket families and types that bypass the address check (forged headers, link-level frames).
_AF_PACKET = 17
_SOCK_RAW = 3
_SOCK_PACKET = 10
_SOCK_TYPE_MASK = 0xF


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


# The refused operation raises a TypeError whose message quotes this name (see ``judge`` in :func:`_build`).
_REFUSAL_NAME = "EffectBlocked: refused by kavi's audit hook (the KAVI-BLOCKED report on stderr says why)"

_installed: list[str] = []


def install(policy: Policy) -> None:
    """Install the hook for ``policy``; idempotent, and the first policy stays in force for good.

    Audit hooks cannot be removed, and this hook refuses every later ``sys.addaudithook``; a second
    call with a different policy raises instead of pretending to change anything.
    """
    normalized = normalize_policy(policy)
    key = repr(sorted(normalized.items()))
    if _installed:
        if _installed[0] != key:
            raise EffectBlocked(
                "policy change",
                "installing a second, different policy",
                normalized["side_effect"],
            )
        return
    _scrub_environment(normalized)
    hook, exit_if_blocked, _enter, _leave = _build(normalized)
    atexit.register(exit_if_blocked)
    _installed.append(key)
    sys.addaudithook(hook)


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


def _program_variable_test() -> Callable[[str], bool]:
    """A closure over the tables below, so that rebinding them in this module changes nothing later."""
    names, prefixes, suffixes, upper = _PROGRAM_ENV_NAMES, _PROGRAM_ENV_PREFIXES, _PROGRAM_ENV_SUFFIXES, str.upper

    def is_program_variable(name: str) -> bool:
        """A variable that tells a program to run something else (``GIT_SSH_COMMAND``, ``LD_PRELOAD``…)."""
        big = upper(name)
        return big in names or big.startswith(prefixes) or big.endswith(suffixes)

    return is_program_variable


is_program_variable = _program_variable_test()


def _scrub_environment(policy: Policy) -> None:
    """Defense in depth for secrets: the executor already passed a clean environment."""
    declared = set(policy["secrets"])
    keep = declared if policy["side_effect"] == "SECRET_READ" else set()
    for name in list(os.environ):
        if name not in keep and (name in declared or is_secret_name(name)):
            del os.environ[name]


def is_under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _which(name: str, path_variable: str) -> str:
    """The real file a program name or path runs, or "" when it does not exist (install time only)."""
    if "/" in name:
        return os.path.realpath(name) if os.path.isfile(name) else ""
    for folder in path_variable.split(os.pathsep):
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


def _pathlib_snapshot() -> Any:
    """The pathlib classes and their attributes as installed, to recognise a pristine ``Path``.

    ``open(Path(...))`` hands the hook the ``Path`` object, after the C code has already turned it
    into the string the kernel gets (pathlib caches that string in its ``_str`` slot). The hook reads
    that cache through the slot's own descriptor, and only when no class on the way has been altered.
    Every child of kavi imports pathlib anyway (pydantic, pytest, the probe), so importing it here
    moves its cost, it does not add it.
    """
    import pathlib

    classes = tuple(
        cls
        for cls in (pathlib.PurePath, pathlib.PurePosixPath, pathlib.Path, pathlib.PosixPath)
        if isinstance(cls, type)
    )
    snapshot = tuple((cls, type.__dict__["__mro__"].__get__(cls), tuple(vars(cls).items())) for cls in classes)
    slot: Any = vars(pathlib.PurePath).get("_str")
    if type(slot).__name__ != "member_descriptor":
        return None
    fspath: Any = pathlib.PurePath.__fspath__
    return snapshot, slot.__get__, vars(pathlib), fspath.__builtins__


def install_scoped(policy: Policy) -> tuple[Callable[[], None], Callable[[], None]]:
    """A hook for ``policy`` that judges only the threads that are inside ``enter()`` … ``leave()``.

    For :func:`kavi.api.load_skill`: a permanent hook would confine the caller's whole program, so
    the policy applies while a skill's code is being imported or called, in the calling thread, and
    starting a thread there is refused (it would run outside the scope). Anything the skill leaves
    behind that runs later (a registered callback, a ``__del__`` at interpreter exit, after CPython
    cleared the hooks) runs unchecked: this is the hook alone, never a boundary.
    """
    hook, _exit_if_blocked, enter, leave = _build(normalize_policy(policy), scoped=True)
    sys.addaudithook(hook)
    return enter, leave


def _build(policy: Policy, *, scoped: bool = False) -> tuple[Any, Any, Any, Any]:
    """Bind the whole hook to its state and to the C functions it uses; nothing is looked up later."""
    import _signal  # type: ignore[import-not-found]
    import posix  # the C functions behind os.*, captured now

    # builtins and C functions, bound once: the candidate can rebind the names, not these cells
    _type, _issub, _len, _str, _bytes, _int, _tuple, _list = type, issubclass, len, str, bytes, int, tuple, list
    _bool, _frozenset, _dict, _OSError, _Exception, _KeyError = bool, frozenset, dict, OSError, Exception, KeyError
    _AttributeError, _ValueError, _TypeError = AttributeError, ValueError, TypeError
    _join, _bjoin, _range = "".join, b"".join, range
    _list_item, _dict_keys = list.__getitem__, dict.keys
    _getattribute = object.__getattribute__
    _BaseException, _not_implemented = BaseException, NotImplemented
    from types import MappingProxyType as _mappingproxy
    from types import MethodType as _method

    _decode, _index = bytes.decode, int.__index__
    _tuple_item, _tuple_len = tuple.__getitem__, tuple.__len__
    _mro_of, _dict_of = type.__dict__["__mro__"].__get__, type.__dict__["__dict__"].__get__
    _lstat, _stat, _readlink, _getcwd, _getpid = posix.lstat, posix.stat, posix.readlink, posix.getcwd, posix.getpid
    _write, _exit, _popen, _pread, _pclose = posix.write, posix._exit, posix.open, posix.read, posix.close
    _get_ident = _thread.get_ident
    _audit = sys.audit
    _fsencoding, _fserrors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    _encode_json = _json_string_encoder()
    _blocked_cls = EffectBlocked
    marker = BLOCKED_MARKER
    max_detail = _MAX_DETAIL
    max_reports = _MAX_REPORTS
    write_flags = _WRITE_FLAGS
    always_writable = _ALWAYS_WRITABLE
    exit_code = BLOCKED_EXIT_CODE
    routed_modules = _ROUTED_MODULES
    subinterpreter_modules = SUBINTERPRETER_MODULES
    af_packet = _AF_PACKET
    sock_packet = _SOCK_PACKET
    sock_raw = _SOCK_RAW
    sock_type_mask = _SOCK_TYPE_MASK
    _rdonly = posix.O_RDONLY
    _is_program_variable = _program_variable_test()
    _pathlib = _pathlib_snapshot()

    effect = policy["side_effect"]
    environ = dict(os.environ)
    environ_object = os.environ
    writable = list(policy["extra_write_roots"])
    if effect == "FILE_WRITE":
        writable.extend(policy["write_roots"])
    tmp = environ.get("TMPDIR", "")
    if policy["private_tmp"] and os.path.isabs(tmp) and os.path.realpath(tmp) != "/":
        writable.append(tmp)
    write_roots = tuple(os.path.realpath(root) for root in writable)
    hidden = tuple(os.path.realpath(root) for root in policy["hidden_roots"])
    visible = tuple(os.path.realpath(root) for root in policy["visible_roots"])
    trusted_reads = _trusted_read_prefixes(write_roots, hidden)
    network = effect == "NETWORK"
    hosts = tuple(_parse_host(entry) for entry in policy["allow_hosts"]) if network else ()
    subprocess_allowed = may_run_programs(policy)
    native = effect == "GPU_KERNEL"
    path_variable = environ.get("PATH", os.defpath)
    programs: dict[str, tuple[int, int]] = {}
    if subprocess_allowed:
        for name in policy["executables"]:
            real = _which(name, path_variable)
            if real:
                info = os.stat(real)
                programs[real] = (info.st_dev, info.st_ino)
    child_env = tuple(
        f"{name}={environ[name]}".encode(_fsencoding, _fserrors) for name in SUBPROCESS_BASE_ENV if name in environ
    )
    child_env_names = _frozenset(name for name in SUBPROCESS_BASE_ENV if name in environ)
    getaddrinfo = None
    if network:
        import _socket

        getaddrinfo = _socket.getaddrinfo
    report_fd = _private_stderr()
    streams = tuple(stream for stream in (sys.stdout, sys.stderr) if _type(stream).__module__ in ("_io", "io"))
    flushers = tuple((type(stream).flush, stream) for stream in streams)

    resolved_hosts: dict[str, frozenset[str]] = {}
    resolving = [0]  # the thread resolving an allowed name, so its own lookup passes
    pending_open = [0, None]  # (thread, path object) of an os.open(..., dir_fd=) the hook already checked
    counts = [0]
    depth: dict[int, int] = {}  # scoped: how deep each thread is inside skill code
    unchecked = "an argument of a type the hook does not check"

    def block(kind: str, detail: str) -> None:
        detail = detail[:max_detail]
        counts[0] += 1
        if counts[0] <= max_reports and not scoped:  # a loop of refused forks must not flood stderr
            line = (
                marker
                + '{"detail": '
                + _encode_json(detail)
                + ', "effect": '
                + _encode_json(kind)
                + ', "side_effect": '
                + _encode_json(effect)
                + "}\n"
            )
            try:  # noqa: SIM105 - contextlib is not worth importing on the start-up path
                _write(report_fd, line.encode("utf-8", "replace"))
            except _OSError:
                pass
        raise _blocked_cls(kind, detail, effect)

    def exit_if_blocked() -> None:
        """Make a swallowed block still fail the run; flushes only the streams kavi opened."""
        if not counts[0]:
            return
        for flush, stream in flushers:
            try:  # noqa: SIM105 - contextlib is not worth importing on the start-up path
                flush(stream)
            except (_OSError, _ValueError):
                pass
        _exit(exit_code)

    # --- arguments, as exact built-in types -------------------------------------------------------
    def pathlib_text(value: Any) -> str | None:
        if _pathlib is None:
            return None
        snapshot, read_str, module_globals, builtins_dict = _pathlib
        cls = _type(value)
        mro = None
        for known, known_mro, _items in snapshot:
            if cls is known:
                mro = known_mro
        current_mro = _mro_of(cls)
        if mro is None or _len(current_mro) != _len(mro):
            return None
        for index in _range(_len(mro)):
            if _tuple_item(current_mro, index) is not _tuple_item(mro, index):
                return None
        for known, _known_mro, items in snapshot:
            current = _dict_of(known)
            if _len(current) != _len(items):
                return None
            for name, attribute in items:
                if current.get(name) is not attribute:
                    return None
        if "str" in module_globals or builtins_dict.get("str") is not _str:
            return None
        try:
            cached = read_str(value)
        except _AttributeError:
            return None
        return cached if _type(cached) is _str else None

    def text(value: Any) -> str:
        """A path or host as the kernel gets it, as an exact str; anything else is refused."""
        kind = _type(value)
        if kind is _str:
            return _str(value)  # an exact str comes back as itself
        if kind is _bytes:
            return _decode(value, _fsencoding, _fserrors)
        if _issub(_type(value), _str):
            return _join([value])  # the characters themselves: no method of the subclass runs
        if _issub(_type(value), _bytes):
            return _decode(_bjoin([value]), _fsencoding, _fserrors)
        converted = pathlib_text(value)
        if converted is None:
            block("unchecked", unchecked)
        return converted  # type: ignore[return-value]

    def number(value: Any) -> int:
        if _type(value) is _int:
            return _int(value)  # an exact int comes back as itself
        if _issub(_type(value), _int):
            return _int(_index(value))
        block("unchecked", unchecked)
        return 0

    def is_fd(value: Any) -> bool:
        return _issub(_type(value), _int) and _type(value) is not _bool

    def under(path: str, roots: tuple[str, ...]) -> bool:
        for root in roots:
            if path == root or (path.startswith(root) and path[_len(root) : _len(root) + 1] == "/"):
                return True
            if root == "/":
                return True
        return False

    def realpath(path: str) -> str:
        """Every symlink followed, with the C functions bound at install (os.path is rebindable)."""
        if not path.startswith("/"):
            path = _getcwd() + "/" + path
        pending = path.split("/")
        pending.reverse()
        resolved = ""
        links = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                resolved = resolved[: resolved.rfind("/")] if resolved else ""
                continue
            candidate = resolved + "/" + part
            try:
                mode = _lstat(candidate).st_mode
            except _OSError:
                resolved = candidate
                continue
            if (mode & 0o170000) != 0o120000:
                resolved = candidate
                continue
            links += 1
            if links > 40:
                block("file", f"too many symbolic links in {path}")
            target = _readlink(candidate)
            if target.startswith("/"):
                resolved = ""
            more = target.split("/")
            more.reverse()
            pending.extend(more)
        return resolved or "/"

    def resolve(path: Any, dir_fd: Any) -> str:
        """The real path an operation touches: relative to ``dir_fd`` or the cwd, links followed."""
        name = text(path)
        if not name.startswith("/") and dir_fd is not None:
            fd = number(dir_fd)
            if fd >= 0:
                try:
                    base = _readlink(f"/proc/self/fd/{fd}")
                except _OSError:
                    block("unchecked", f"a path relative to descriptor {fd}, which the hook cannot resolve")
                if not base.startswith("/") or base.endswith(" (deleted)"):
                    block("unchecked", f"a path relative to descriptor {fd} ({base})")
                name = base + "/" + name
        return realpath(name)

    def is_process_secret(real: str) -> bool:
        """/proc/PID/environ and /proc/PID/mem (any process, any thread) hold other secrets."""
        return real.startswith("/proc/") and (real.endswith(("/environ", "/mem")) or "/map_files/" in real)

    # --- files --------------------------------------------------------------------------------------
    def check_write(path: Any, dir_fd: Any = None) -> None:
        if is_fd(path):
            return  # an already open descriptor: its opening was checked
        real = resolve(path, dir_fd)
        if real in always_writable or under(real, write_roots):
            return
        block("file write", real)

    def check_read(path: Any, dir_fd: Any = None) -> None:
        if is_fd(path):
            return
        if (
            dir_fd is None
            and _type(path) is _str
            and path.startswith(trusted_reads)
            and "/.." not in path
            and "/proc/" not in path
        ):
            return  # an import from the interpreter's own tree, where no skill can plant a symlink
        real = resolve(path, dir_fd)
        if is_process_secret(real):
            block("file read", real)
        if hidden and under(real, hidden) and not under(real, visible):
            block("file read", real)

    def check_open(path: Any, flags: Any, dir_fd: Any) -> None:
        if _type(flags) is not _int:
            flags = number(flags)
        if flags & write_flags:
            check_write(path, dir_fd)
        else:
            check_read(path, dir_fd)

    def on_open(args: tuple[Any, ...]) -> None:
        path, mode, flags = args
        if pending_open[0] == _get_ident() and pending_open[1] is path:
            pending_open[0], pending_open[1] = 0, None
            return  # the os.open(..., dir_fd=) route already checked this call against its descriptor
        if is_fd(path):
            return
        if _type(flags) is _int:
            check_open(path, flags, None)
        elif _type(mode) is _str and ("w" in mode or "a" in mode or "x" in mode or "+" in mode):
            check_write(path)
        else:
            check_read(path)

    def on_open_at(args: tuple[Any, ...]) -> None:
        path, flags, dir_fd = args
        check_open(path, flags, dir_fd)
        pending_open[0], pending_open[1] = _get_ident(), path

    def on_spawn_actions(args: tuple[Any, ...]) -> None:
        """``posix_spawn`` file actions: an OPEN action writes a file in the new process."""
        for action in args[0] or ():
            if not _issub(_type(action), _tuple) or not _tuple_len(action):
                block("unchecked", "a posix_spawn file action the hook cannot read")
            if number(_tuple_item(action, 0)) == os_spawn_open:
                check_open(_tuple_item(action, 2), _tuple_item(action, 3), None)

    os_spawn_open = getattr(os, "POSIX_SPAWN_OPEN", 0)

    def check_write_pair(args: tuple[Any, ...]) -> None:
        """rename and link touch two paths (a hard link to an outside file is a write to it)."""
        check_write(args[0], args[2])
        check_write(args[1], args[3])

    # --- network ------------------------------------------------------------------------------------
    def addresses(host: str) -> frozenset[str]:
        """The addresses an allowed host name resolves to, looked up once, lazily."""
        if host not in resolved_hosts:
            resolving[0] = _get_ident()
            try:
                infos = getaddrinfo(host, None)  # type: ignore[misc]
                resolved_hosts[host] = _frozenset(_str(info[4][0]) for info in infos)
            except _OSError:
                resolved_hosts[host] = _frozenset()
            finally:
                resolving[0] = 0
        return resolved_hosts[host]

    def check_address(action: str, address: Any) -> None:
        if not network:
            block("network", f"{action} on a socket")
        if not _issub(_type(address), _tuple) or _tuple_len(address) < 2:
            block("network", f"{action} to a local socket or an address the hook cannot read")
        host, port = text(_tuple_item(address, 0)).lower(), number(_tuple_item(address, 1))
        for allowed_host, allowed_port in hosts:
            if allowed_port is not None and allowed_port != port:
                continue
            if host == allowed_host or host in addresses(allowed_host):
                return
        block("network", f"{action} {host}:{port}")

    def on_socket(args: tuple[Any, ...]) -> None:
        family, kind = number(args[1]), number(args[2])
        if family == af_packet or (kind & sock_type_mask) in (sock_raw, sock_packet):
            block("network", f"a raw or packet socket (family {family}, type {kind})")

    def on_bind(args: tuple[Any, ...]) -> None:
        address = args[1]
        if (
            network
            and _issub(_type(address), _tuple)
            and _tuple_len(address) >= 2
            and number(_tuple_item(address, 1)) == 0
        ):
            return  # a client choosing its source address, not a listener on a known port
        block("network", "bind")

    def check_lookup(host: Any, port: Any) -> None:
        if not network:
            block("network", "a name lookup")
        if resolving[0] == _get_ident():
            return  # the hook's own resolution of an allowed host name, in this thread
        name = text(host).lower() if host is not None else ""
        port_text = "" if port is None else (text(port) if not _issub(_type(port), _int) else _str(number(port)))
        for allowed_host, allowed_port in hosts:
            if allowed_port is not None and port is not None and port_text != _str(allowed_port):
                continue
            if name == allowed_host or name in addresses(allowed_host):
                return  # the name itself, or an address literal it resolves to
        block("network", f"resolve {name}:{port_text}")

    def on_nameinfo(args: tuple[Any, ...]) -> None:
        address = args[0]
        if not _issub(_type(address), _tuple) or not _tuple_len(address):
            block("unchecked", unchecked)
        check_lookup(_tuple_item(address, 0), None)

    # --- processes ----------------------------------------------------------------------------------
    def check_program(path: str, real: str) -> None:
        if path.startswith(("/proc/", "/dev/fd/", "/dev/")) or real.startswith(("/proc/", "/dev/")):
            block("process", f"run {path} (a descriptor or device is not a program)")
        known = programs.get(real)
        if known is None:
            block("process", f"run {path} (not a declared executable)")
        try:
            info = _stat(real)
        except _OSError:
            block("process", f"run {path} (it is gone)")
        if (info.st_dev, info.st_ino) != known:
            block("process", f"run {path} (the file changed since the run started)")

    def check_exec(executable: Any) -> None:
        if not subprocess_allowed:
            block("process", "starting a program")
        if is_fd(executable):
            block("process", "running a program from a file descriptor")
        name = text(executable)
        if "/" in name:
            check_program(name, realpath(name))
            return
        for folder in path_variable.split(":"):
            candidate = (folder or ".") + "/" + name
            try:
                mode = _stat(candidate).st_mode
            except _OSError:
                continue
            if (mode & 0o170000) == 0o100000:
                check_program(candidate, realpath(candidate))
                return
        block("process", f"run {name} (not found)")

    def check_exec_env(env: Any) -> None:
        if env is None or env is environ_object:
            return  # os.environ holds no program variable: setting one is refused (os.putenv)
        if not _issub(_type(env), _dict):
            block("unchecked", "an environment that is not a dict")
        for name in _dict_keys(env):
            if _is_program_variable(text(name)):
                block("process", f"passing {text(name)} to a program")

    def on_popen(args: tuple[Any, ...]) -> None:
        executable, argv = args[0], args[1]
        if executable is None:
            if _issub(_type(argv), _list):
                executable = _list_item(argv, 0)
            elif _issub(_type(argv), _tuple):
                executable = _tuple_item(argv, 0)
            else:
                executable = argv
        check_exec(executable)

    def on_exec(args: tuple[Any, ...]) -> None:
        check_exec(args[0])
        check_exec_env(args[2])

    def check_fork_exec(args: tuple[Any, ...]) -> None:
        """The program ``fork_exec`` would run: the first candidate path that exists."""
        if not subprocess_allowed:
            block("process", "starting a program (fork_exec)")
        paths = args[0]
        if paths is not None and _type(paths) is not _list and _type(paths) is not _tuple:
            block("unchecked", "a list of programs the hook cannot read")
        candidates = [text(path) for path in paths] if paths else []
        if args[2] is not None:
            block("process", "a preexec_fn (Python code between fork and exec); use start_new_session")
        for candidate in candidates:
            try:
                _stat(candidate)
            except _OSError:
                continue
            check_program(candidate, realpath(candidate))
            return
        block("process", f"run {candidates[0] if candidates else 'nothing'} (not found)")

    def on_import(args: tuple[Any, ...]) -> None:
        name = text(args[0])
        for module in subinterpreter_modules:
            if name == module or name.startswith(module + "."):
                block("subinterpreter", f"import {name} (a subinterpreter runs without this hook)")
        if name in routed_modules:
            block("process", f"a fresh import of {name}")

    def on_create_builtin(args: tuple[Any, ...]) -> None:
        name = text(args[0])
        if name in subinterpreter_modules:
            block("subinterpreter", f"a built-in {name} (a subinterpreter runs without this hook)")
        if name in routed_modules or name in ("os", "_socket"):
            block("process", f"a fresh copy of the built-in module {name}")

    def check_fork(what: str) -> None:
        if not subprocess_allowed:
            block("process", what)

    def check_signal(target: Any) -> None:
        pid = number(target)
        if pid == _getpid():
            return
        if subprocess_allowed and pid > 0 and parent_of(pid) == _getpid():
            return  # one of its own programs
        block("process", f"signal to pid {pid}")

    def parent_of(pid: int) -> int:
        try:
            fd = _popen(f"/proc/{pid}/stat", _rdonly)
        except _OSError:
            return -1
        try:
            data = _pread(fd, 4096)
        finally:
            _pclose(fd)
        fields = data[data.rfind(b")") + 2 :].split()
        return _int(fields[1]) if _len(fields) > 1 else -1

    def on_pidfd_signal(args: tuple[Any, ...]) -> None:
        fd = number(args[0])
        try:
            handle = _popen(f"/proc/self/fdinfo/{fd}", _rdonly)
        except _OSError:
            block("process", "a signal through a descriptor the hook cannot read")
        try:
            data = _pread(handle, 4096)
        finally:
            _pclose(handle)
        for line in data.split(b"\n"):
            if line.startswith(b"Pid:"):
                check_signal(_int(line[4:].strip()))
                return
        block("process", "a signal through a descriptor that is not a process")

    def on_putenv(args: tuple[Any, ...]) -> None:
        name = text(args[0])
        if _is_program_variable(name):
            block("process", f"setting {name} (it tells programs what else to run)")

    def refuse(kind: str, detail: str) -> Callable[[tuple[Any, ...]], None]:
        return lambda _args: block(kind, detail)

    path_writes: dict[str, Callable[[tuple[Any, ...]], None]] = {
        "os.remove": lambda a: check_write(a[0], a[1]),
        "os.rmdir": lambda a: check_write(a[0], a[1]),
        "os.mkdir": lambda a: check_write(a[0], a[2]),
        "os.chmod": lambda a: check_write(a[0], a[2]),
        "os.chown": lambda a: check_write(a[0], a[3]),
        "os.utime": lambda a: check_write(a[0], a[3]),
        "os.truncate": lambda a: check_write(a[0]),
        "os.setxattr": lambda a: check_write(a[0]),
        "os.removexattr": lambda a: check_write(a[0]),
        "os.rename": check_write_pair,
        "os.link": check_write_pair,
        "os.symlink": lambda a: check_write(a[1], a[2]),
        "shutil.rmtree": lambda a: check_write(a[0], a[1]),
        "kavi.mknod": lambda a: check_write(a[0], a[1]),
    }
    handlers: dict[str, Callable[[tuple[Any, ...]], None]] = {
        "open": on_open,
        "kavi.open_at": on_open_at,
        "kavi.posix_spawn_file_actions": on_spawn_actions,
        **path_writes,
        "os.listdir": lambda a: check_read(a[0] if a[0] is not None else "."),
        "os.scandir": lambda a: check_read(a[0] if a[0] is not None else "."),
        "socket.__new__": on_socket,
        "socket.connect": lambda a: check_address("connect", a[1]),
        "socket.sendto": lambda a: check_address("sendto", a[1]),
        "socket.sendmsg": lambda a: check_address("sendmsg", a[1]),
        "socket.bind": on_bind,
        "socket.getaddrinfo": lambda a: check_lookup(a[0], a[1]),
        "socket.gethostbyname": lambda a: check_lookup(a[0], None),
        "socket.gethostbyname_ex": lambda a: check_lookup(a[0], None),
        "socket.gethostbyaddr": lambda a: check_lookup(a[0], None),
        "socket.getnameinfo": on_nameinfo,
        "socket.sethostname": refuse("network", "sethostname"),
        "subprocess.Popen": on_popen,
        "os.exec": on_exec,
        "os.posix_spawn": on_exec,
        "os.spawn": lambda a: check_exec(a[1]),
        "os.system": lambda a: check_exec("sh"),
        "os.fork": lambda a: check_fork("fork"),
        "os.forkpty": lambda a: check_fork("forkpty"),
        "kavi.fork_exec": check_fork_exec,
        "import": on_import,
        "kavi.create_builtin": on_create_builtin,
        "cpython.PyInterpreterState_New": refuse("subinterpreter", "creating a subinterpreter"),
        "os.kill": lambda a: check_signal(a[0]),
        "os.killpg": lambda a: check_signal(-1),
        "kavi.pidfd_open": lambda a: check_signal(a[0]),
        "kavi.pidfd_send_signal": on_pidfd_signal,
        "signal.pthread_kill": lambda a: None,
        "os.putenv": on_putenv,
        "sys.addaudithook": refuse("audit hook", "adding another audit hook"),
        "sys.settrace": refuse("introspection", "sys.settrace"),
        "sys.setprofile": refuse("introspection", "sys.setprofile"),
        "gc.get_objects": refuse("introspection", "gc.get_objects"),
        "gc.get_referrers": refuse("introspection", "gc.get_referrers"),
        "gc.get_referents": refuse("introspection", "gc.get_referents"),
    }
    hook_codes = _frozenset(_codes_of(_build) | _codes_of(_route_native_calls) | _codes_of(_program_variable_test))
    inspecting: dict[int, bool] = {}  # threads inside on_getattr, whose own frame reads must pass

    def on_getattr(args: tuple[Any, ...]) -> None:
        """A traceback's or generator's frame is readable, unless it is one of the hook's own frames: its
        locals would hand out the hook's state (a traceback of a refusal passes through the hook)."""
        name = args[1]
        if _type(name) is not _str or name not in ("tb_frame", "gi_frame", "cr_frame", "ag_frame"):
            return
        ident = _get_ident()
        if inspecting.get(ident):
            return
        inspecting[ident] = True
        try:
            frame = _getattribute(args[0], name)
            code = _getattribute(frame, "f_code") if frame is not None else None
        finally:
            inspecting.pop(ident, None)
        if code in hook_codes:
            block("introspection", "reading a frame of the audit hook")

    handlers["object.__getattr__"] = on_getattr
    handlers["sys._current_frames"] = refuse("introspection", "sys._current_frames")
    lookup = _mappingproxy(handlers).get  # read-only: the dict itself is reachable from no frame later

    # The hook itself: one dict lookup for the thousands of events nobody cares about.
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if scoped and not depth.get(_get_ident()):
            return  # the caller's own code, outside any skill call
        handler = lookup(event)
        if handler is not None:
            try:
                handler(args)
            except _blocked_cls:
                raise
            except _Exception as exc:  # fail closed: an event the hook cannot read is refused
                block("unchecked", f"{event}: the hook could not check it ({_type(exc).__name__})")
        elif event.startswith("ctypes.") and not native:
            block("ctypes", event)

    def judge(_self: object, event: str, args: tuple[Any, ...]) -> Any:
        """Decide without raising: a refusal returns NotImplemented, and ``pow`` (C) raises the TypeError."""
        try:
            hook(event, args)
        except _BaseException:  # every refusal, and every failure to check, blocks
            return _not_implemented
        return None

    # The audit hook is ``pow`` bound to an instance of this class: pow calls ``__pow__(event, args)`` and,
    # when it returns NotImplemented, raises its TypeError from C. The refusal's traceback therefore holds
    # no frame of the hook (whose locals would hand out its state), only the candidate's own frames; the
    # TypeError's message names this class, and the private report names the effect.
    refusal = _type(_REFUSAL_NAME, (), {"__slots__": (), "__pow__": judge})
    audit_hook = _method(pow, refusal())

    def enter() -> None:
        ident = _get_ident()
        depth[ident] = depth.get(ident, 0) + 1

    def leave() -> None:
        ident = _get_ident()
        left = depth.get(ident, 0) - 1
        if left > 0:
            depth[ident] = left
        else:
            depth.pop(ident, None)

    if scoped:
        handlers["kavi.start_thread"] = refuse("thread", "starting a thread inside skill code")
    _route_native_calls(
        subprocess_allowed=subprocess_allowed or scoped,
        clean_environment=effect == "SUBPROCESS" and not scoped,
        route_threads=scoped,
        audit=_audit,
        child_env=child_env,
        child_env_names=child_env_names,
        is_program_variable=_is_program_variable,
        signal_module=_signal,
        posix_module=posix,
    )
    return audit_hook, exit_if_blocked, enter, leave


def _route_native_calls(
    *,
    subprocess_allowed: bool,
    clean_environment: bool,
    route_threads: bool,
    audit: Callable[..., None],
    child_env: tuple[bytes, ...],
    child_env_names: frozenset[str],
    is_program_variable: Callable[[str], bool],
    signal_module: Any,
    posix_module: Any,
) -> None:
    """Give an audit event to the native calls that act without one, in every module that holds them.

    ``_posixsubprocess.fork_exec`` (``multiprocessing.util.spawnv_passfds`` or a direct call skip
    ``subprocess``'s own event), ``os.open(..., dir_fd=)`` (the ``open`` event does not carry the
    descriptor), ``os.mknod``/``os.mkfifo``, ``os.pidfd_open``, ``signal.pidfd_send_signal`` and the
    file actions of ``os.posix_spawn``. Each replacement raises a ``kavi.*`` event first. For
    classes without SUBPROCESS the fork_exec replacement keeps no reference to the original at all;
    a fresh import or copy of these native modules is refused by the hook.
    """
    _type, _bytes, _list, _len, _int, _str, _dict = type, bytes, list, len, int, str, dict
    _TypeError, _OSError, preexec_index = TypeError, OSError, _PREEXEC_INDEX
    _tuple_item = tuple.__getitem__
    _decode, _find = bytes.decode, bytes.find
    child_env_pairs = tuple(
        (
            entry.partition(b"=")[0].decode("utf-8", "surrogateescape"),
            entry.partition(b"=")[2].decode("utf-8", "surrogateescape"),
        )
        for entry in child_env
    )

    def replace(modules: Sequence[Any], name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(modules[0], name, None)
        if original is None:
            return
        wrapper = make(original)
        for module in modules:
            if getattr(module, name, None) is original:
                setattr(module, name, wrapper)

    def child_environment(env: Any) -> list[bytes]:
        """Nothing but the frozen base, plus what the caller passed that starts no other program."""
        merged = _list(child_env)
        if env is None:
            return merged
        for entry in env:
            if _type(entry) is not _bytes:
                raise _TypeError("fork_exec: an environment entry that is not bytes")
            cut = _find(entry, b"=")
            name = _decode(entry[:cut] if cut > 0 else entry, "utf-8", "surrogateescape")
            if name in child_env_names or is_program_variable(name):
                continue
            merged.append(entry)
        return merged

    try:
        import _posixsubprocess
    except ImportError:  # not POSIX: nothing to route
        _posixsubprocess = None  # type: ignore[assignment]
    if _posixsubprocess is not None:

        def make_fork_exec(original: Any) -> Any:
            if not subprocess_allowed:

                def refused_fork_exec(*args: Any) -> Any:
                    audit("kavi.fork_exec", args[1] if _len(args) > 1 else (), None, None)
                    raise _OSError("process creation is not allowed")

                return refused_fork_exec

            def fork_exec(*args: Any) -> Any:
                values = _list(args)
                audit(
                    "kavi.fork_exec",
                    values[1],
                    values[5],
                    values[preexec_index] if _len(values) > preexec_index else None,
                )
                if clean_environment:
                    values[5] = child_environment(values[5])
                return original(*values)

            return fork_exec

        modules = [_posixsubprocess]
        loaded = sys.modules.get("subprocess")
        if loaded is not None and hasattr(loaded, "_fork_exec"):
            modules.append(loaded)
        replace(modules, "fork_exec", make_fork_exec)
        if loaded is not None and hasattr(loaded, "_fork_exec"):
            vars(loaded)["_fork_exec"] = _posixsubprocess.fork_exec

    os_modules = (posix_module, os)

    def make_open(original: Any) -> Any:
        def open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
            if dir_fd is not None:
                audit("kavi.open_at", path, flags, dir_fd)
                return _int(original(path, flags, mode, dir_fd=dir_fd))
            return _int(original(path, flags, mode))

        return open

    def make_mknod(original: Any) -> Any:
        def mknod(path: Any, *args: Any, dir_fd: Any = None) -> Any:
            audit("kavi.mknod", path, dir_fd)
            return original(path, *args, dir_fd=dir_fd)

        return mknod

    def make_pidfd_open(original: Any) -> Any:
        def pidfd_open(pid: Any, *args: Any) -> Any:
            audit("kavi.pidfd_open", pid)
            return original(pid, *args)

        return pidfd_open

    def make_pidfd_send_signal(original: Any) -> Any:
        def pidfd_send_signal(pidfd: Any, *args: Any) -> Any:
            audit("kavi.pidfd_send_signal", pidfd)
            return original(pidfd, *args)

        return pidfd_send_signal

    def make_posix_spawn(original: Any) -> Any:
        def posix_spawn(path: Any, argv: Any, env: Any, **options: Any) -> Any:
            actions = options.get("file_actions")
            actions = _list(actions) if actions is not None else None
            audit("kavi.posix_spawn_file_actions", actions)
            if actions is not None:
                options["file_actions"] = actions
            if clean_environment:  # the same frozen base as the fork_exec route
                merged = _dict(child_env_pairs)
                for key, value in _dict(env).items():
                    fits = _type(key) is _str and _type(value) is _str and key not in child_env_names
                    if fits and not is_program_variable(key):
                        merged[key] = value
                env = merged
            return original(path, argv, env, **options)

        return posix_spawn

    replace(os_modules, "open", make_open)
    replace(os_modules, "mknod", make_mknod)
    replace(os_modules, "mkfifo", make_mknod)
    replace(os_modules, "pidfd_open", make_pidfd_open)
    replace(os_modules, "posix_spawn", make_posix_spawn)
    replace(os_modules, "posix_spawnp", make_posix_spawn)
    signal_modules = [signal_module]
    if "signal" in sys.modules:
        signal_modules.append(sys.modules["signal"])
    replace(signal_modules, "pidfd_send_signal", make_pidfd_send_signal)

    import _imp
    from types import SimpleNamespace as _namespace

    def make_create_builtin(original: Any) -> Any:
        def create_builtin(spec: Any) -> Any:
            name = spec.name  # read once: the original gets a plain object holding this very name
            if _type(name) is not _str:
                raise _TypeError("create_builtin: the spec's name is not a str")
            audit("kavi.create_builtin", name)
            return original(_namespace(name=name))

        return create_builtin

    replace([_imp], "create_builtin", make_create_builtin)
    if route_threads:

        def make_start_thread(original: Any) -> Any:
            def start_new_thread(*args: Any, **kwargs: Any) -> Any:
                audit("kavi.start_thread")
                return original(*args, **kwargs)

            return start_new_thread

        thread_modules: list[Any] = [_thread]
        if "threading" in sys.modules:
            thread_modules.append(sys.modules["threading"])
        for name in ("start_new_thread", "_start_new_thread", "start_joinable_thread", "_start_joinable_thread"):
            holder = [module for module in thread_modules if hasattr(module, name)]
            original = next((getattr(module, name) for module in holder), None)
            if original is not None:
                wrapper = make_start_thread(original)
                for module in holder:
                    if getattr(module, name) is original:
                        setattr(module, name, wrapper)


def _codes_of(function: Any) -> set[Any]:
    """The code objects of ``function``'s nested functions, at any depth (install time only)."""
    found: set[Any] = set()
    pending = [function.__code__]
    while pending:
        code = pending.pop()
        found.add(code)
        pending.extend(const for const in code.co_consts if type(const) is type(code))
    return found


def _json_string_encoder() -> Callable[[str], str]:
    """The C string encoder of ``json`` (``json.dumps`` is a rebindable Python function)."""
    try:
        from _json import encode_basestring_ascii
    except ImportError:  # pragma: no cover - CPython always has it
        from json.encoder import py_encode_basestring_ascii as encode_basestring_ascii
    return encode_basestring_ascii


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
