"""The warm zygote: a child forked per call applies every layer the cold path applies, records the same
layers, and contains what a skill does to that call. Each attack runs through run-skill's own child path
(:func:`kavi.stages.run._run_in_child` with the zygote as its launcher), once with the audit hook as a skill
gets it and, where the kernel must hold alone, with no hook at all. Every test asserts that the call really
ran warm and that nothing changed outside the sandbox. Runs as root and, in CI, as uid 65534."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kavi.runtime.child import child_argv, read_report
from kavi.sandbox.executor import ExecResult, policies_for_spec, run_isolated
from kavi.sandbox.warm import Zygote
from kavi.side_effects import DeclaredEffects, SideEffect
from kavi.spec import make_spec
from kavi.stages.run import TrustedBytes, _run_in_child, request_for
from kavi.workspace import Workspace

SERVER_CANARY = "kavi-server-canary-5b1e"

SKILL = '''"""A probe skill: runs BODY and returns what it found as text."""

from __future__ import annotations

from kavi.skill import SideEffect, Skill
from pydantic import BaseModel


class ProbeInput(BaseModel):
    text: str


class ProbeOutput(BaseModel):
    text: str


class Probe(Skill[ProbeInput, ProbeOutput]):
    name = "probe"
    side_effect = SideEffect.{side_effect}
    input_model = ProbeInput
    output_model = ProbeOutput

    def execute(self, data: ProbeInput) -> ProbeOutput:
        import ctypes, errno, json, os, signal, socket, sys, time
        found = {{}}

        def attempt(name, action):
            try:
                found[name] = "ok " + repr(action())[:200]
            except BaseException as exc:
                found[name] = type(exc).__name__ + " " + str(getattr(exc, "errno", "") or "")
{body}
        return ProbeOutput(text=json.dumps(found, sort_keys=True))
'''


def _skill(body: str, side_effect: str = "READ_ONLY") -> str:
    indented = "\n".join("        " + line if line else "" for line in body.strip("\n").splitlines())
    return SKILL.format(body=indented, side_effect=side_effect)


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """One zygote for the module, started while this process holds a canary it must never pass on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KAVI_SERVER_CANARY", SERVER_CANARY)
        patch.delenv("KAVI_ISOLATION", raising=False)
        started = Zygote().start()
    yield started
    started.close()


@pytest.fixture
def warm(zygote: Zygote, monkeypatch: pytest.MonkeyPatch) -> Zygote:
    monkeypatch.delenv("KAVI_ISOLATION", raising=False)
    if zygote.unavailable is not None:
        # honest fallback: say so, and prove the calls then run cold (test_an_unavailable_zygote_runs_cold)
        pytest.skip(f"the warm path is unavailable here: {zygote.unavailable}")
    return zygote


def _trusted(workspace: Workspace, source: str, side_effect: str) -> TrustedBytes:
    declared = {"FILE_WRITE": {"write_roots": ("out",)}, "SUBPROCESS": {"executables": ("echo",)}}
    extra: dict[str, Any] = declared.get(side_effect, {})
    spec = make_spec(
        name="probe",
        description="Probe the sandbox",
        side_effect=side_effect,
        io_schema={"input": {"text": "str"}, "output": {"text": "str"}},
        **extra,
    )
    data = source.encode()
    promotion = {
        "id": "pr_test",
        "proposal_id": "p_test",
        "name": "probe",
        "version": 1,
        "skill_sha256": hashlib.sha256(data).hexdigest(),
        "side_effect": side_effect,
    }
    return TrustedBytes(promotion, spec.canonical_json(), data, str(workspace.skills_dir / "probe.py"))


def _call(
    zygote: Zygote, workspace: Workspace, body: str, text: str = "", side_effect: str = "READ_ONLY"
) -> dict[str, Any]:
    """run-skill's child path, launched by the zygote: the response. Asserts no call went cold meanwhile."""
    cold_before = sum(zygote.routes.values()) - zygote.routes["warm"]
    response, isolation = _run_in_child(
        workspace, _trusted(workspace, _skill(body, side_effect), side_effect), {"text": text}, None, zygote.run
    )
    assert sum(zygote.routes.values()) - zygote.routes["warm"] == cold_before, zygote.describe()
    assert isolation == "full"
    return response


