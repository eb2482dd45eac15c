"""Kernel confinement a child applies to itself: no_new_privs, capabilities, Landlock, seccomp.

The parent (:mod:`kavi.sandbox.executor`) decides what a child may touch and writes it as a
:class:`Confinement` into the child's environment (``KAVI_CONFINE``); the child applies it before any
candidate byte runs -- in :mod:`kavi.runtime.guard` for guarded Python children, through
:func:`launcher_argv` (a few lines of Python that confine, then ``execv``) for every other command.
Applying fails closed: a child that cannot apply what the parent configured exits with
:data:`CONFINE_EXIT_CODE` and never runs the target, so a layer the parent records is a layer in force.

Why in the child and not in the parent's ``preexec_fn``: bubblewrap must mount, which Landlock and
the seccomp filter forbid, so at FULL they can only start after bubblewrap's setup; doing the same at
FALLBACK keeps one code path. The seccomp filter is a small BPF program assembled here (no
libseccomp binding to keep in step); at FULL bubblewrap installs it (``--seccomp FD``).

This module is imported by every guarded child: only the standard library, ``ctypes`` loaded lazily.
"""

# string paths on purpose: pathlib costs start-up time in every child.
# ruff: noqa: PTH112, PTH113

from __future__ import annotations

import json
import os
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

ENV_NAME = "KAVI_CONFINE"
CONFINE_EXIT_CODE = 125
CONFINE_MARKER = "kavi-confine: "
# `-c` rather than `-m`: no runpy import on the way to execv.
LAUNCH = "import sys; from kavi.sandbox.confine import launch; launch(sys.argv[1:])"

# --- seccomp -----------------------------------------------------------------------------------

_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_EPERM = 1
_ENOSYS = 38
_X32_SYSCALL_BIT = 0x40000000

# classic BPF opcodes
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
_OFF_NR = 0
_OFF_ARCH = 4


def _arg_low(index: int) -> int:
    """Offset of the low 32 bits of argument ``index`` (little-endian machines only)."""
    return 16 + 8 * index


_AF_INET, _AF_INET6, _AF_PACKET = 2, 10, 17
_SOCK_RAW, _SOCK_PACKET = 3, 10
_S_IFMT, _S_IFREG, _S_IFIFO = 0o170000, 0o100000, 0o010000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80


class _Arch:
    """One machine's audit architecture and system call numbers."""

    def __init__(self, audit: int, numbers: dict[str, int], *, x32: bool) -> None:
        self.audit = audit
        self.numbers = numbers
        self.x32 = x32


# Refused outright with EPERM: changing mounts or namespaces, reaching into other processes, kernel
# keyrings, BPF and perf, loading kernels or modules, file handles that bypass paths, io_uring (whose
# operations seccomp cannot see), and the privileged clock/reboot/swap calls.
_DENIED = (
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "ptrace", "process_vm_readv",
    "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp", "kexec_load", "kexec_file_load", "bpf",
    "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd", "open_by_handle_at",
    "name_to_handle_at", "io_uring_setup", "io_uring_enter", "io_uring_register", "fsopen", "fsconfig",
    "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "init_module", "finit_module",
    "delete_module", "reboot", "swapon", "swapoff", "acct", "syslog", "settimeofday", "clock_settime",
    "iopl", "ioperm", "uselib", "quotactl", "vhangup",
)  # fmt: skip

_COMMON_NEW = {
    "pidfd_getfd": 438, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "clone3": 435, "process_madvise": 440, "mount_setattr": 442,
}  # fmt: skip

_X86_64 = _Arch(
    0xC000003E,
    {
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "kexec_load": 246,
        "kexec_file_load": 320, "bpf": 321, "perf_event_open": 298, "keyctl": 250, "add_key": 248,
        "request_key": 249, "userfaultfd": 323, "open_by_handle_at": 304, "name_to_handle_at": 303,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167,
        "swapoff": 168, "acct": 163, "syslog": 103, "settimeofday": 164, "clock_settime": 227, "iopl": 172,
        "ioperm": 173, "uselib": 134, "quotactl": 179, "vhangup": 153, "socket": 41, "mknod": 133,
        "mknodat": 259, "clone": 56, **_COMMON_NEW,
    },
    x32=True,
)  # fmt: skip
_AARCH64 = _Arch(
    0xC00000B7,
    {
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "kexec_load": 104,
        "kexec_file_load": 294, "bpf": 280, "perf_event_open": 241, "keyctl": 219, "add_key": 217,
        "request_key": 218, "userfaultfd": 282, "open_by_handle_at": 265, "name_to_handle_at": 264,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "reboot": 142, "swapon": 224,
        "swapoff": 225, "acct": 89, "syslog": 116, "settimeofday": 170, "clock_settime": 112,
        "quotactl": 60, "vhangup": 58, "socket": 198, "mknodat": 33, "clone": 220, **_COMMON_NEW,
    },
    x32=False,
)  # fmt: skip
_ARCHES = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}


