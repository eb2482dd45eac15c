"""The kernel layers hold where the hook is gone: attack code runs with NO audit hook (a plain
``python -c`` or ``sh -c``) through ``run_isolated``, at FULL and at FALLBACK, as root and as an
unprivileged user. Every test asserts no effect on the host, and that the declared thing still works
(so a refusal is the layer's doing, not a broken child)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kavi.sandbox.executor import ExecPolicy, ExecResult, IsolationLevel, run_isolated
from kavi.side_effects import SideEffect

IS_ROOT = os.geteuid() == 0


def _python(code: str, cwd: Path, **policy: object) -> ExecResult:
    return run_isolated([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, policy=ExecPolicy(**policy))  # type: ignore[arg-type]


def _outcomes(result: ExecResult) -> dict[str, str]:
    assert result.returncode == 0, result.stderr[-2000:]
    pairs = (line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return {name: value for name, value in pairs}


TRY = """
import ctypes, os, socket, errno
def attempt(name, action):
    try:
        value = action()
        print(f"{name}=ok {value!r}")
    except OSError as exc:
        print(f"{name}={errno.errorcode.get(exc.errno, exc.errno)}")
"""


def test_no_capabilities_and_no_mounts(level: IsolationLevel, sandbox: Path, tmp_path: Path) -> None:
    """CapEff is 0; mount, umount and a remount of / fail from Python and from the mount programs."""
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    code = TRY + f"""
status = open("/proc/self/status").read()
print("capeff=" + status.split("CapEff:")[1].split()[0])
libc = ctypes.CDLL(None, use_errno=True)
def call(result):
    if result != 0:
        raise OSError(ctypes.get_errno(), "failed")
attempt("umount", lambda: call(libc.umount2(b"/tmp", 2)))
attempt("remount", lambda: call(libc.mount(b"none", b"/", None, 32 | 4096, None)))  # MS_REMOUNT|MS_BIND
attempt("tmpfs", lambda: call(libc.mount(b"none", {str(tmp_path).encode()!r}, b"tmpfs", 0, None)))
attempt("unshare", lambda: call(libc.unshare(0x00020000 | 0x10000000)))
attempt("write", lambda: open({str(victim)!r}, "w").write("owned"))
"""
    result = _python(code, sandbox)
    seen = _outcomes(result)
    assert seen["capeff"] == "0000000000000000"
    for name in ("umount", "remount", "tmpfs", "unshare"):
        assert seen[name] == "EPERM", (name, seen)
    assert seen["write"] in ("EACCES", "EROFS", "ENOENT")
    shell = run_isolated(
        ["sh", "-c", f"umount -l /tmp; mount -o remount,rw,bind /; echo owned > {victim}; echo done"],
        cwd=sandbox,
        policy=ExecPolicy(executables=("sh", "umount", "mount")),
    )
    assert "done" in shell.stdout, shell.stderr  # the shell ran; what it tried did not
    assert victim.read_text() == "original"
    assert {"caps", "seccomp", "landlock"} <= set(result.layers)
    if level == IsolationLevel.FULL:
        assert {"userns", "pidns", "netns"} <= set(result.layers)


def test_root_secrets_and_files_outside_the_roots(level: IsolationLevel, sandbox: Path, tmp_path: Path) -> None:
    """/etc/shadow is unreadable (also as root, whose user namespace would not stop it); only the
    declared write root is writable."""
    root = tmp_path / "out"
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    code = TRY + f"""
attempt("shadow", lambda: open("/etc/shadow").read()[:0])
attempt("kavi_toml_like", lambda: open({str(tmp_path / "secret.toml")!r}).read())
attempt("victim", lambda: open({str(victim)!r}, "a").write("x"))
attempt("create", lambda: open({str(tmp_path / "new.txt")!r}, "w").write("x"))
attempt("rename", lambda: os.rename({str(victim)!r}, {str(root / "stolen")!r}))
attempt("root", lambda: open({str(root / "ok.txt")!r}, "w").write("fine"))
"""
    (tmp_path / "secret.toml").write_text("token = 'x'")
    seen = _outcomes(_python(code, sandbox, write_roots=(root,), side_effect=SideEffect.FILE_WRITE))
    assert seen["shadow"] in ("EACCES", "ENOENT")
    assert seen["kavi_toml_like"] in ("EACCES", "ENOENT")
    for name in ("victim", "create", "rename"):
        assert seen[name] in ("EACCES", "EROFS", "EXDEV", "ENOENT"), (name, seen)
    assert seen["root"] == "ok 4"
    assert victim.read_text() == "original"
    assert not (tmp_path / "new.txt").exists()
    assert (root / "ok.txt").read_text() == "fine"


LAUNCHERS = {
    "git": lambda marker: ["git", "-c", f"alias.x=!sh -c 'touch {marker}'", "x"],
    "find": lambda marker: ["find", ".", "-maxdepth", "0", "-exec", "sh", "-c", f"touch {marker}", ";"],
    "tar": lambda marker: ["tar", "-cf", "/dev/null", f"--use-compress-program=sh -c 'touch {marker}'", "."],
    "awk": lambda marker: ["awk", f'BEGIN {{ system("touch {marker}"); print "awk-ran" }}'],
}


@pytest.mark.parametrize("program", sorted(LAUNCHERS))
def test_a_declared_program_cannot_execute_an_undeclared_one(
    level: IsolationLevel, sandbox: Path, tmp_path: Path, program: str
) -> None:
    """Only the declared program may be executed: git aliases, find -exec, tar's compressor and awk's
    system() all need sh, which Landlock refuses -- though the marker's folder is writable."""
    if shutil.which(program) is None or shutil.which("sh") is None:
        pytest.skip(f"{program} is not installed")
    root = tmp_path / "out"
    root.mkdir()
    marker = root / "MARKER"
    subprocess.run(LAUNCHERS[program](marker), cwd=root, check=False, capture_output=True)
    if marker.exists():  # unconfined, the trick works: the test would prove nothing otherwise
        marker.unlink()
    else:
        pytest.skip(f"{program} does not run a shell here even unconfined")
    policy = ExecPolicy(side_effect=SideEffect.SUBPROCESS, write_roots=(root,), executables=(program,))
    result = run_isolated(LAUNCHERS[program](marker), cwd=sandbox, policy=policy)
    assert not marker.exists(), result.stderr
    assert "landlock" in result.layers
    version = run_isolated([program, "--version"], cwd=sandbox, policy=policy)
    assert version.returncode == 0 or program == "awk", version.stderr  # the declared program itself runs


