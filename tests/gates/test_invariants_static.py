"""The invariants gate's static part: "does nothing on import" means no effects, not no calls."""

from __future__ import annotations

import textwrap

import pytest

from kavi.gates.invariants import static_problems
from kavi.spec import make_spec

SPEC = make_spec(
    name="word_count",
    description="count words",
    side_effect="READ_ONLY",
    io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
)
SKILL = """
class WordCount(Skill[I, O]):
    name = "word_count"
    side_effect = SideEffect.READ_ONLY
    input_model = I
    output_model = O

    def execute(self, data: I) -> O:
        return O(count=0)
"""
HEADER = "from kavi.skill import SideEffect, Skill\n"


def problems(body: str) -> list[str]:
    return static_problems(HEADER + textwrap.dedent(body) + SKILL, SPEC)


@pytest.mark.parametrize(
    "body",
    [
        "import re\nWORD = re.compile(r'[a-z]+', re.IGNORECASE)\n",
        "from pathlib import Path\nNOTES = Path('notes') / 'index'\n",
        "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass Span:\n    start: int\n",
        "import dataclasses\n@dataclasses.dataclass\nclass Span:\n    start: int\n",
        "import logging\nLOG = logging.getLogger(__name__)\n",
        "STOP = frozenset('a an the'.split())\nPAIRS = dict(a=1, b=2)\n",
        "from typing import TypeVar\nT = TypeVar('T')\n",
        "import functools\n@functools.total_ordering\nclass Rank:\n    pass\n",
    ],
    ids=["re-compile", "path", "dataclass-call", "dataclass-attribute", "logger", "builtins", "typevar", "ordering"],
)
def test_pure_module_level_calls_pass(body: str) -> None:
    assert problems(body) == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("print('imported')\n", "runs code"),
        ("DATA = open('x').read()\n", "runs code"),
        ("import re\nre = Fake()\nWORD = re.compile('x')\n", "runs code"),
        ("def compile(x: str) -> str:\n    return x\nWORD = compile('x')\n", "runs code"),
        ("import re\nWORD = re.compile(open('x').read())\n", "runs code"),
        ("import functools\n@functools.cache\ndef f() -> int:\n    return 1\n", "decorated"),
        ("@register\nclass A:\n    pass\n", "decorated"),
        ("from dataclasses import dataclass\n@dataclass(**options)\nclass A:\n    pass\n", "decorated"),
        ("import subprocess\nOUT = subprocess.run(['ls'])\n", "runs code"),
    ],
    ids=["print", "open", "rebound-module", "own-function", "impure-argument", "cache", "unknown", "kwargs", "process"],
)
def test_effects_at_import_are_refused(body: str, needle: str) -> None:
    found = problems(body)
    assert any(needle in problem for problem in found), found
