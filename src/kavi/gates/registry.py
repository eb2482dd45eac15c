"""The explicit list of gates. Verification runs every gate that applies to the spec, in parallel."""

from __future__ import annotations

from kavi.gates.base import Gate
from kavi.gates.examples import ExamplesGate
from kavi.gates.invariants import InvariantsGate
from kavi.gates.lint import RuffGate
from kavi.gates.policy import PolicyGate
from kavi.gates.tests import PytestGate
from kavi.gates.typecheck import MypyGate


def python_gates() -> list[Gate]:
    return [RuffGate(), MypyGate(), PolicyGate(), InvariantsGate(), PytestGate(), ExamplesGate()]
