"""The executor's contract beyond the matrix: secrets, swallowed blocks, levels, pytest under the
hook."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kavi.errors import ConfigError, IsolationError
from kavi.runtime.audit import BLOCKED_EXIT_CODE, EffectPolicy
from kavi.runtime.guard import guarded_python_argv
from kavi.sandbox import bwrap, executor
from kavi.sandbox.executor import (
    ExecPolicy,
    IsolationLevel,
    policies_for_spec,
    probe_isolation,
    run_isolated,
)
from kavi.side_effects import SideEffect
from kavi.spec import make_spec

from .conftest import RunSnippet, bwrap_works


def test_secret_read_sees_its_declared_secret_and_nothing_else(
    level: IsolationLevel, run_snippet: RunSnippet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVI_TEST_TOKEN", "undeclared-value")
    monkeypatch.setenv("OPENAI_API_KEY", "parent-api-key")
    code = """
        import os
        get = os.environ.get
        print(get("MY_SECRET"), get("KAVI_TEST_TOKEN"), get("OPENAI_API_KEY"))
        print(sorted(os.environ))
    """
    result = run_snippet(code, SideEffect.SECRET_READ, secrets={"MY_SECRET": "declared-value"})
    assert result.ok, result.stderr
    first_line = result.stdout.splitlines()[0]
    assert first_line == "declared-value None None"
    assert "parent-api-key" not in result.stdout


def test_secret_values_never_appear_on_a_command_line(
    level: IsolationLevel, run_snippet: RunSnippet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Command lines are world-readable in /proc; a secret must travel in the environment only."""
    seen: list[list[str]] = []
    real_popen = subprocess.Popen

    def spy(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        seen.append(list(args))
        return real_popen(args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(executor.subprocess, "Popen", spy)
    code = "import os\nprint(os.environ['MY_SECRET'])"
    result = run_snippet(code, SideEffect.SECRET_READ, secrets={"MY_SECRET": "value-9f8e7d"})
    assert result.stdout.strip() == "value-9f8e7d", result.stderr
    assert seen and not any("value-9f8e7d" in arg for argv in seen for arg in argv)


def test_read_only_child_never_sees_a_secret_even_if_passed(level: IsolationLevel, run_snippet: RunSnippet) -> None:
    code = "import os\nprint(os.environ.get('MY_SECRET'))"
    result = run_snippet(code, SideEffect.READ_ONLY, secrets={"MY_SECRET": "declared-value"})
    assert result.stdout.strip() == "None"


@pytest.mark.parametrize("side_effect", list(SideEffect), ids=str)
def test_ordinary_python_keeps_working_under_the_hook(
    level: IsolationLevel, run_snippet: RunSnippet, side_effect: SideEffect
) -> None:
    """The hook refuses effects, not the standard library: asyncio, tempfile, logging, uuid."""
    code = """
        import asyncio, json, logging, tempfile, uuid, dataclasses, pathlib
        async def answer():
            await asyncio.sleep(0)
            return 42
        assert asyncio.run(answer()) == 42
        with tempfile.TemporaryDirectory() as folder:
            (pathlib.Path(folder) / "scratch.txt").write_text("ok")
        with tempfile.NamedTemporaryFile("w") as handle:
            handle.write("ok")
        logging.basicConfig()
        logging.getLogger("skill").warning("a warning on stderr")
        print(json.dumps({"id": len(str(uuid.uuid4())), "home": pathlib.Path.home().name}))
    """
    result = run_snippet(code, side_effect)
    assert result.ok, result.stderr[-2000:]
    assert result.stdout.strip() == '{"id": 36, "home": "home"}'
    assert "a warning on stderr" in result.stderr


def test_a_swallowed_block_still_fails_even_with_stderr_redirected(
    level: IsolationLevel, run_snippet: RunSnippet
) -> None:
    code = """
        import os, sys
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            open("owned.txt", "w")
        except Exception:
            pass
        sys.exit(0)
    """
    result = run_snippet(code, SideEffect.READ_ONLY)
    assert result.returncode == BLOCKED_EXIT_CODE
    assert result.blocked == (
        {"effect": "file write", "detail": result.blocked[0]["detail"], "side_effect": "READ_ONLY"},
    )
    assert result.blocked[0]["detail"].endswith("/owned.txt")
    assert not result.ok


def test_an_event_the_hook_cannot_read_is_refused(level: IsolationLevel, run_snippet: RunSnippet) -> None:
    """Fail closed: a malformed or unexpected event is a block, not a crash and not a pass."""
    result = run_snippet("import sys\nsys.audit('os.remove')", SideEffect.FILE_WRITE)
    assert result.blocked[0]["effect"] == "unchecked"
    assert result.returncode == BLOCKED_EXIT_CODE


def test_a_later_audit_hook_is_refused(level: IsolationLevel, run_snippet: RunSnippet) -> None:
    code = """
        import sys
        calls = []
        sys.addaudithook(lambda event, args: calls.append(event))
        open(__file__).read()
        print("HOOK-CALLS", len(calls))
    """
    result = run_snippet(code, SideEffect.READ_ONLY)
    assert "HOOK-CALLS 0" in result.stdout
    assert result.blocked[0]["effect"] == "audit hook"
    assert result.returncode == BLOCKED_EXIT_CODE


def test_undeclared_executable_is_refused(level: IsolationLevel, run_snippet: RunSnippet) -> None:
    code = """
        import subprocess
        subprocess.run(["true"], check=True)
        print("TRUE-RAN")
        subprocess.run(["ls"], check=True)
    """
    result = run_snippet(code, SideEffect.SUBPROCESS, executables=("true",))
    assert "TRUE-RAN" in result.stdout
    assert result.blocked[0]["effect"] == "process"
    assert "ls" in result.blocked[0]["detail"]


@pytest.mark.parametrize(
    ("side_effect", "program", "allowed"),
    [
        (SideEffect.READ_ONLY, "true", False),
        (SideEffect.SUBPROCESS, "true", True),
        (SideEffect.SUBPROCESS, "echo", False),
    ],
)
def test_fork_exec_without_subprocess_is_still_audited(
    level: IsolationLevel,
    run_snippet: RunSnippet,
    side_effect: SideEffect,
    program: str,
    allowed: bool,
) -> None:
    """multiprocessing calls _posixsubprocess.fork_exec directly, which has no audit event."""
    code = f"""
        import os, shutil
        from multiprocessing.util import spawnv_passfds
        path = os.fsencode(shutil.which({program!r}))
        pid = spawnv_passfds(path, [path, b"SPAWNED"], [])
        os.waitpid(pid, 0)
        print("RAN")
    """
    result = run_snippet(code, side_effect, executables=("true",) if side_effect == "SUBPROCESS" else ())
    assert ("RAN" in result.stdout) == allowed, result.stderr[-1000:]
    assert "SPAWNED" not in result.stdout
    if not allowed:
        assert result.blocked[0]["effect"] == "process"


def test_a_gpu_kernel_runs_only_the_compilers_it_declares(level: IsolationLevel, run_snippet: RunSnippet) -> None:
    code = """
        import subprocess
        subprocess.run(["true"], check=True)
        print("COMPILER-RAN")
        subprocess.run(["ls"], check=True)
    """
    result = run_snippet(code, SideEffect.GPU_KERNEL, executables=("true",))
    assert "COMPILER-RAN" in result.stdout, result.stderr[-1000:]
    assert result.blocked[0]["effect"] == "process" and "ls" in result.blocked[0]["detail"]


def test_network_skill_reaches_only_its_declared_port(level: IsolationLevel, run_snippet: RunSnippet) -> None:
    allowed, other = socket.socket(), socket.socket()
    for server in (allowed, other):
        server.bind(("127.0.0.1", 0))
        server.listen(4)
    try:
        code = f"""
            import socket
            socket.create_connection(("127.0.0.1", {allowed.getsockname()[1]}), timeout=2).close()
            print("FIRST-OK")
            socket.create_connection(("127.0.0.1", {other.getsockname()[1]}), timeout=2).close()
            print("SECOND-OK")
        """
        hosts = (f"127.0.0.1:{allowed.getsockname()[1]}",)
        result = run_snippet(code, SideEffect.NETWORK, allow_hosts=hosts)
    finally:
        allowed.close()
        other.close()
    assert "FIRST-OK" in result.stdout, result.stderr
    assert "SECOND-OK" not in result.stdout
    assert result.blocked[0]["effect"] == "network"


def test_network_skill_cannot_resolve_an_undeclared_name(level: IsolationLevel, run_snippet: RunSnippet) -> None:
    code = "import socket\nsocket.getaddrinfo('example.invalid', 80)"
    result = run_snippet(code, SideEffect.NETWORK, allow_hosts=("localhost",))
    assert result.blocked[0]["effect"] == "network"
    assert "example.invalid" in result.blocked[0]["detail"]


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")
def test_bubblewrap_is_the_boundary_without_any_hook(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At FULL, an unguarded child still cannot write the folder, reach the host or see the home."""
    monkeypatch.setenv("KAVI_ISOLATION", "full")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    home, port = Path.home(), server.getsockname()[1]
    code = f"""
import os, socket
results = []
for name, action in [
    ("write", lambda: open("x.txt", "w")),
    ("connect", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2)),
    ("home", lambda: open({str(home / ".ssh" / "id_rsa")!r}).read()),
]:
    try:
        action()
        results.append(name + "=open")
    except OSError as exc:
        results.append(name + "=" + type(exc).__name__)
print(" ".join(results))
"""
    try:
        result = run_isolated([sys.executable, "-c", code], cwd=sandbox, policy=ExecPolicy())
    finally:
        server.close()
    assert result.isolation == IsolationLevel.FULL
    assert result.stdout.split() == [
        "write=OSError",
        "connect=PermissionError",  # Landlock refuses TCP before the empty network namespace would
        "home=FileNotFoundError",
    ]


PYTEST_FILE = """
from pathlib import Path

def test_tmp_path_is_writable(tmp_path):
    (tmp_path / "note.txt").write_text("ok")
    assert (tmp_path / "note.txt").read_text() == "ok"

def test_writing_the_candidate_folder_is_refused():
    Path("written-by-test.txt").write_text("no")
"""


def test_pytest_runs_under_the_hook(level: IsolationLevel, sandbox: Path) -> None:
    (sandbox / "test_candidate.py").write_text(PYTEST_FILE)
    argv = guarded_python_argv(
        EffectPolicy(side_effect=SideEffect.READ_ONLY),
        module="pytest",
        args=["-p", "no:cacheprovider", "-q", "-rA", "test_candidate.py"],
    )
    # As the pytest gate runs it: no third-party pytest plugins (an installed one may do what the hook refuses).
    policy = ExecPolicy(timeout_s=30, env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    result = run_isolated(argv, cwd=sandbox, policy=policy)
    assert "PASSED test_candidate.py::test_tmp_path_is_writable" in result.stdout, result.stdout + result.stderr
    assert "FAILED test_candidate.py::test_writing_the_candidate_folder_is_refused" in result.stdout
    assert "EffectBlocked" in result.stdout
    assert result.returncode == BLOCKED_EXIT_CODE
    assert not (sandbox / "written-by-test.txt").exists()


def test_require_isolation_refuses_to_run_below_full(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVI_ISOLATION", "fallback")
    with pytest.raises(IsolationError, match="unset KAVI_ISOLATION"):
        run_isolated(["true"], cwd=sandbox, policy=ExecPolicy(require_isolation=True))
    monkeypatch.delenv("KAVI_ISOLATION")
    monkeypatch.setattr(bwrap, "probe_bwrap", lambda: bwrap.BwrapInfo(None, None, False, "absent"))
    with pytest.raises(IsolationError, match="install bubblewrap"):
        run_isolated(["true"], cwd=sandbox, policy=ExecPolicy(require_isolation=True))


def test_forcing_full_without_bubblewrap_is_an_error(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVI_ISOLATION", "full")
    monkeypatch.setattr(bwrap, "probe_bwrap", lambda: bwrap.BwrapInfo(None, None, False, "not installed"))
    with pytest.raises(IsolationError, match="not installed"):
        run_isolated(["true"], cwd=sandbox, policy=ExecPolicy())


def test_without_bubblewrap_the_executor_falls_back_and_says_so(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAVI_ISOLATION", raising=False)
    monkeypatch.setattr(bwrap, "probe_bwrap", lambda: bwrap.BwrapInfo(None, None, False, "not installed"))
    result = run_isolated(["true"], cwd=sandbox, policy=ExecPolicy())
    assert result.ok and result.isolation == IsolationLevel.FALLBACK
    report = probe_isolation()
    assert report.level == IsolationLevel.FALLBACK
    assert report.bwrap_error == "not installed"
    assert any("bubblewrap" in note for note in report.notes)


def test_an_unknown_isolation_value_is_a_config_error(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVI_ISOLATION", "paranoid")
    with pytest.raises(ConfigError, match="KAVI_ISOLATION"):
        run_isolated(["true"], cwd=sandbox, policy=ExecPolicy())


def test_probe_isolation_reports_what_is_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAVI_ISOLATION", raising=False)
    report = probe_isolation()
    info = bwrap.probe_bwrap()
    assert report.bwrap_works == info.works
    assert report.level == (IsolationLevel.FULL if info.works else IsolationLevel.FALLBACK)
    assert "RLIMIT_AS" in report.rlimits and report.audit_hooks
    assert json.loads(json.dumps(report.as_dict()))["bwrap"]["works"] == info.works
    monkeypatch.setenv("KAVI_ISOLATION", "fallback")
    assert probe_isolation().level == IsolationLevel.FALLBACK


def test_effect_policy_from_spec_and_json_round_trip(tmp_path: Path) -> None:
    spec = make_spec(
        name="write_notes",
        description="Writes notes.",
        side_effect="FILE_WRITE",
        io_schema={"input": {"text": "str"}, "output": {"ok": "bool"}},
        write_roots=("notes",),
    )
    policy = EffectPolicy.from_spec(spec, tmp_path)
    assert policy.side_effect == SideEffect.FILE_WRITE
    assert policy.write_roots == (str(tmp_path.resolve() / "notes"),)
    assert EffectPolicy.from_json(policy.to_json()) == policy
    with pytest.raises(ValueError, match="unknown policy keys"):
        EffectPolicy.from_json('{"side_effect": "READ_ONLY", "write_root": ["/"]}')
    with pytest.raises(ValueError, match="unknown side-effect class"):
        EffectPolicy.from_json('{"side_effect": "ANYTHING"}')


def test_policies_for_spec_agree_and_let_the_skill_write_its_root(level: IsolationLevel, tmp_path: Path) -> None:
    spec = make_spec(
        name="write_notes",
        description="Writes notes.",
        side_effect="FILE_WRITE",
        io_schema={"input": {"text": "str"}, "output": {"ok": "bool"}},
        write_roots=("notes",),
    )
    workspace, scratch = tmp_path / "ws", tmp_path / "scratch"
    workspace.mkdir()
    policy, effects = policies_for_spec(
        spec, workspace, extra_write_roots=(scratch,), secrets={"UNDECLARED": "x"}, timeout_s=10
    )
    assert policy.secrets == {} and policy.timeout_s == 10
    assert effects.extra_write_roots == (str(scratch.resolve()),)
    (workspace / "skill.py").write_text(
        "open('notes/a.txt', 'w').write('1')\n"
        f"open({str(scratch / 'b.txt')!r}, 'w').write('2')\n"
        "open('elsewhere.txt', 'w')\n"
    )
    result = run_isolated(guarded_python_argv(effects, script="skill.py"), cwd=workspace, policy=policy)
    assert (workspace / "notes" / "a.txt").read_text() == "1"
    assert (scratch / "b.txt").read_text() == "2"
    assert not (workspace / "elsewhere.txt").exists()
    assert result.blocked and result.blocked[0]["detail"].endswith("elsewhere.txt")


def test_install_is_idempotent_and_cannot_be_loosened(tmp_path: Path) -> None:
    code = """
import os
from kavi.runtime.audit import EffectPolicy, install_audit_hook
from kavi.side_effects import SideEffect
strict = EffectPolicy(side_effect=SideEffect.READ_ONLY)
install_audit_hook(strict)
install_audit_hook(strict)
try:
    install_audit_hook(EffectPolicy(side_effect=SideEffect.FILE_WRITE, write_roots=(os.getcwd(),)))
except Exception as exc:
    print("REFUSED", type(exc).__name__)
open("x.txt", "w")
"""
    completed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert "REFUSED EffectBlocked" in completed.stdout
    assert completed.returncode == BLOCKED_EXIT_CODE
    assert not (tmp_path / "x.txt").exists()


def test_guard_usage_error(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "kavi.runtime.guard", "--script", "x.py"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "usage" in completed.stderr
    with pytest.raises(ValueError, match="exactly one"):
        guarded_python_argv(EffectPolicy(), module="a", script="b")


def test_executor_module_names_are_kept() -> None:
    """The skeleton's contract (run_isolated, ExecPolicy, ExecResult, IsolationLevel) stands."""
    assert {level.value for level in IsolationLevel} == {"full", "fallback", "process"}
    assert executor.ExecResult(0, "", "", 0.0, False, IsolationLevel.PROCESS).ok