def _run(
    zygote: Zygote, workspace: Workspace, body: str, text: str = "", side_effect: str = "READ_ONLY"
) -> dict[str, str]:
    """The findings a skill returned from a warm call that succeeded."""
    response = _call(zygote, workspace, body, text, side_effect)
    assert response.get("ok"), response
    findings: dict[str, str] = json.loads(response["output"]["text"])
    return findings


def _run_unhooked(
    zygote: Zygote, workspace: Workspace, body: str, text: str = "", timeout_s: float = 20.0
) -> tuple[ExecResult, dict[str, str]]:
    """The same child with NO audit hook: only the kernel layers stand between the skill and the host."""
    trusted = _trusted(workspace, _skill(body), "READ_ONLY")
    policy, _ = policies_for_spec(
        DeclaredEffects(SideEffect.READ_ONLY), workspace.root, timeout_s=timeout_s, read_workspace=False
    )
    request = json.dumps({**request_for(trusted, {"text": text}), "policy": None}).encode()
    before = zygote.routes["warm"]
    result = zygote.run(child_argv(), cwd=workspace.root, policy=policy, stdin=request)
    assert zygote.routes["warm"] == before + 1, zygote.describe()
    report = read_report(result.stdout) or {}
    findings = json.loads(report["output"]["text"]) if report.get("ok") else {}
    return result, findings


def test_a_warm_call_sees_what_a_cold_call_sees(warm: Zygote, workspace: Workspace) -> None:
    body = """
found["uid"] = str((os.getuid(), os.getgid()))
attempt("status", lambda: open("/proc/self/status").read())
attempt("proc", lambda: os.listdir("/proc"))
attempt("home", lambda: os.listdir(os.path.expanduser("~")))
attempt("tmp", lambda: os.listdir(os.environ["TMPDIR"]))
attempt("workspace", lambda: os.listdir("."))
found["text"] = data.text
"""
    trusted = _trusted(workspace, _skill(body), "READ_ONLY")
    before = warm.routes["warm"]
    hot = _run_in_child(workspace, trusted, {"text": "same"}, None, warm.run)
    cold = _run_in_child(workspace, trusted, {"text": "same"}, None, run_isolated)
    assert warm.routes["warm"] == before + 1
    assert hot[0]["ok"] and cold[0]["ok"], (hot, cold)
    warm_found, cold_found = json.loads(hot[0]["output"]["text"]), json.loads(cold[0]["output"]["text"])
    assert warm_found == cold_found
    assert warm_found["uid"] == "(65534, 65534)"
    assert hot[1] == cold[1] == "full"


def test_the_kernel_layers_are_in_force_without_the_hook(warm: Zygote, workspace: Workspace) -> None:
    body = """
libc = ctypes.CDLL(None, use_errno=True)
found["cap_sys_admin_bounding"] = str(libc.prctl(23, 21, 0, 0, 0))  # PR_CAPBSET_READ
found["no_new_privs"] = str(libc.prctl(39, 0, 0, 0, 0))
found["seccomp"] = str(libc.prctl(21, 0, 0, 0, 0))
found["pid"] = str(os.getpid())
attempt("unshare", lambda: libc.unshare(0x10000000) == 0 or ctypes.get_errno())
attempt("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0 or ctypes.get_errno())
"""
    result, found = _run_unhooked(warm, workspace, body)
    assert found, result.stderr[-2000:]
    assert found["cap_sys_admin_bounding"] == "0"
    assert found["no_new_privs"] == "1"
    assert found["seccomp"] == "2"
    assert found["pid"] == "2", "the worker is the second process of a fresh PID namespace"
    assert found["unshare"] == "ok 1" and found["mount"] == "ok 1"  # EPERM from both


def test_the_recorded_layers_are_the_cold_path_s(warm: Zygote, workspace: Workspace) -> None:
    trusted = _trusted(workspace, _skill("found['x'] = 'y'"), "READ_ONLY")
    policy, effects = policies_for_spec(
        DeclaredEffects(SideEffect.READ_ONLY), workspace.root, timeout_s=20.0, read_workspace=False
    )
    request = json.dumps({**request_for(trusted, {"text": ""}), "policy": effects.as_dict()}).encode()
    hot = warm.run(child_argv(), cwd=workspace.root, policy=policy, stdin=request)
    cold = run_isolated(child_argv(), cwd=workspace.root, policy=policy, stdin=request)
    assert hot.layers == cold.layers
    assert set(hot.layers) >= {"userns", "caps", "pidns", "netns", "rlimits", "hook"}
    assert hot.isolation == cold.isolation
    assert read_report(hot.stdout) == read_report(cold.stdout)


