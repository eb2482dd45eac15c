"""Shared fixtures: run a snippet of Python under the guard, at a chosen isolation level."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from kavi.runtime.audit import EffectPolicy
from kavi.runtime.guard import guarded_python_argv
from kavi.sandbox import bwrap
from kavi.sandbox.executor import ExecPolicy, ExecResult, IsolationLevel, run_isolated
from kavi.side_effects import SideEffect

LEVELS = ("full", "fallback")


def bwrap_works() -> bool:
    return bwrap.probe_bwrap().works


@pytest.fixture(params=LEVELS)
def level(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> IsolationLevel:
    """Each test runs once with bubblewrap (FULL) and once with the fallback (rlimits + hook)."""
    if request.param == "full" and not bwrap_works():
        pytest.skip(f"bubblewrap cannot run here: {bwrap.probe_bwrap().error}")
    monkeypatch.setenv("KAVI_ISOLATION", request.param)
    return IsolationLevel(request.param)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder, plus a fake home with a fake SSH key that no child may read."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("FAKE-PRIVATE-KEY-0123\n")
    monkeypatch.setenv("HOME", str(home))
    folder = tmp_path / "sandbox"
    folder.mkdir()
    return folder


RunSnippet = Callable[..., ExecResult]


@pytest.fixture
def run_snippet(sandbox: Path) -> RunSnippet:
    """Write ``code`` to a script in the sandbox and run it guarded, as a ``side_effect`` skill."""

    def run(
        code: str,
        side_effect: SideEffect = SideEffect.READ_ONLY,
        *,
        write_roots: Sequence[Path] = (),
        allow_hosts: Sequence[str] = (),
        executables: Sequence[str] = (),
        secrets: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        **limits: object,
    ) -> ExecResult:
        script = sandbox / "snippet.py"
        script.write_text(textwrap.dedent(code))
        effects = EffectPolicy(
            side_effect=side_effect,
            write_roots=tuple(str(root) for root in write_roots),
            allow_hosts=tuple(allow_hosts),
            executables=tuple(executables),
            secrets=tuple(secrets or {}),
            hidden_roots=(os.environ["HOME"],),
        )
        policy = ExecPolicy(
            side_effect=side_effect,
            timeout_s=timeout_s,
            write_roots=tuple(write_roots),
            allow_hosts=tuple(allow_hosts),
            executables=tuple(executables),
            secrets=dict(secrets or {}),
            **limits,  # type: ignore[arg-type]
        )
        argv = guarded_python_argv(effects, script=str(script))
        return run_isolated(argv, cwd=sandbox, policy=policy)

    return run
