"""The executor's table of layers: what a level plans on this host, what `--require-isolation`
requires, how the self-applied layers reach a child, and what `kavi doctor` says."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kavi.errors import IsolationError
from kavi.integrity.doctor import _isolation_check
from kavi.runtime.audit import EffectPolicy
from kavi.runtime.guard import guarded_python_argv
from kavi.sandbox import bwrap, confine, executor
from kavi.sandbox.executor import ExecPolicy, IsolationLevel, Layer, run_isolated
from kavi.side_effects import SideEffect


def test_every_layer_is_in_the_one_table_and_the_hook_is_the_only_advisory_one() -> None:
    assert [str(layer) for layer in executor.LAYERS] == [
        "userns", "caps", "pidns", "netns", "seccomp", "landlock", "rlimits", "hook",
    ]  # fmt: skip
    assert [str(layer) for layer, (_, boundary) in executor.LAYERS.items() if not boundary] == ["hook"]


def test_levels_plan_their_layers_and_a_network_child_gets_its_own_namespace() -> None:
    """NETWORK too gets a network namespace at FULL: its only way out is the parent's egress proxy."""
    host = executor.host_layers()
    full = executor.planned_layers(IsolationLevel.FULL, ExecPolicy())
    network = executor.planned_layers(IsolationLevel.FULL, ExecPolicy(side_effect=SideEffect.NETWORK))
    fallback = executor.planned_layers(IsolationLevel.FALLBACK, ExecPolicy(), guarded=False)
    assert set(full) == set(network)
    assert (Layer.NETNS in network) == (host[Layer.NETNS] is None)
    assert Layer.HOOK not in fallback and not {Layer.USERNS, Layer.PIDNS, Layer.NETNS} & set(fallback)
    assert executor.planned_layers(IsolationLevel.PROCESS, ExecPolicy(), guarded=False) == ()
    assert all(host[layer] is None for layer in full)


def test_require_isolation_names_the_layers_a_run_would_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAVI_ISOLATION", "fallback")
    marker = tmp_path / "ran"
    policy = ExecPolicy(require_isolation=True, write_roots=(tmp_path,))
    if not bwrap.probe_bwrap().works:
        pytest.skip("without bubblewrap FALLBACK is all this host has")
    with pytest.raises(IsolationError, match="userns") as raised:
        run_isolated([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], cwd=tmp_path, policy=policy)
    assert "KAVI_ISOLATION" in (raised.value.hint or "")
    assert not marker.exists()


def test_a_guarded_child_confines_itself_and_any_other_command_goes_through_the_launcher(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    guarded = guarded_python_argv(EffectPolicy(), script="x.py")
    plan = executor._plan(IsolationLevel.FALLBACK, guarded, cwd=tmp_path, policy=ExecPolicy(), env=env, tmp="/t")
    assert plan.argv == guarded and Layer.HOOK in plan.layers
    carried = confine.Confinement.from_json(plan.env[confine.ENV_NAME])
    assert carried.landlock and carried.seccomp and carried.drop_caps and carried.deny_tcp
    assert ("/t", confine.WRITE) in carried.rules
    plain = ["sh", "-c", "true"]
    plan = executor._plan(IsolationLevel.FALLBACK, plain, cwd=tmp_path, policy=ExecPolicy(), env=env, tmp="/t")
    assert plan.argv[-3:] == plain and plan.argv[4] == confine.LAUNCH and Layer.HOOK not in plan.layers
    rules = dict(confine.Confinement.from_json(plan.env[confine.ENV_NAME]).rules)
    assert rules[str(Path(plan.argv[5]).resolve())] & confine.FS_EXECUTE  # the launched program itself
    full = executor._plan(IsolationLevel.FULL, plain, cwd=tmp_path, policy=ExecPolicy(), env=env, tmp="/t")
    if Layer.SECCOMP in full.layers:  # bubblewrap installs seccomp and drops capabilities at FULL
        carried = confine.Confinement.from_json(full.env[confine.ENV_NAME])
        assert carried.seccomp == "" and not carried.drop_caps


def test_doctor_lists_the_layers_and_says_why_one_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    check = _isolation_check()
    for layer, why in executor.host_layers().items():
        assert str(layer) in check.detail
        if why is not None:
            assert why in check.detail
    monkeypatch.setattr(executor, "_landlock_abi", lambda: 0)
    check = _isolation_check()
    assert check.status == "warn" and "landlock (the kernel has no Landlock" in check.detail
    assert json.dumps(check.detail)  # one line of text
