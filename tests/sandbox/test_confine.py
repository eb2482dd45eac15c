"""The confinement binding itself: the BPF program's shape, the Landlock ABI handling, what a
program needs to be executed, and that each layer really holds in a forked child."""

from __future__ import annotations

import os
import socket
import struct
import sys
from pathlib import Path

import pytest

from kavi.sandbox import confine

pytestmark = pytest.mark.skipif(confine.seccomp_arch() is None, reason="no seccomp filter for this machine")


def _decode(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack_from("=HBBI", program, offset) for offset in range(0, len(program), 8)]


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_filter_checks_the_architecture_first_and_kills_foreign_calls(machine: str) -> None:
    program = _decode(confine.build_seccomp_filter(machine))
    assert program[0] == (0x20, 0, 0, 4)  # load seccomp_data.arch
    code, jt, jf, arch = program[1]
    assert code == 0x15 and arch == {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[machine]
    target = program[1 + 1 + jf]
    assert target == (0x06, 0, 0, 0x80000000)  # a foreign architecture is killed
    if machine == "x86_64":
        assert program[3][0] == 0x35 and program[3][3] == 0x40000000  # x32 calls are killed too
    returns = {k for code, _, _, k in program if code == 0x06}
    assert returns == {0x7FFF0000, 0x00050001, 0x00050026, 0x80000000}  # allow, EPERM, ENOSYS, kill
    for pc, (code, jt, jf, _) in enumerate(program):  # every jump lands inside the program
        if code & 0x07 == 0x05:
            assert pc + 1 + max(jt, jf) < len(program)


def test_the_filter_refuses_every_listed_call_on_this_machine() -> None:
    program = _decode(confine.build_seccomp_filter())
    compared = {k for code, _, _, k in program if code == 0x15}
    arch = confine._ARCHES[os.uname().machine.lower()]
    for name in confine._DENIED:
        if name in arch.numbers:
            assert arch.numbers[name] in compared, name


def test_exec_closure_follows_the_loader_and_shebangs(tmp_path: Path) -> None:
    closure = confine.exec_closure(sys.executable)
    assert closure[0] == os.path.realpath(sys.executable)
    assert any("ld-" in Path(part).name for part in closure[1:]), closure  # the dynamic loader
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    closure = confine.exec_closure(str(script))
    assert closure[0] == str(script.resolve()) and os.path.realpath("/bin/sh") in closure


def test_confinement_travels_as_json() -> None:
    original = confine.Confinement(
        rules=[("/usr", confine.READ)], landlock=True, seccomp="00", drop_caps=True, deny_tcp=True, scope=False
    )
    copy = confine.Confinement.from_json(original.to_json())
    assert copy.to_json() == original.to_json()


def _in_child(confinement: confine.Confinement, probe: str, tmp: Path) -> str:
    """Fork, confine, run ``probe`` (Python source setting ``result``); returns its text."""
    out = tmp / "result.txt"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            confine.apply(confinement)
            scope: dict[str, object] = {"os": os, "socket": socket}
            exec(probe, scope)
            text = str(scope["result"])
        except BaseException as exc:
            text = f"error {exc!r}"
        fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, text.encode())
        os._exit(0)
    os.waitpid(pid, 0)
    return out.read_text()


@pytest.mark.skipif(confine.landlock_abi() < 1, reason="no Landlock on this kernel")
def test_landlock_bounds_reads_writes_and_tcp(tmp_path: Path) -> None:
    allowed, denied = tmp_path / "allowed", tmp_path / "denied"
    allowed.mkdir()
    denied.mkdir()
    (denied / "secret").write_text("s")
    rules = [(str(tmp_path / "result.txt"), confine.WRITE), (str(allowed), confine.WRITE)]
    probe = f"""
outcomes = []
for action in (
    lambda: open({str(allowed / "x")!r}, "w").write("x"),
    lambda: open({str(denied / "secret")!r}).read(),
    lambda: open({str(denied / "y")!r}, "w"),
    lambda: socket.create_connection(("127.0.0.1", 9), timeout=1),
):
    try:
        action()
        outcomes.append("ok")
    except OSError as exc:
        outcomes.append(type(exc).__name__)
result = " ".join(outcomes)
"""
    (tmp_path / "result.txt").write_text("")
    conf = confine.Confinement(rules=rules, landlock=True, deny_tcp=True)
    assert _in_child(conf, probe, tmp_path) == "ok PermissionError PermissionError PermissionError"
    assert not (denied / "y").exists()


def test_seccomp_returns_eperm_and_leaves_the_rest(tmp_path: Path) -> None:
    probe = """
outcomes = []
for action in (
    lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
    lambda: os.mknod("device-here", 0o600 | 0o020000, os.makedev(1, 3)),
    lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close(),
):
    try:
        action()
        outcomes.append("ok")
    except OSError as exc:
        outcomes.append(str(exc.errno))
result = " ".join(outcomes)
"""
    conf = confine.Confinement(seccomp=confine.build_seccomp_filter().hex())
    assert _in_child(conf, probe, tmp_path) == "1 1 ok"


def test_handled_rights_degrade_with_the_abi() -> None:
    assert confine._handled_fs(1) == (1 << 13) - 1
    assert confine._handled_fs(2) & confine.FS_REFER and not confine._handled_fs(2) & confine.FS_TRUNCATE
    assert confine._handled_fs(3) & confine.FS_TRUNCATE and not confine._handled_fs(4) & confine.FS_IOCTL_DEV
    assert confine._handled_fs(7) & confine.FS_IOCTL_DEV