def seccomp_arch() -> str | None:
    """The machine name when kavi has a filter for it (x86_64, aarch64), else None."""
    machine = os.uname().machine.lower()
    return machine if sys.platform.startswith("linux") and machine in _ARCHES else None


class _Assembler:
    """Classic BPF with symbolic forward jumps; ``jt``/``jf`` are labels or None (fall through)."""

    def __init__(self) -> None:
        self.code: list[tuple[int, str | None, str | None, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def op(self, code: int, k: int, jt: str | None = None, jf: str | None = None) -> None:
        self.code.append((code, jt, jf, k))

    def assemble(self) -> bytes:
        out = bytearray()
        for pc, (code, jt, jf, k) in enumerate(self.code):
            out += struct.pack("=HBBI", code, self._offset(pc, jt), self._offset(pc, jf), k & 0xFFFFFFFF)
        return bytes(out)

    def _offset(self, pc: int, label: str | None) -> int:
        if label is None:
            return 0
        offset = self.labels[label] - pc - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"BPF jump to {label} out of range ({offset})")
        return offset


def build_seccomp_filter(machine: str | None = None) -> bytes:
    """The filter every child runs under, as raw ``struct sock_filter`` entries (what ``prctl`` and
    ``bwrap --seccomp`` take). A foreign architecture (32-bit compat) or an x32 call kills the
    process: their numbers differ and would slip past the table; everything listed returns EPERM."""
    arch = _ARCHES[(machine or os.uname().machine).lower()]
    nr = arch.numbers
    asm = _Assembler()
    asm.op(_LD_W_ABS, _OFF_ARCH)
    asm.op(_JEQ_K, arch.audit, None, "kill")
    asm.op(_LD_W_ABS, _OFF_NR)
    if arch.x32:
        asm.op(_JGE_K, _X32_SYSCALL_BIT, "kill")
    for name in _DENIED:
        if name in nr:
            asm.op(_JEQ_K, nr[name], "eperm")
    asm.op(_JEQ_K, nr["socket"], "socket")
    if "mknod" in nr:
        asm.op(_JEQ_K, nr["mknod"], "mknod")
    asm.op(_JEQ_K, nr["mknodat"], "mknodat")
    asm.op(_JEQ_K, nr["clone"], "clone")
    # clone3 passes its flags in memory seccomp cannot read: ENOSYS makes the C library use clone.
    asm.op(_JEQ_K, nr["clone3"], "enosys")
    asm.op(_RET_K, _SECCOMP_RET_ALLOW)
    # socket(domain, type, protocol): no packet sockets, no raw (or SOCK_PACKET) IP sockets
    asm.label("socket")
    asm.op(_LD_W_ABS, _arg_low(0))
    asm.op(_JEQ_K, _AF_PACKET, "eperm")
    asm.op(_JEQ_K, _AF_INET, "inet")
    asm.op(_JEQ_K, _AF_INET6, "inet")
    asm.op(_RET_K, _SECCOMP_RET_ALLOW)
    asm.label("inet")
    asm.op(_LD_W_ABS, _arg_low(1))
    asm.op(_AND_K, 0xF)  # SOCK_NONBLOCK / SOCK_CLOEXEC live above the type
    asm.op(_JEQ_K, _SOCK_RAW, "eperm")
    asm.op(_JEQ_K, _SOCK_PACKET, "eperm")
    asm.op(_RET_K, _SECCOMP_RET_ALLOW)
    # mknod(path, mode, dev) / mknodat(dirfd, path, mode, dev): regular files and fifos, never a device;
    # where a fifo may be made is Landlock's to say (MAKE_FIFO is granted inside the write roots only)
    for label, index in (("mknod", 1), ("mknodat", 2)):
        asm.label(label)
        asm.op(_LD_W_ABS, _arg_low(index))
        asm.op(_AND_K, _S_IFMT)
        asm.op(_JEQ_K, 0, "allow")
        asm.op(_JEQ_K, _S_IFREG, "allow")
        asm.op(_JEQ_K, _S_IFIFO, "allow", "eperm")
    # clone(flags, ...): threads and forks yes, new namespaces no
    asm.label("clone")
    asm.op(_LD_W_ABS, _arg_low(0))
    asm.op(_JSET_K, _CLONE_NAMESPACES, "eperm", "allow")
    asm.label("allow")
    asm.op(_RET_K, _SECCOMP_RET_ALLOW)
    asm.label("eperm")
    asm.op(_RET_K, _SECCOMP_RET_ERRNO | _EPERM)
    asm.label("enosys")
    asm.op(_RET_K, _SECCOMP_RET_ERRNO | _ENOSYS)
    asm.label("kill")
    asm.op(_RET_K, _SECCOMP_RET_KILL_PROCESS)
    return asm.assemble()


# --- Landlock ----------------------------------------------------------------------------------

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # same on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2  # ABI 6

_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
READ = FS_READ_FILE | FS_READ_DIR
EXECUTE = FS_READ_FILE | FS_EXECUTE
WRITE = (
    READ | FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG | FS_MAKE_SYM
    | FS_MAKE_FIFO | FS_MAKE_SOCK | FS_REFER | FS_TRUNCATE
)  # fmt: skip
DEVICE = FS_READ_FILE | FS_WRITE_FILE | FS_IOCTL_DEV


def _handled_fs(abi: int) -> int:
    handled = (1 << 13) - 1
    if abi >= 2:
        handled |= FS_REFER
    if abi >= 3:
        handled |= FS_TRUNCATE
    if abi >= 5:
        handled |= FS_IOCTL_DEV
    return handled


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The Landlock ABI this kernel offers; 0 when it has none (or it is switched off)."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    import ctypes

    libc.syscall.restype = ctypes.c_long
    abi = int(libc.syscall(ctypes.c_long(_SYS_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
    return max(abi, 0)


# --- what a child gets ------------------------------------------------------------------------


class Confinement:
    """What one child may touch, plus which self-applied layers it must put in force.

    ``rules`` pairs a path with Landlock rights (``READ``, ``WRITE``, ``EXECUTE``, ``DEVICE`` or a
    union); a path that does not exist in the child is skipped. ``seccomp`` is the BPF program to
    install (hex; empty when bubblewrap installs it). ``deny_tcp`` refuses every TCP bind and connect
    (a class without NETWORK); ``scope`` confines signals and abstract unix sockets to the sandbox.
    """

    def __init__(
        self,
        *,
        rules: Sequence[tuple[str, int]] = (),
        landlock: bool = False,
        seccomp: str = "",
        drop_caps: bool = False,
        deny_tcp: bool = False,
        scope: bool = True,
    ) -> None:
        self.rules = tuple(rules)
        self.landlock = landlock
        self.seccomp = seccomp
        self.drop_caps = drop_caps
        self.deny_tcp = deny_tcp
        self.scope = scope

    def to_json(self) -> str:
        return json.dumps(
            {
                "rules": [list(rule) for rule in self.rules],
                "landlock": self.landlock,
                "seccomp": self.seccomp,
                "drop_caps": self.drop_caps,
                "deny_tcp": self.deny_tcp,
                "scope": self.scope,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Confinement:
        data = json.loads(text)
        return cls(
            rules=[(str(path), int(rights)) for path, rights in data["rules"]],
            landlock=bool(data["landlock"]),
            seccomp=str(data["seccomp"]),
            drop_caps=bool(data["drop_caps"]),
            deny_tcp=bool(data["deny_tcp"]),
            scope=bool(data["scope"]),
        )


class ConfineError(OSError):
    """A layer the parent configured could not be applied; the child must not run."""


def apply(confinement: Confinement) -> None:
    """Put ``confinement`` in force on this process, for good: no_new_privs, capabilities,
    Landlock, then seccomp (last, so nothing it refuses is needed to set up the others)."""
    if not sys.platform.startswith("linux"):
        raise ConfineError("kernel confinement needs Linux")
    import ctypes

    libc = _libc()
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    libc.syscall.restype = ctypes.c_long
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise ConfineError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if confinement.drop_caps:
        _drop_capabilities(libc)
    if confinement.landlock:
        _landlock(libc, confinement)
    if confinement.seccomp:
        _seccomp(libc, bytes.fromhex(confinement.seccomp))


def _drop_capabilities(libc: Any) -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets. With no_new_privs,
    not even root's next execve gains them back."""
    import ctypes

    for cap in range(64):
        if libc.prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # PR_CAPBSET_DROP; EINVAL: no such cap
            break
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL

    class Header(ctypes.Structure):
        _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))

    class Data(ctypes.Structure):
        _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32))

    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise ConfineError(ctypes.get_errno(), "capset to the empty set failed")


def _landlock(libc: Any, confinement: Confinement) -> None:
    import ctypes

    syscall = libc.syscall
    abi = int(syscall(ctypes.c_long(_SYS_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
    if abi < 1:
        raise ConfineError(ctypes.get_errno(), "Landlock is not available")
    handled_fs = _handled_fs(abi)
    handled_net = NET_BIND_TCP | NET_CONNECT_TCP if confinement.deny_tcp and abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if confinement.scope and abi >= 6 else 0

    class RulesetAttr(ctypes.Structure):
        _fields_ = (
            ("handled_access_fs", ctypes.c_uint64),
            ("handled_access_net", ctypes.c_uint64),
            ("scoped", ctypes.c_uint64),
        )

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))

    attr = RulesetAttr(handled_fs, handled_net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = int(syscall(ctypes.c_long(_SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), 0))
    if ruleset < 0:
        raise ConfineError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path, rights in _merged(confinement.rules):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # absent in this child (a GPU device on a CPU machine, an optional /etc file)
            try:
                allowed = rights & handled_fs
                if not os.path.isdir(path):
                    allowed &= _FILE_RIGHTS
                rule = PathBeneath(allowed, fd)
                if syscall(ctypes.c_long(_SYS_ADD_RULE), ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
                    raise ConfineError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
            finally:
                os.close(fd)
        if syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ruleset, 0) != 0:
            raise ConfineError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


def _merged(rules: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    merged: dict[str, int] = {}
    for path, rights in rules:
        merged[path] = merged.get(path, 0) | rights
    return list(merged.items())


def _seccomp(libc: Any, program: bytes) -> None:
    import ctypes

    class Fprog(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = Fprog(len(program) // 8, ctypes.addressof(buffer))
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise ConfineError(ctypes.get_errno(), "installing the seccomp filter failed")


# --- the child's side --------------------------------------------------------------------------


def apply_from_environment() -> None:
    """In the child: take ``KAVI_CONFINE`` out of the environment and apply it; exit with
    :data:`CONFINE_EXIT_CODE` (running nothing) if any configured layer fails."""
    text = os.environ.pop(ENV_NAME, None)
    if text is None:
        return
    try:
        apply(Confinement.from_json(text))
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"{CONFINE_MARKER}{exc}\n")
        sys.stderr.flush()
        os._exit(CONFINE_EXIT_CODE)


def launcher_argv(argv: Sequence[str], program: str, *, python: str | None = None) -> list[str]:
    """The argv that confines itself, then executes ``program`` (``argv[0]`` resolved) with ``argv``."""
    return [python or sys.executable, "-I", "-B", "-c", LAUNCH, program, *argv]


def launch(args: Sequence[str]) -> None:
    """The launcher's body: confine, then replace this process with the target."""
    if len(args) < 2:
        sys.stderr.write(f"{CONFINE_MARKER}usage: launch PROGRAM ARGV0 [ARGS...]\n")
        os._exit(2)
    apply_from_environment()
    program, argv = args[0], list(args[1:])
    try:
        os.execv(program, argv)  # noqa: S606 - replacing this process with the target is the point
    except OSError as exc:
        sys.stderr.write(f"could not execute {program}: {exc}\n")
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)


# --- the parent's side: what a program needs to be executed -----------------------------------


def exec_closure(program: str) -> tuple[str, ...]:
    """``program``'s real path plus what the kernel opens to execute it: the ELF interpreter (the
    dynamic loader) or the ``#!`` interpreter, recursively. Landlock checks EXECUTE on each."""
    found: list[str] = []
    todo = [program]
    while todo and len(found) < 8:
        real = os.path.realpath(todo.pop())
        if real in found or not os.path.isfile(real):
            continue
        found.append(real)
        interpreter = _interpreter_of(real)
        if interpreter:
            todo.append(interpreter)
    return tuple(found)


def _interpreter_of(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
            if head.startswith(b"#!"):
                line = head[2:].split(b"\n", 1)[0].strip()
                return line.split()[0].decode() if line else None
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return None
            endian = "<" if head[5] == 1 else ">"
            phoff, = struct.unpack_from(endian + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
            for index in range(phnum):
                p_type, = struct.unpack_from(endian + "I", table, index * phentsize)
                if p_type == 3:  # PT_INTERP
                    offset, = struct.unpack_from(endian + "Q", table, index * phentsize + 8)
                    size, = struct.unpack_from(endian + "Q", table, index * phentsize + 32)
                    handle.seek(offset)
                    return handle.read(size).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError, IndexError):
        return None
    return None
