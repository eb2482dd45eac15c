"""The kinds of code kavi forges, in one table: a new kind (a chain, say) is one entry in :data:`KINDS`.

A kind is keyed by the ``kind`` field of its frozen spec (``python`` for a skill, ``kernel`` for a GPU
kernel): the value the ledger stores on each proposal and kavi.lock on each entry, so anything that holds a
frozen spec can find its kind without being told. The entry says everything the stages, the lock, re-gating
and the layout need: the spec model that reads the frozen bytes back, the folder TRUSTED code is installed
in, the rules a builder is given, and the gates that judge a candidate and whether they run in order.

Nothing outside this table branches on a kind. The gates are imported only when a kind's gates are asked
for, so the layout and the lock stay cheap to import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from kavi.chain import ChainSpec, chain_paths
from kavi.errors import SpecError
from kavi.gpu.spec import KernelSpec, kernel_build_rules
from kavi.spec import SkillSpec, installed_paths

if TYPE_CHECKING:
    from kavi.gates.base import Gate, GateSettings


class FrozenSpec(Protocol):
    """What every kind's spec model offers the stages (each kind's gates read its own model's fields)."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def side_effect(self) -> str: ...  # a SideEffect; for a chain the union of its members' (READ_ONLY+FILE_WRITE)

    @property
    def allowed_paths(self) -> tuple[str, str]: ...

    def canonical_json(self) -> bytes: ...

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


def _no_guide(_spec: Any) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Kind:
    """One kind of forged code and what each stage needs to know about it."""

    key: str  # the frozen spec's ``kind`` field
    noun: str  # what a person calls one
    install_dir: str  # where TRUSTED versions live, from the spec model (its paths use the same folder)
    load: Callable[[bytes], FrozenSpec]  # the frozen spec bytes back into the kind's model
    build_rules: Callable[[Any], tuple[str, ...]]  # the rules a builder's packet carries
    gates: Callable[[], Sequence[Gate[Any]]]  # every gate of the kind, in the order they are listed
    gate_context: Callable[[Any, Path, GateSettings], Any]  # what those gates run on
    gates_in_order: bool  # True: one after the other (a kernel's screen decides whether code may run at all)
    # A complete example and the gates' exact settings for the build packet, so a model passes at once.
    build_guide: Callable[[Any], dict[str, str]] = _no_guide
    # Its candidates are linted with ruff's skill settings, so forge may try ruff's safe fixes first.
    lint_fixes: bool = False
    # A TRUSTED version can be called with JSON in and JSON out (an MCP tool, an API run).
    serves_as_tool: bool = False
    # Folders under install_dir that hold proposal inputs (frozen in the ledger), never code a lock vouches for.
    inputs_dirs: tuple[str, ...] = ()
    # Where a TRUSTED version's two files live, from the folder and the name.
    paths: Callable[[str, str], tuple[str, str]] = installed_paths
    # Nothing is built: propose records the candidate itself (its files derive from the frozen spec).
    built_at_propose: Callable[[Any], dict[str, bytes]] | None = None
    # Its TRUSTED versions run other TRUSTED versions, step by step (`run-chain`), never code of their own.
    composite: bool = False
    # May be a step of a chain (called with JSON in and out, and no chain itself).
    composable: bool = False
    # Its speed is measured against a baseline, so `kavi forge --optimize` can search for a faster candidate.
    speed_optimizable: bool = False
    # The job queue whose workers can verify one (`kavi verify-skill --queue`, `kavi forge --queue`): "gates" for
    # CPU gates, "gpu" where a gate needs a GPU (those workers take one such job per GPU at a time).
    verify_queue: str = "gates"

    @property
    def has_unmeasurable_gates(self) -> bool:
        """Whether a TRUSTED version of this kind may carry results no machine measured (a kernel's speed)."""
        return any(gate.may_be_unmeasured for gate in self.gates())

    def installed_paths(self, name: str) -> tuple[str, str]:
        """The code and test file of a TRUSTED version, relative to the workspace root (the build allowlist)."""
        return self.paths(self.install_dir, name)


SKILL_BUILD_RULES = (
    "Write exactly the allowed files; any other created, changed or deleted file fails the build.",
    "The skill module may hold only imports, pydantic models, constants and one Skill subclass; importing it "
    "must do nothing.",
    "Subclass kavi.skill.Skill; declare name, side_effect, input_model and output_model as the spec says; "
    "implement execute(self, data) -> output model.",
    "Use only what the side-effect class allows (no eval/exec, no dynamic imports, no ctypes or pickle).",
    "The skill must pass `mypy --strict` and ruff; tests import it as `from <name> import <Class>`.",
    "Write pytest tests in the test file; the spec's examples are checked separately and cannot be edited.",
)


def _skill_rules(_spec: SkillSpec) -> tuple[str, ...]:
    return SKILL_BUILD_RULES


GUIDE_EXAMPLES = ("word_count", "write_note")  # demo skills the suite verifies; the packet shows one