def test_raw_and_packet_sockets_are_refused(level: IsolationLevel, sandbox: Path) -> None:
    code = TRY + """
attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW))
attempt("raw6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 255))
attempt("packet", lambda: socket.socket(17, socket.SOCK_RAW, 0))
attempt("packet_dgram", lambda: socket.socket(17, socket.SOCK_DGRAM, 0))
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close())
"""
    for side_effect in (SideEffect.READ_ONLY, SideEffect.NETWORK):
        seen = _outcomes(_python(code, sandbox, side_effect=side_effect))
        for name in ("raw", "raw6", "packet", "packet_dgram"):
            assert seen[name] == "EPERM", (side_effect, name, seen)
        assert seen["udp"] == "ok None"  # ordinary sockets still open


def test_device_nodes_and_fifos_cannot_be_made(level: IsolationLevel, sandbox: Path, tmp_path: Path) -> None:
    """Devices never (seccomp); a fifo only inside a write root (Landlock's MAKE_FIFO), like a regular file."""
    root = tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    code = TRY + f"""
attempt("fifo_outside", lambda: os.mkfifo({str(outside / "fifo")!r}))
attempt("fifo_in_root", lambda: os.mkfifo({str(root / "fifo")!r}))
attempt("char_in_root", lambda: os.mknod({str(root / "null")!r}, 0o600 | 0o020000, os.makedev(1, 3)))
attempt("block_outside", lambda: os.mknod({str(outside / "sda")!r}, 0o600 | 0o060000, os.makedev(8, 0)))
attempt("regular_in_root", lambda: os.mknod({str(root / "plain")!r}, 0o600 | 0o100000))
"""
    seen = _outcomes(_python(code, sandbox, write_roots=(root,), side_effect=SideEffect.FILE_WRITE))
    for name in ("char_in_root", "block_outside"):
        assert seen[name] == "EPERM", (name, seen)
    assert seen["fifo_outside"] in ("EACCES", "EPERM", "ENOENT"), seen  # FULL: no such folder in the sandbox
    assert seen["regular_in_root"] == seen["fifo_in_root"] == "ok None", seen
    assert sorted(path.name for path in outside.iterdir()) == []
    assert sorted(path.name for path in root.iterdir()) == ["fifo", "plain"]


def test_a_host_process_cannot_be_signalled(level: IsolationLevel, sandbox: Path) -> None:
    """kill() and pidfd_send_signal() towards a process the test started: the PID namespace hides it
    at FULL, Landlock's signal scope refuses it at both levels."""
    victim = subprocess.Popen(["sleep", "30"])
    try:
        code = TRY + f"""
import signal
attempt("kill", lambda: os.kill({victim.pid}, signal.SIGKILL))
attempt("pidfd", lambda: signal.pidfd_send_signal(os.pidfd_open({victim.pid}), signal.SIGKILL))
attempt("group", lambda: os.killpg(os.getpgid({victim.pid}), signal.SIGKILL))
"""
        seen = _outcomes(_python(code, sandbox))
        for name in ("kill", "pidfd", "group"):
            assert seen[name] in ("EPERM", "ESRCH"), (name, seen)
        assert victim.poll() is None, "the host's process was killed"
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.skipif(not IS_ROOT, reason="needs root: an unprivileged user never had the capabilities")
def test_root_is_no_longer_root_inside(level: IsolationLevel, sandbox: Path) -> None:
    """As root, the child has no capabilities; at FULL it is uid 65534 in its user namespace."""
    code = "import os; print(os.getuid(), open('/proc/self/status').read().split('CapBnd:')[1].split()[0])"
    result = _python(code, sandbox)
    uid, bounding = result.stdout.split()
    assert bounding == "0000000000000000"
    assert uid == ("65534" if level == IsolationLevel.FULL else "0")


def test_a_child_that_cannot_confine_itself_runs_nothing(
    level: IsolationLevel, sandbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: a Landlock rule the kernel refuses stops the child before the target runs, and
    the record does not claim the layer."""
    from kavi.sandbox import executor

    marker = tmp_path / "ran"
    (tmp_path / "odd").write_text("")
    broken = (*executor._runtime_rules(), (str(tmp_path / "odd"), 1 << 40))  # a right no kernel knows
    monkeypatch.setattr(executor, "_runtime_rules", lambda: broken)
    result = _python(f"open({str(marker)!r}, 'w')", sandbox, write_roots=(tmp_path,))
    assert result.returncode == 125 and "kavi-confine" in result.stderr
    assert not marker.exists()
    assert "landlock" not in result.layers and "seccomp" not in result.layers
