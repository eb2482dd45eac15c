"""Attacks on the audit hook from inside a guarded child, at FULL and at FALLBACK.

Each attack is one snippet that prints EFFECT only when its effect fully happened. At FALLBACK the hook is the
only guard, so every attack must be refused by the hook (a named block) and leave the host untouched: nothing
made outside the write root, the victim process alive, its canary environment variable unread, the loopback
listeners silent. At FULL the same must hold with bubblewrap around it.
"""

from __future__ import annotations

import dis
import subprocess
import sys
import textwrap
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kavi.runtime import hook
from kavi.sandbox.executor import IsolationLevel
from kavi.side_effects import SideEffect
from tests.isolation.conftest import RunSnippet

from .conftest import Scene

RW = SideEffect.FILE_WRITE
SUB = SideEffect.SUBPROCESS
NET = SideEffect.NETWORK
RO = SideEffect.READ_ONLY


@dataclass(frozen=True)
class Attack:
    side_effect: SideEffect
    body: str
    declared: Mapping[str, Any] = field(default_factory=dict)


def _attacks() -> dict[str, Attack]:
    write = {"write_roots": "root"}
    true = {"executables": ("true",)}
    sub_import = """
        import {module} as m
        interp = m.create()
        m.run_string(interp, "import os; os.system('touch {outside}/sub')")
    """
    table = {
        # issue 9 §3: a subinterpreter starts without any audit hook
        **{
            f"subinterpreter_{name}": Attack(RW, sub_import.replace("{module}", name), write)
            for name in ("_xxsubinterpreters", "_interpreters", "_xxinterpchannels")
        },
        "subinterpreter_import_module": Attack(
            RO, "import importlib\nimportlib.import_module('_xxsubinterpreters').create()"
        ),
        "subinterpreter_dunder_import": Attack(SUB, "__import__('interpreters').create()", true),
        "subinterpreter_testcapi": Attack(
            RW,
            "import _testcapi\n_testcapi.run_in_subinterp(\"open('{outside}/capi', 'w').write('x')\")",
            write,
        ),
        # issue 9 §3: /proc/*/environ and /proc/*/mem, however the path is spelled
        "proc_environ": Attack(RO, "print(open('/proc/{victim}/environ', 'rb').read())"),
        "proc_environ_dir_fd": Attack(
            RO,
            "import os\nfd = os.open('/proc/{victim}', os.O_RDONLY)\n"
            "print(os.read(os.open('environ', os.O_RDONLY, dir_fd=fd), 65536))",
        ),
        "proc_environ_relative": Attack(RO, "import os\nos.chdir('/proc/{victim}')\nprint(open('environ').read())"),
        "proc_environ_task": Attack(RO, "print(open('/proc/{victim}/task/{victim}/environ').read())"),
        "proc_thread_self_environ": Attack(RO, "print(open('/proc/thread-self/environ').read())"),
        "proc_self_mem": Attack(RW, "f = open('/proc/self/mem', 'rb')", write),
        # issue 9 §5: raw and packet sockets forge their own headers
        "raw_socket_forged_udp": Attack(
            NET,
            """
            import socket, struct
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            payload = b"FORGED"
            udp = struct.pack("!HHHH", 40000, {udp}, 8 + len(payload), 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                             socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))
            s.sendto(ip + udp, ("127.0.0.9", 0))
            """,
            {"allow_hosts": ("127.0.0.9",)},
        ),
        "packet_socket": Attack(
            NET, "import socket\nsocket.socket(17, socket.SOCK_RAW, 0)", {"allow_hosts": ("x.io",)}
        ),
        "raw_socket_flags": Attack(
            RO, "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 1)"
        ),
        # issue 9 §6: writes relative to a descriptor
        "dir_fd_open": Attack(
            RW,
            "import os\nfd = os.open('{outside}', os.O_RDONLY)\n"
            "os.close(os.open('m', os.O_WRONLY | os.O_CREAT, dir_fd=fd))",
            write,
        ),
        "dir_fd_opener": Attack(
            RW,
            "import os\nfd = os.open('{outside}', os.O_RDONLY)\n"
            "open('m', 'w', opener=lambda p, f: os.open(p, f, dir_fd=fd)).write('x')",
            write,
        ),
        "dir_fd_rename": Attack(
            RW,
            "import os\nopen('{root}/a', 'w').write('x')\nfd = os.open('{outside}', os.O_RDONLY)\n"
            "os.rename('{root}/a', 'm', dst_dir_fd=fd)",
            write,
        ),
        "dir_fd_unresolvable": Attack(
            RW,
            "import os\nos.mkdir('{root}/gone')\nfd = os.open('{root}/gone', os.O_RDONLY)\nos.rmdir('{root}/gone')\n"
            "os.open('m', os.O_WRONLY | os.O_CREAT, dir_fd=fd)",
            write,
        ),
        # issue 10 §4: effects with no audit event of their own
        "mkfifo": Attack(RW, "import os\nos.mkfifo('{outside}/fifo')", write),
        "mknod": Attack(RW, "import os\nos.mknod('{outside}/node')", write),
        "posix_spawn_open_action": Attack(
            SUB,
            "import os, shutil\nos.posix_spawn(shutil.which('true'), ['true'], {{}}, file_actions=["
            "(os.POSIX_SPAWN_OPEN, 1, '{outside}/spawned', os.O_WRONLY | os.O_CREAT, 0o644)])",
            true,
        ),
        "pidfd_signal": Attack(
            RO, "import os, signal\nsignal.pidfd_send_signal(os.pidfd_open({victim}), signal.SIGTERM)"
        ),
        "pidfd_signal_subprocess": Attack(
            SUB, "import os, signal\nsignal.pidfd_send_signal(os.pidfd_open({victim}), signal.SIGTERM)", true
        ),
        "kill_not_a_child": Attack(SUB, "import os, signal\nos.kill({victim}, signal.SIGTERM)", true),
        # issue 10 §5: a program is not its name
        "exec_proc_self_fd": Attack(
            SUB,
            "import os, subprocess\nfd = os.open('/bin/sh', os.O_RDONLY)\n"
            "subprocess.run([f'/proc/self/fd/{{fd}}', '-c', 'touch {outside}/fd'], pass_fds=(fd,))",
            true,
        ),
        "exec_dev_fd": Attack(
            SUB,
            "import os, subprocess\nfd = os.open('/bin/sh', os.O_RDONLY)\n"
            "subprocess.run([f'/dev/fd/{{fd}}', '-c', 'touch {outside}/fd'], pass_fds=(fd,))",
            true,
        ),
        "exec_planted_on_path": Attack(
            SUB,
            "import os, subprocess\nopen('{root}/true', 'w').write('#!/bin/sh\\ntouch {outside}/planted\\n')\n"
            "os.chmod('{root}/true', 0o755)\nos.environ['PATH'] = '{root}:' + os.environ['PATH']\n"
            "subprocess.run(['true'])",
            {"executables": ("true",)},
        ),
        "fexecve": Attack(
            SUB,
            "import os\nfd = os.open('/bin/sh', os.O_RDONLY)\nos.execve(fd, ['sh', '-c', 'touch {outside}/x'], {{}})",
            true,
        ),
        "fork_exec_lying_list": Attack(
            SUB,
            """
            import _posixsubprocess, os, shutil
            class Programs(list):
                def __iter__(self):
                    return iter([shutil.which('true').encode()])
            read, write = os.pipe()
            _posixsubprocess.fork_exec(
                [b'sh', b'-c', b'touch {outside}/fe'], Programs([b'/bin/sh']), True, (write,), None, None,
                -1, -1, -1, -1, -1, -1, read, write, True, False, -1, None, None, None, -1, None, False,
            )
            """,
            true,
        ),
        "set_git_ssh_command": Attack(SUB, "import os\nos.environ['GIT_SSH_COMMAND'] = 'touch {outside}/git'", true),
        "putenv_ld_preload": Attack(RO, "import os\nos.putenv('LD_PRELOAD', '{outside}/x.so')"),
        "preexec_fn": Attack(
            SUB,
            "import subprocess\nsubprocess.run(['true'], preexec_fn=lambda: open('{outside}/pre', 'w').write('x'))",
            true,
        ),
        # issue 10 §1: the hook's state cannot be rewritten from inside
        "rewrite_hook_globals": Attack(
            RW,
            """
            import sys
            h = sys.modules['kavi.runtime.hook']
            for name, value in list(vars(h).items()):
                if callable(value) and not isinstance(value, type):
                    setattr(h, name, lambda *a, **k: True)
            h._ALWAYS_WRITABLE = frozenset(['{outside}/m'])
            h._WRITE_FLAGS = 0
            h.is_under = lambda *a: True
            open('{outside}/m', 'w').write('x')
            """,
            write,
        ),
        "rewrite_os_path_and_builtins": Attack(
            RW,
            """
            import os, posixpath, json, builtins
            os.path.realpath = posixpath.realpath = lambda p, **k: '{root}/ok'
            os.getcwd = lambda: '{root}'
            os.readlink = lambda *a, **k: '{root}'
            json.dumps = lambda *a, **k: '{{}}'
            builtins.isinstance = lambda *a: True
            builtins.len = lambda *a: 0
            os.chdir('{outside}')
            open('m', 'w').write('x')
            """,
            write,
        ),
        "enum_global_enum": Attack(
            RW,
            """
            import enum
            class Roots(enum.Enum):
                _ALWAYS_WRITABLE = frozenset(['{outside}/m'])
                is_under = 2
            Roots.__module__ = 'kavi.runtime.hook'
            enum.global_enum(Roots)
            open('{outside}/m', 'w').write('x')
            """,
            write,
        ),
        "replace_hook_module": Attack(
            RW,
            "import sys, types\nsys.modules['kavi.runtime.hook'] = types.ModuleType('kavi.runtime.hook')\n"
            "open('{outside}/m', 'w').write('x')",
            write,
        ),
        "read_hook_frames": Attack(
            RW,
            """
            try:
                open('{outside}/first', 'w')
            except Exception as exc:
                tb = exc.__traceback__
            while tb is not None:
                frame = tb.tb_frame
                for value in list(frame.f_locals.values()):
                    owner = getattr(value, '__self__', None)
                    if isinstance(owner, dict):
                        owner.clear()
                    if isinstance(value, list) and value and isinstance(value[0], int):
                        value[0] = -10**9
                tb = tb.tb_next
            open('{outside}/m', 'w').write('x')
            """,
            write,
        ),
        "current_frames": Attack(RW, "import sys\nsys._current_frames()\nopen('{outside}/m', 'w')", write),
        # issue 10 §2: arguments that lie about themselves
        "lying_str_path": Attack(
            RW,
            """
            class Liar(str):
                def __str__(self): return '{root}/ok'
                def __fspath__(self): return '{root}/ok'
                def startswith(self, *a): return True
                def __contains__(self, item): return False
                def __eq__(self, other): return True
                def __hash__(self): return hash('{root}/ok')
                def __radd__(self, other): return '{root}/ok'
                def __add__(self, other): return '{root}/ok'
                def split(self, *a): return ['', '{root}'[1:], 'ok']
            open(Liar('{outside}/m'), 'w').write('x')
            """,
            write,
        ),
        "lying_fspath": Attack(
            RW,
            """
            import os
            class Flip(os.PathLike):
                calls = 0
                def __fspath__(self):
                    Flip.calls += 1
                    return '{outside}/m' if Flip.calls == 1 else '{root}/ok'
            open(Flip(), 'w').write('x')
            """,
            write,
        ),
        "lying_pathlib_subclass": Attack(
            RW,
            """
            import pathlib
            pathlib.PurePath.__fspath__ = lambda self: '{outside}/m'
            pathlib.Path('{root}/ok').write_text('x')
            """,
            write,
        ),
        "lying_bytes_path": Attack(
            RW,
            """
            class Liar(bytes):
                def decode(self, *a, **k): return '{root}/ok'
                def startswith(self, *a): return True
            open(Liar(b'{outside}/m'), 'w').write('x')
            """,
            write,
        ),
        "lying_host": Attack(
            NET,
            """
            import socket
            class Host(str):
                def lower(self): return '127.0.0.9'
                def __eq__(self, other): return True
                def __hash__(self): return hash('127.0.0.9')
                def __str__(self): return '127.0.0.9'
            s = socket.socket()
            s.settimeout(2)
            s.connect((Host('127.0.0.1'), {tcp}))
            """,
            {"allow_hosts": ("127.0.0.9",)},
        ),
        "lying_address_tuple": Attack(
            NET,
            """
            import socket
            class Address(tuple):
                def __getitem__(self, index): return ('127.0.0.9', {tcp})[index]
                def __len__(self): return 2
            s = socket.socket()
            s.settimeout(2)
            s.connect(Address(('127.0.0.1', {tcp})))
            """,
            {"allow_hosts": ("127.0.0.9",)},
        ),
        "lying_port": Attack(
            NET,
            """
            import socket
            class Port(int):
                def __index__(self): return 1
                def __int__(self): return 1
                def __eq__(self, other): return True
                def __hash__(self): return 1
            s = socket.socket()
            s.settimeout(2)
            s.connect(('127.0.0.1', Port({tcp})))
            """,
            {"allow_hosts": ("127.0.0.1:1",)},
        ),
    }
    return table