ATTACKS = """
attempt("write_outside", lambda: open({marker!r}, "w").write("owned"))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
attempt("ledger", lambda: open({ledger!r}, "rb").read(64))
attempt("config", lambda: open({config!r}).read())
attempt("server_environ", lambda: open("/proc/{server}/environ", "rb").read())
attempt("kill_zygote", lambda: os.kill({zygote}, signal.SIGKILL))
attempt("kill_server", lambda: os.kill({server}, signal.SIGTERM))
attempt("environ", lambda: "KAVI_SERVER_CANARY" in os.environ and os.environ["KAVI_SERVER_CANARY"])
"""
PTRACE = """
libc = ctypes.CDLL(None, use_errno=True)
def ptrace(pid):
    if libc.ptrace(16, pid, 0, 0) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace")
attempt("ptrace_zygote", lambda: ptrace({zygote}))
attempt("ptrace_server", lambda: ptrace({server}))
"""


@contextlib.contextmanager
def _listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.setblocking(False)
        yield listener


def _assert_untouched(zygote: Zygote, workspace: Workspace, marker: Path, listener: socket.socket, found: Any) -> None:
    assert not marker.exists(), "a file was written outside the sandbox"
    with pytest.raises(BlockingIOError):
        listener.accept()
    process = zygote._process
    assert process is not None and process.poll() is None, "the zygote was killed"
    text = json.dumps(found)
    assert SERVER_CANARY not in text, "the server's environment leaked"
    assert "SQLite format" not in text, "the ledger was read"
    assert "[ledger]" not in text and "kavi-config" not in text, "kavi.toml was read"