def _skill_guide(spec: SkillSpec) -> dict[str, str]:
    """What a builder needs to pass the gates at the first attempt, read from their one source: a demo skill
    (complete; the test suite verifies it through every gate) and the settings the lint and type gates use."""
    import shlex
    from importlib import resources

    from kavi.gates.lint import ruff_settings
    from kavi.gates.typecheck import mypy_config

    name = next(example for example in GUIDE_EXAMPLES if example != spec.name)  # never the task's own answer
    example = resources.files("kavi.demo_replays") / name / "skills"
    return {
        "ruff": shlex.join(["ruff", "check", *ruff_settings(spec.name), spec.skill_path, spec.test_path]),
        "imports": (
            "Import order (ruff's I rules): `from __future__ import annotations` first; then the standard library; "
            "then third-party, where `kavi` and `pydantic` count as third-party and sort together; then your own "
            f"module `{spec.name}` (first-party: the test imports it as `from {spec.name} import ...`). One blank "
            "line between sections, none inside one."
        ),
        "mypy": mypy_config(spec),
        "example_name": name,
        "example_skill_path": f"skills/{name}.py",
        "example_skill": (example / f"{name}.py").read_text(encoding="utf-8"),
        "example_test_path": f"skills/test_{name}.py",
        "example_test": (example / f"test_{name}.py").read_text(encoding="utf-8"),
    }


def _skill_gates() -> Sequence[Gate[Any]]:
    from kavi.gates.registry import SKILL_GATES

    return SKILL_GATES


def _skill_context(spec: SkillSpec, sandbox: Path, settings: GateSettings) -> Any:
    from kavi.gates.registry import skill_context

    return skill_context(spec, sandbox, settings)


def _kernel_gates() -> Sequence[Gate[Any]]:
    from kavi.gates.kernel import KERNEL_GATES

    return KERNEL_GATES


def _kernel_context(spec: KernelSpec, sandbox: Path, settings: GateSettings) -> Any:
    from kavi.gates.kernel import kernel_context

    return kernel_context(spec, sandbox, settings)


def _no_rules(_spec: Any) -> tuple[str, ...]:
    return ()


def _chain_files(spec: ChainSpec) -> dict[str, bytes]:
    """A chain's candidate: its definition (the frozen spec, which pins each member's hashes) and its examples."""
    definition, examples = spec.allowed_paths
    return {definition: spec.canonical_json(), examples: spec.examples_json()}


def _chain_gates() -> Sequence[Gate[Any]]:
    from kavi.gates.registry import CHAIN_GATES

    return CHAIN_GATES


def _chain_context(spec: ChainSpec, sandbox: Path, settings: GateSettings) -> Any:
    from kavi.gates.registry import chain_context

    return chain_context(spec, sandbox, settings)


KINDS: dict[str, Kind] = {
    kind.key: kind
    for kind in (
        Kind(
            key="python",
            noun="skill",
            install_dir=SkillSpec.install_dir,
            load=SkillSpec.model_validate_json,
            build_rules=_skill_rules,
            build_guide=_skill_guide,
            gates=_skill_gates,
            gate_context=_skill_context,
            gates_in_order=False,
            lint_fixes=True,
            serves_as_tool=True,
            composable=True,
        ),
        Kind(
            key="kernel",
            noun="kernel",
            install_dir=KernelSpec.install_dir,
            load=KernelSpec.model_validate_json,
            build_rules=kernel_build_rules,
            gates=_kernel_gates,
            gate_context=_kernel_context,
            gates_in_order=True,
            inputs_dirs=("references",),
            speed_optimizable=True,
            verify_queue="gpu",
        ),
        Kind(
            key="chain",
            noun="chain",
            install_dir=ChainSpec.install_dir,
            load=ChainSpec.model_validate_json,
            build_rules=_no_rules,
            gates=_chain_gates,
            gate_context=_chain_context,
            gates_in_order=True,
            serves_as_tool=True,
            paths=chain_paths,
            built_at_propose=_chain_files,
            composite=True,
        ),
    )
}


def kind_of(key: object) -> Kind:
    """The kind named by a frozen spec's ``kind`` field (or a proposal's, or a lock entry's)."""
    kind = KINDS.get(key) if isinstance(key, str) else None
    if kind is None:
        known = ", ".join(sorted(KINDS))
        raise SpecError(f"unknown kind {key!r}: this kavi knows {known}", hint="upgrade kavi")
    return kind


def load_any_spec(data: bytes) -> FrozenSpec:
    """A frozen spec read back into its kind's model, the kind taken from the spec itself."""
    try:
        head = json.loads(data)
    except (ValueError, RecursionError):
        raise SpecError("a frozen spec is not valid JSON") from None
    if not isinstance(head, dict):
        raise SpecError("a frozen spec is not a JSON object")
    kind = kind_of(head.get("kind"))
    try:
        return kind.load(data)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise SpecError(f"a frozen {kind.noun} spec does not fit this kavi's {kind.noun} model: {problem}") from None


def install_dirs() -> tuple[str, ...]:
    return tuple(kind.install_dir for kind in KINDS.values())


def gate_named(name: str) -> Gate[Any] | None:
    """The gate that records results under ``name``, whatever its kind (None for a gate this kavi lacks)."""
    for kind in KINDS.values():
        for gate in kind.gates():
            if gate.name == name:
                return gate
    return None


def unmeasurable_gates() -> frozenset[str]:
    """The names of the gates whose SKIPPED result a person may accept at promotion (``may_be_unmeasured``)."""
    return frozenset(gate.name for kind in KINDS.values() for gate in kind.gates() if gate.may_be_unmeasured)
