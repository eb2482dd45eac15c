"""The mypy gate reads waivers strictly on its own: a type-ignore must name its error code."""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.gates.base import GateContext, GateStatus
from kavi.gates.typecheck import MypyGate
from kavi.spec import make_spec

SPEC = make_spec(
    name="word_count",
    description="count words",
    side_effect="READ_ONLY",
    io_schema={"input": {"text": "str"}, "output": {"count": "int"}},
)


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("COUNT: int = 'many'  # type: ignore\n", GateStatus.FAIL),
        ("COUNT: int = 'many'  # type: ignore[assignment]\n", GateStatus.PASS),
    ],
    ids=["bare", "with-code"],
)
def test_a_bare_type_ignore_fails_the_gate(tmp_path: Path, line: str, status: GateStatus) -> None:
    (tmp_path / "skills").mkdir()
    (tmp_path / SPEC.skill_path).write_text(f'"""Doc."""\n\n{line}', encoding="utf-8")
    (tmp_path / SPEC.test_path).write_text("def test_x() -> None:\n    assert True\n", encoding="utf-8")
    result = MypyGate().run(GateContext(spec=SPEC, sandbox=tmp_path, cache_dir=tmp_path / "cache"))
    assert result.status is status, result.report
    if status is GateStatus.FAIL:
        assert "ignore-without-code" in result.report
