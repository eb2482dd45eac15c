"""The explicit lists of gates, one per kind, with the context each kind's gates run on.

:mod:`kavi.kinds` names these for each kind; the verify stage runs them (a skill's in parallel, a kernel's
in order).
"""

from __future__ import annotations

from pathlib import Path

from kavi.gates.base import Gate, GateContext, GateSettings
from kavi.gates.composition import ChainGateContext, CompositionGate, chain_context
from kavi.gates.examples import ExamplesGate
from kavi.gates.invariants import InvariantsGate
from kavi.gates.lint import RuffGate
from kavi.gates.policy import PolicyGate
from kavi.gates.tests import PytestGate
from kavi.gates.typecheck import MypyGate
from kavi.spec import SkillSpec

SKILL_GATES: tuple[Gate[GateContext], ...] = (
    RuffGate(),
    MypyGate(),
    PolicyGate(),
    InvariantsGate(),
    PytestGate(),
    ExamplesGate(),
)

# A chain's one gate: its members at their pinned hashes, its examples end to end, each step isolated.
CHAIN_GATES: tuple[Gate[ChainGateContext], ...] = (CompositionGate(),)

__all__ = ["CHAIN_GATES", "SKILL_GATES", "chain_context", "skill_context"]


def skill_context(spec: SkillSpec, sandbox: Path, settings: GateSettings) -> GateContext:
    """A skill's gates see its declared write roots as folders of the sandbox, as the run path makes them."""
    for root in spec.write_roots:
        (sandbox / root).mkdir(parents=True, exist_ok=True)
    return GateContext(
        spec=spec,
        sandbox=sandbox,
        cache_dir=settings.cache_dir,
        timeout_s=settings.timeout_s,
        require_isolation=settings.require_isolation,
        hidden_examples=settings.hidden_examples,
    )