@pytest.mark.parametrize("hooked", [True, False], ids=["hook", "kernel-only"])
def test_attacks_have_no_effect_outside(
    warm: Zygote, workspace: Workspace, tmp_path: Path, hooked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVI_SERVER_CANARY", SERVER_CANARY)
    config = workspace.root / "kavi.toml"
    config.write_text(config.read_text() + "\n# kavi-config canary\n")
    marker = tmp_path / "outside" / "marker.txt"
    marker.parent.mkdir()
    process = warm._process
    assert process is not None
    with _listener() as listener:
        values = {
            "marker": str(marker),
            "port": listener.getsockname()[1],
            "ledger": str(workspace.state_dir / "ledger.db"),
            "config": str(config),
            "server": os.getpid(),
            "zygote": process.pid,
        }
        body = ATTACKS.format(**values)
        if hooked:  # the hook names the first refused effect and the call fails with it
            found = _call(warm, workspace, body)
            assert found["phase"] == "side_effect", found
            _assert_untouched(warm, workspace, marker, listener, found)
            return
        result, found = _run_unhooked(warm, workspace, body + PTRACE.format(**values))
        assert found, result.stderr[-2000:]
        assert found["ptrace_zygote"].startswith("PermissionError")
        assert found["ptrace_server"].startswith("PermissionError")
        for name in ("write_outside", "connect", "ledger", "config", "server_environ", "kill_zygote", "kill_server"):
            assert not found[name].startswith("ok"), (name, found[name])
        assert found["environ"] == "ok False"
        _assert_untouched(warm, workspace, marker, listener, found)


def test_nothing_is_left_behind_after_the_call(warm: Zygote, workspace: Workspace) -> None:
    """A skill (with no hook to refuse the fork) leaves sleeping children in a session of their own: the
    PID namespace dies with the call."""
    body = """
libc = ctypes.CDLL(None, use_errno=True)
for _ in range(3):
    if os.fork() == 0:
        os.setsid()
        libc.prctl(15, b"kavileftover", 0, 0, 0)
        time.sleep(120)
        os._exit(0)
found["forked"] = "yes"
"""
    result, found = _run_unhooked(warm, workspace, body)
    assert found == {"forked": "yes"}, result.stderr[-2000:]
    deadline = time.monotonic() + 5
    while _named("kavileftover") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _named("kavileftover") == [], "a process outlived its call"


def _named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def test_a_call_cannot_read_another_call_s_files(warm: Zygote, workspace: Workspace) -> None:
    """Every call's TMPDIR is the same path with a tmpfs of its own: nothing written there reaches the next
    call, nor one running at the same time."""
    writer = """
path = os.path.join(os.environ["TMPDIR"], "secret.txt")
open(path, "w").write(data.text)
found["wrote"] = path
time.sleep(1.5)
"""
    reader = """
found["listing"] = repr(sorted(os.listdir(os.environ["TMPDIR"])))
attempt("read", lambda: open(os.path.join(os.environ["TMPDIR"], "secret.txt")).read())
"""
    results: dict[str, dict[str, str]] = {}
    thread = threading.Thread(target=lambda: results.update(first=_run(warm, workspace, writer, "call-one-data")))
    thread.start()
    time.sleep(0.5)
    results["during"] = _run(warm, workspace, reader)
    thread.join()
    results["after"] = _run(warm, workspace, reader)
    assert results["first"]["wrote"].endswith("secret.txt")
    for moment in ("during", "after"):
        assert "secret.txt" not in results[moment]["listing"], results
        assert results[moment]["read"].startswith("FileNotFoundError"), results
    assert not any(Path(warm.tmp).iterdir()), "a call's files reached the host"


def test_the_zygote_never_holds_a_call_s_data(warm: Zygote, workspace: Workspace) -> None:
    """A call's input and the skill's bytes travel from the server to the call's own child: the zygote's
    memory, which every later child copies, holds neither."""
    canary = f"zygote-canary-{os.urandom(8).hex()}"
    found = _run(warm, workspace, f"found['echo'] = data.text  # source-{canary}", text=f"input-{canary}")
    assert found["echo"] == f"input-{canary}"
    process = warm._process
    assert process is not None
    assert _memory_holds(process.pid, canary.encode()) is False


def _memory_holds(pid: int, needle: bytes) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
        for line in maps.splitlines():
            match = re.match(r"([0-9a-f]+)-([0-9a-f]+) r", line)
            if match is None or "[vvar]" in line or "[vsyscall]" in line:
                continue
            start, end = int(match.group(1), 16), int(match.group(2), 16)
            with contextlib.suppress(OSError, ValueError):
                memory.seek(start)
                if needle in memory.read(end - start):
                    return True
    return False


def test_a_hang_a_flood_and_a_fork_are_contained_per_call(warm: Zygote, workspace: Workspace) -> None:
    """Three bad calls at once, each stopped by its own limit, while a good call still answers before any
    of them is stopped."""
    outcomes: dict[str, Any] = {}

    def bad(name: str, body: str) -> None:
        trusted = _trusted(workspace, _skill(body), "READ_ONLY")
        policy, effects = policies_for_spec(
            DeclaredEffects(SideEffect.READ_ONLY), workspace.root, timeout_s=4.0, read_workspace=False
        )
        policy = _with(policy, max_output_bytes=64 * 1024)
        request = json.dumps({**request_for(trusted, {"text": ""}), "policy": effects.as_dict()}).encode()
        outcomes[name] = warm.run(child_argv(), cwd=workspace.root, policy=policy, stdin=request)
        outcomes[f"{name}_done"] = time.monotonic()

    threads = [
        threading.Thread(target=bad, args=("hang", "while True:\n    pass")),
        threading.Thread(target=bad, args=("flood", "while True:\n    print('x' * 4096)")),
        threading.Thread(target=bad, args=("fork", "attempt('fork', os.fork)\ntime.sleep(60)")),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    good = _run(warm, workspace, "found['ok'] = 'yes'")
    good_done = time.monotonic()
    for thread in threads:
        thread.join()
    assert good == {"ok": "yes"}
    assert outcomes["hang"].killed_reason == "timeout"
    assert outcomes["flood"].killed_reason == "output" and outcomes["flood"].truncated
    assert outcomes["fork"].killed_reason == "timeout"
    assert all(good_done < outcomes[f"{name}_done"] for name in ("hang", "fork")), "the good call waited"
    assert outcomes["fork"].blocked or "EffectBlocked" in outcomes["fork"].stderr


def _with(policy: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(policy, **changes)


def test_a_network_skill_runs_cold_and_says_why(warm: Zygote, workspace: Workspace) -> None:
    policy, effects = policies_for_spec(
        DeclaredEffects(SideEffect.NETWORK, allow_hosts=("127.0.0.1",)),
        workspace.root,
        timeout_s=20.0,
        read_workspace=False,
    )
    trusted = _trusted(workspace, _skill("found['x'] = 'y'"), "READ_ONLY")
    request = json.dumps({**request_for(trusted, {"text": ""}), "policy": effects.as_dict()}).encode()
    before = dict(warm.routes)
    result = warm.run(child_argv(), cwd=workspace.root, policy=policy, stdin=request)
    assert read_report(result.stdout) is not None, result.stderr[-2000:]
    assert warm.routes["warm"] == before.get("warm", 0)
    assert (
        warm.routes["cold: NETWORK runs on the cold path"] == before.get("cold: NETWORK runs on the cold path", 0) + 1
    )


def test_an_unavailable_zygote_runs_cold(workspace: Workspace) -> None:
    """A zygote that is not running (here: never started) claims nothing: every call runs cold."""
    idle = Zygote()
    try:
        trusted = _trusted(workspace, _skill("found['x'] = 'y'"), "READ_ONLY")
        response, _ = _run_in_child(workspace, trusted, {"text": ""}, None, idle.run)
        assert response["ok"], response
        assert idle.routes == {"cold: not started": 1}
    finally:
        idle.close()


def test_the_zygote_is_one_thread_without_secrets_or_the_ledger(warm: Zygote) -> None:
    process = warm._process
    assert process is not None
    assert len(list(Path(f"/proc/{process.pid}/task").iterdir())) == 1
    environ = Path(f"/proc/{process.pid}/environ").read_bytes()
    assert SERVER_CANARY.encode() not in environ
    links = [os.readlink(fd) for fd in Path(f"/proc/{process.pid}/fd").iterdir() if fd.is_symlink()]
    assert not [link for link in links if "ledger" in link or link.endswith(".db")], links


def test_the_zygote_imports_no_ledger() -> None:
    import subprocess
    import sys

    code = "import json, sys; from kavi.runtime import zygote; zygote.preload(); print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert not [name for name in loaded if name.startswith(("kavi.ledger", "sqlite3", "sqlalchemy", "sqlmodel"))]
    assert "pydantic" in loaded and "kavi.runtime.child" in loaded


def test_a_stopped_zygote_sends_calls_cold(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAVI_ISOLATION", raising=False)
    own = Zygote().start()
    try:
        if own.unavailable is not None:
            pytest.skip(f"the warm path is unavailable here: {own.unavailable}")
        process = own._process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        trusted = _trusted(workspace, _skill("found['x'] = 'y'"), "READ_ONLY")
        response, _ = _run_in_child(workspace, trusted, {"text": ""}, None, own.run)
        assert response["ok"], response
        assert own.routes["warm"] == 0 and sum(own.routes.values()) == 1
    finally:
        own.close()


def test_a_file_write_skill_runs_warm_and_writes_only_its_root(warm: Zygote, workspace: Workspace) -> None:
    found = _run(
        warm, workspace, "attempt('inside', lambda: open('out/x.txt', 'w').write('hi'))", side_effect="FILE_WRITE"
    )
    assert found["inside"] == "ok 2"
    assert (workspace.root / "out" / "x.txt").read_text() == "hi"
    refused = _call(warm, workspace, "open('elsewhere.txt', 'w').write('hi')", side_effect="FILE_WRITE")
    assert refused["phase"] == "side_effect", refused
    assert not (workspace.root / "elsewhere.txt").exists()


def test_a_subprocess_skill_runs_its_declared_program_warm(warm: Zygote, workspace: Workspace) -> None:
    body = """
import subprocess
found["echo"] = subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout
"""
    assert _run(warm, workspace, body, side_effect="SUBPROCESS") == {"echo": "hi\n"}
    refused = _call(
        warm, workspace, "import subprocess\nsubprocess.run(['sh', '-c', 'true'])", side_effect="SUBPROCESS"
    )
    assert refused["ok"] is False, refused
