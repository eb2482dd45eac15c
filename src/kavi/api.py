"""The Python API: call TRUSTED skills from your own code.

``load_skill`` does the expensive, security-relevant work once — find the latest TRUSTED version, read its
bytes once, check their hash against the ledger, execute those bytes — and returns a callable whose calls
only validate input and output against the frozen spec. In-process calls are for READ_ONLY skills; anything
with a side effect runs through `kavi run-skill`, in an isolated child.

What the in-process path promises, exactly: **the audit hook, and nothing more — it is not a boundary.** While
the skill's module is executed and while each call runs, a READ_ONLY hook judges the calling thread: no
writes, no network, no programs, no subinterpreters, no reads of ``/proc/*/environ``, ``/proc/*/mem`` or the
hidden home folder, no new threads. There is no namespace, no seccomp, no Landlock and no resource limit: the
skill shares your process, memory and credentials. Anything the skill leaves behind and that runs later —
a callback it registered, an object whose ``__del__`` runs when your interpreter exits (after CPython has
cleared its audit hooks) — runs unchecked. Use it for skills whose policy scan passed and whose source you
trust; for anything else, `kavi run-skill` (an isolated child that ends with its report).

Calls through the API are not recorded one by one (a ledger write per call would cost a hundred times the
call); loading is recorded as a ``skill.loaded`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kavi.errors import TransitionError
from kavi.ledger import fast
from kavi.runtime.hook import install_scoped
from kavi.runtime.invoke import find_skill_class, invoke
from kavi.runtime.loader import module_from_bytes
from kavi.side_effects import DeclaredEffects, SideEffect
from kavi.skill import Skill
from kavi.spec import build_model, load_spec
from kavi.stages.run import load_trusted
from kavi.workspace import find_workspace


class TrustedSkill:
    """A loaded TRUSTED skill version. Call it with a dict; get the validated output dict back."""

    def __init__(
        self,
        name: str,
        version: int,
        sha256: str,
        skill_class: type[Skill[Any, Any]],
        input_model: type[BaseModel],
        output_model: type[BaseModel],
        guard: tuple[Callable[[], None], Callable[[], None]],
    ) -> None:
        self.name, self.version, self.sha256 = name, version, sha256
        self._skill_class, self._input_model, self._output_model = skill_class, input_model, output_model
        self._enter, self._leave = guard

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Validate, run and validate again, with the READ_ONLY hook judging this thread meanwhile."""
        self._enter()
        try:
            return invoke(self._skill_class, payload, input_model=self._input_model, output_model=self._output_model)
        finally:
            self._leave()

    def __repr__(self) -> str:
        return f"<TrustedSkill {self.name} v{self.version} {self.sha256[:12]}>"


_GUARDS: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}


def _guard(root: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    """The scoped READ_ONLY hook of one workspace, installed once per process (hooks cannot be removed)."""
    from kavi.runtime.audit import EffectPolicy

    policy = EffectPolicy.from_spec(DeclaredEffects(SideEffect.READ_ONLY), root)
    key = policy.to_json()
    if key not in _GUARDS:
        _GUARDS[key] = install_scoped({**policy.as_dict(), "private_tmp": False})
    return _GUARDS[key]


def load_skill(name: str, *, workspace: Path | str | None = None, version: int | None = None) -> TrustedSkill:
    """Load a READ_ONLY TRUSTED skill for in-process calls, after checking its hash.

    The skill's code runs under the audit hook only (see the module docstring): a refused effect raises, in
    the calling thread, a TypeError whose message begins with "EffectBlocked" (raised from C, so that its
    traceback holds no frame of the hook); it is not an isolation boundary.
    """
    ws = find_workspace(workspace)
    conn = fast.connect(ws.ledger_url)
    try:
        trusted = load_trusted(ws, conn, name, version)
        promotion = trusted.promotion
        if SideEffect(promotion["side_effect"]) is not SideEffect.READ_ONLY:
            raise TransitionError(
                f"{name} is {promotion['side_effect']}: only READ_ONLY skills run in-process",
                hint=f"run it isolated with `kavi run-skill {name}`",
            )
        spec = load_spec(trusted.spec_json)
        guard = _guard(ws.root)
        guard[0]()
        try:
            module = module_from_bytes(f"kavi_skill_{name}", trusted.source, filename=trusted.filename)
        finally:
            guard[1]()
        fast.write(
            conn,
            [],
            [
                {
                    "kind": "skill.loaded",
                    "proposal_id": promotion["proposal_id"],
                    "payload": {"name": name, "version": promotion["version"], "in_process": True},
                }
            ],
        )
    finally:
        conn.close()
    return TrustedSkill(
        name,
        promotion["version"],
        promotion["skill_sha256"],
        find_skill_class(module),
        build_model(spec.input_schema, f"{spec.class_name}SpecInput"),
        build_model(spec.output_schema, f"{spec.class_name}SpecOutput"),
        guard,
    )