ATTACKS = _attacks()


def _wrap(body: str) -> str:
    indented = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    caught = "except BaseException as exc:\n    print('DENIED', type(exc).__name__)\n"
    return f"try:\n{indented}\n    print('EFFECT')\n{caught}"


def _declared(attack: Attack, scene: Scene) -> dict[str, Any]:
    declared = dict(attack.declared)
    if declared.get("write_roots") == "root":
        declared["write_roots"] = (scene.root,)
    return declared


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_from_inside_has_no_effect(name: str, level: object, scene: Scene, run_snippet: RunSnippet) -> None:
    attack = ATTACKS[name]
    result = run_snippet(_wrap(scene.format(attack.body)), attack.side_effect, **_declared(attack, scene))
    assert "EFFECT" not in result.stdout, (result.stdout, result.stderr[-3000:])
    if level == IsolationLevel.PROCESS or not result.stdout.startswith("DENIED"):
        # the hook is the only guard at PROCESS: it must name the refusal (at FULL and FALLBACK the kernel
        # may refuse first: Landlock, seccomp, or a folder or PID that does not exist in the sandbox)
        assert result.blocked, (result.stdout, result.stderr[-3000:])
        assert not result.ok
    scene.assert_untouched(result.stdout)


@pytest.mark.parametrize("side_effect", [RO, RW, NET, SUB, SideEffect.SECRET_READ, SideEffect.GPU_KERNEL], ids=str)
def test_subinterpreters_are_refused_in_every_class(
    side_effect: SideEffect, scene: Scene, run_snippet: RunSnippet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVI_ISOLATION", "fallback")
    body = "import _xxsubinterpreters as m\nm.run_string(m.create(), \"open('{outside}/sub', 'w').write('x')\")"
    result = run_snippet(_wrap(scene.format(body)), side_effect)
    assert "EFFECT" not in result.stdout and result.blocked, result.stderr[-3000:]
    assert result.blocked[0]["effect"] == "subinterpreter"
    scene.assert_untouched(result.stdout)


def test_a_subprocess_child_gets_a_clean_environment(level: object, scene: Scene, run_snippet: RunSnippet) -> None:
    """Whatever the skill passes or inherits, the program sees the frozen base plus harmless variables."""
    body = """
        import os, subprocess
        passed = {'LD_PRELOAD': '/x.so', 'GIT_SSH_COMMAND': 'sh', 'GIT_CONFIG_COUNT': '1', 'BASH_ENV': '/x',
                  'PYTHONSTARTUP': '/x', 'PAGER': 'sh', 'KAVI_FINE': 'yes'}
        inherited = subprocess.run(['env'], capture_output=True, text=True).stdout
        given = subprocess.run(['env'], env={**os.environ, **passed}, capture_output=True, text=True).stdout
        read, write = os.pipe()
        env = {**os.environ, **passed, 'KAVI_SPAWNED': 'yes'}
        actions = [(os.POSIX_SPAWN_DUP2, write, 1)]
        pid = os.posix_spawnp('env', ['env'], env, file_actions=actions)
        os.close(write)
        os.waitpid(pid, 0)
        spawned = os.read(read, 65536).decode()
        print('SPAWNED', sorted(line.split('=')[0] for line in spawned.splitlines()))
        print('INHERITED', sorted(line.split('=')[0] for line in inherited.splitlines()))
        print('GIVEN', sorted(line.split('=')[0] for line in given.splitlines()))
    """
    result = run_snippet(textwrap.dedent(body), SUB, executables=("env",))
    assert result.ok, result.stderr[-3000:]
    inherited, given = (line for line in result.stdout.splitlines() if line.startswith(("INHERITED", "GIVEN")))
    spawned = next(line for line in result.stdout.splitlines() if line.startswith("SPAWNED"))
    assert "'KAVI_SPAWNED'" in spawned and "'LD_PRELOAD'" not in spawned and "'GIT_SSH_COMMAND'" not in spawned
    for name in ("PATH", "HOME", "TMPDIR", "LANG"):
        assert f"'{name}'" in inherited
    for name in (
        "LD_PRELOAD",
        "GIT_SSH_COMMAND",
        "GIT_CONFIG_COUNT",
        "BASH_ENV",
        "PYTHONSTARTUP",
        "PAGER",
        "PYTHONHASHSEED",
    ):
        assert f"'{name}'" not in inherited and f"'{name}'" not in given
    assert "'PYDANTIC_DISABLE_PLUGINS'" not in inherited  # only the frozen base is inherited
    assert "'KAVI_FINE'" in given
    scene.assert_untouched(result.stdout)


def test_honest_effects_still_pass(level: object, scene: Scene, run_snippet: RunSnippet) -> None:
    """Normalisation must not refuse the ordinary spellings: Path objects, bytes, os.open with dir_fd."""
    body = """
        import os, pathlib
        pathlib.Path('{root}/a.txt').write_text('x')
        open(b'{root}/b.txt', 'wb').write(b'x')
        fd = os.open('{root}', os.O_RDONLY)
        os.close(os.open('c.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd))
        os.mkfifo('{root}/fifo')
        print(sorted(os.listdir('{root}')), pathlib.Path('{root}/a.txt').read_text())
    """
    result = run_snippet(scene.format(textwrap.dedent(body)), RW, write_roots=(scene.root,))
    assert result.ok, result.stderr[-3000:]
    assert "['a.txt', 'b.txt', 'c.txt', 'fifo'] x" in result.stdout
    scene.assert_untouched(result.stdout)


def test_a_swallowed_block_does_not_run_a_replaced_stream_at_exit(
    scene: Scene, run_snippet: RunSnippet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook's exit handler flushes only the streams kavi opened: it never calls the skill's objects."""
    monkeypatch.setenv("KAVI_ISOLATION", "fallback")
    body = """
        import sys
        class Stream:
            def write(self, text): return len(text)
            def flush(self): open('{outside}/flushed', 'w').write('x')
        try:
            open('{outside}/m', 'w')
        except Exception:
            pass
        sys.stdout = sys.stderr = Stream()
    """
    result = run_snippet(scene.format(textwrap.dedent(body)), RW, write_roots=(scene.root,))
    assert result.returncode == hook.BLOCKED_EXIT_CODE
    assert not (scene.outside / "flushed").exists()


def _late_lookups() -> list[str]:
    """Names the hook's call-time code looks up in module globals or builtins (the candidate can rebind them)."""
    found = []

    def walk(code: types.CodeType, where: str, top: bool) -> None:
        if not top or code.co_name not in ("<genexpr>", "<listcomp>", "replace"):
            found.extend(
                f"{where}: {ins.argval}"
                for ins in dis.get_instructions(code)
                if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")
            )
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                walk(const, f"{where}.{const.co_name}", top=False)

    for function in (hook._build, hook._route_native_calls, hook._program_variable_test):
        for const in function.__code__.co_consts:
            if isinstance(const, types.CodeType):
                walk(const, f"{function.__name__}.{const.co_name}", top=True)
    return found


def test_the_hook_looks_nothing_up_at_call_time() -> None:
    """Every function that runs when an event is judged reaches its helpers through its own closure."""
    assert _late_lookups() == []


def test_a_refusal_carries_no_frame_of_the_hook(tmp_path: Path) -> None:
    """The refused operation's traceback holds only the candidate's frames: none of the hook's locals or
    closures can be reached from it, and pytest or traceback can still print it."""
    code = textwrap.dedent(
        """
        import traceback
        from kavi.runtime.hook import install
        install({"side_effect": "READ_ONLY"})
        try:
            open("refused.txt", "w")
        except Exception as exc:
            print("TYPE", type(exc).__name__, str(exc)[:80])
            for frame, _line in traceback.walk_tb(exc.__traceback__):
                print("FRAME", frame.f_code.co_filename)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert "TYPE TypeError" in done.stdout and "EffectBlocked" in done.stdout, done.stderr
    frames = [line for line in done.stdout.splitlines() if line.startswith("FRAME")]
    assert frames == ["FRAME <string>"]
    assert done.returncode == hook.BLOCKED_EXIT_CODE
    assert not (tmp_path / "refused.txt").exists()
