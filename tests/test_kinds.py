"""kavi.kinds: one table knows each kind, and every place that needs a kind's spec, folder, rules or gates reads it.

The first test is the root of the CI crash (issue 11): the lock's kernel entries were read as skill specs.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from kavi.chain import ChainSpec
from kavi.errors import SpecError
from kavi.gates.registry import SKILL_GATES
from kavi.gpu.spec import KernelSpec
from kavi.kinds import KINDS, kind_of, load_any_spec, unmeasurable_gates
from kavi.layout import installed_files, installed_paths
from kavi.spec import SkillSpec
from tests.support import REPO


def _repository_lock() -> list[dict]:  # type: ignore[type-arg]
    return list(tomllib.loads((REPO / "kavi.lock").read_text(encoding="utf-8"))["skill"])


def test_every_entry_of_this_repositorys_lock_loads_as_its_own_kind() -> None:
    entries = _repository_lock()
    assert {entry["kind"] for entry in entries} == {"python", "kernel"}
    for entry in entries:
        spec = load_any_spec(entry["spec"].encode("utf-8"))
        assert spec.kind == entry["kind"] and spec.name == entry["name"]
        assert isinstance(spec, KernelSpec if entry["kind"] == "kernel" else SkillSpec)
        assert sorted(spec.allowed_paths) == sorted(entry["files"])
        assert spec.allowed_paths == installed_paths(entry["kind"], entry["name"])
        assert spec.canonical_json() == entry["spec"].encode("utf-8")  # read back byte-exact


def test_each_kinds_folder_is_the_one_its_spec_model_installs_into() -> None:
    assert {key: kind.install_dir for key, kind in KINDS.items()} == {
        "python": "skills",
        "kernel": "kernels",
        "chain": "chains",
    }
    assert KINDS["chain"].install_dir == ChainSpec.install_dir
    assert KINDS["chain"].installed_paths("x") == ("chains/x.json", "chains/test_x.json")
    assert KINDS["python"].install_dir == SkillSpec.install_dir
    assert KINDS["kernel"].install_dir == KernelSpec.install_dir
    assert KINDS["kernel"].installed_paths("softmax") == ("kernels/softmax.py", "kernels/test_softmax.py")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"kind": "workflow", "name": "x"}', "unknown kind 'workflow'"),
        (b'{"kind": "chain", "name": "x"}', "chain spec does not fit"),
        (b'{"name": "x"}', "unknown kind None"),
        (b"[1, 2]", "not a JSON object"),
        (b"{", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
        (b'{"kind": "kernel", "name": "x", "bogus": 1}', "kernel spec does not fit"),
    ],
)
def test_a_spec_of_no_known_kind_is_a_typed_error(data: bytes, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_any_spec(data)
    with pytest.raises(SpecError, match="unknown kind"):
        kind_of("workflow")


def test_the_kinds_gates_their_order_and_what_each_declares() -> None:
    assert [gate.name for gate in KINDS["python"].gates()] == [gate.name for gate in SKILL_GATES]
    assert [gate.name for gate in KINDS["kernel"].gates()] == ["kernel-screen", "kernel-correctness", "kernel-speed"]
    assert KINDS["kernel"].gates_in_order and not KINDS["python"].gates_in_order
    names = [gate.name for kind in KINDS.values() for gate in kind.gates()]
    assert len(names) == len(set(names)), "a gate name must say which gate recorded a result"
    assert unmeasurable_gates() == {"kernel-speed"}
    assert [key for key, kind in KINDS.items() if kind.speed_optimizable] == ["kernel"]  # forge --optimize


def test_a_kernels_reference_files_are_not_installed_code(tmp_path: Path) -> None:
    for relative in ("skills/a.py", "kernels/b.py", "kernels/references/b.py", "kernels/__pycache__/b.pyc"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x = 1\n")
    assert list(installed_files(tmp_path)) == ["skills/a.py", "kernels/b.py"]


def test_a_build_packet_carries_its_kinds_rules() -> None:
    specs = {entry["name"]: load_any_spec(entry["spec"].encode()) for entry in _repository_lock()}
    skill, kernel = specs["word_count"], specs["softmax"]
    assert "Subclass kavi.skill.Skill" in " ".join(KINDS[skill.kind].build_rules(skill))
    assert f"Write {kernel.allowed_paths[0]}" in KINDS[kernel.kind].build_rules(kernel)[0]


def test_no_module_outside_the_table_branches_on_a_kind() -> None:
    """`if kind == ...` and isinstance checks of a spec's model belong in kavi.kinds only (and the spec models)."""
    allowed = {"kinds.py", "spec.py"}
    offenders = []
    for path in sorted((REPO / "src" / "kavi").rglob("*.py")):
        if path.name in allowed or "demo_replays" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(
                isinstance(side, ast.Constant) and side.value in ("kernel", "python")
                for side in (node.left, *node.comparators)
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance"
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "spec"  # a spec of either kind (not an argument that may be a name)
                and any(isinstance(arg, ast.Name) and arg.id in ("SkillSpec", "KernelSpec") for arg in node.args[1:])
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
