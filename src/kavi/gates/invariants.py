"""The invariants gate: the candidate has the shape kavi can govern.

* The module body holds only imports, definitions and constants, so importing it does nothing.
* Exactly one class subclasses ``Skill``; it is named as the spec says and declares the spec's name and
  side-effect class.
* Its I/O models describe exactly the spec's schema, constraints included: the isolated child reports the
  live models' own JSON Schema and this process compares it with the spec's.
"""

from __future__ import annotations

import ast
from typing import ClassVar

from kavi.gates.base import GateContext, GateResult, GateStatus
from kavi.gates.execution import blocked_result, run_skill_child
from kavi.runtime.probe import introspection_problems
from kavi.spec import SkillSpec

_CONSTANT_NODES = (
    ast.Constant,
    ast.Tuple,
    ast.List,
    ast.Set,
    ast.Dict,
    ast.Name,
    ast.Attribute,
    ast.UnaryOp,
    ast.BinOp,
    ast.Subscript,
    ast.Load,
)


def static_problems(source: str, spec: SkillSpec) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [f"line {exc.lineno}: syntax error: {exc.msg}"]
    problems = [f"line {node.lineno}: {what}" for node, what in _module_body_problems(tree)]
    skills = [node for node in tree.body if isinstance(node, ast.ClassDef) and _is_skill_class(node)]
    if len(skills) != 1:
        problems.append(f"the module defines {len(skills)} Skill subclasses; exactly one is required")
        return problems
    skill = skills[0]
    if skill.name != spec.class_name:
        problems.append(f"line {skill.lineno}: the skill class is {skill.name}, the spec requires {spec.class_name}")
    declared = _class_constants(skill)
    if declared.get("name") != repr(spec.name):
        problems.append(f"the skill class must declare name = {spec.name!r}")
    if declared.get("side_effect") not in (f"SideEffect.{spec.side_effect}", repr(str(spec.side_effect))):
        problems.append(f"the skill class must declare side_effect = SideEffect.{spec.side_effect}")
    for attribute in ("input_model", "output_model"):
        if attribute not in declared:
            problems.append(f"the skill class must declare {attribute}")
    if not any(isinstance(node, ast.FunctionDef) and node.name == "execute" for node in skill.body):
        problems.append("the skill class must define execute(self, data)")
    return problems


def _module_body_problems(tree: ast.Module) -> list[tuple[ast.stmt, str]]:
    problems: list[tuple[ast.stmt, str]] = []
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.decorator_list:
                problems.append((node, f"{node.name} is decorated: decorators run at import time"))
            if isinstance(node, ast.ClassDef) and (node.keywords or any(not _is_constant(b) for b in node.bases)):
                problems.append((node, f"class {node.name} has computed bases or keywords"))
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and index == 0:
            continue  # the module docstring
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None and _is_constant(node.value):
            continue
        if isinstance(node, ast.AnnAssign) and node.value is None:
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            continue
        problems.append((node, f"{type(node).__name__} statement at module level runs code on import"))
    return problems


def _is_constant(node: ast.expr) -> bool:
    return all(isinstance(child, (*_CONSTANT_NODES, ast.operator, ast.unaryop, ast.Store)) for child in ast.walk(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_skill_class(node: ast.ClassDef) -> bool:
    for base in node.bases:
        target = base.value if isinstance(base, ast.Subscript) else base
        if (isinstance(target, ast.Name) and target.id == "Skill") or (
            isinstance(target, ast.Attribute) and target.attr == "Skill"
        ):
            return True
    return False


def _class_constants(node: ast.ClassDef) -> dict[str, str]:
    found = {}
    for statement in node.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        for target in targets:
            if isinstance(target, ast.Name) and value is not None:
                found[target.id] = ast.unparse(value)
    return found


class InvariantsGate:
    name: ClassVar[str] = "invariants"

    def applies_to(self, spec: SkillSpec) -> bool:
        return True

    def run(self, context: GateContext) -> GateResult:
        source = context.skill_file.read_text(encoding="utf-8")
        problems = static_problems(source, context.spec)
        if problems:
            return GateResult(
                self.name, GateStatus.FAIL, problems[0], "\n".join(problems), facts={"problems": problems}
            )
        result, report = run_skill_child(context, introspect=True)
        isolation = str(result.isolation)
        blocked = blocked_result(self.name, result)
        if blocked is not None:
            return blocked
        if report is None or not report.get("ok") or not isinstance(report.get("facts"), dict):
            why = (report or {}).get("error") or f"no result from the skill process (exit {result.returncode})"
            return GateResult(
                self.name,
                GateStatus.FAIL,
                f"importing the skill failed: {why}",
                result.stderr,
                isolation=isolation,
                facts={"problems": [str(why)]},
            )
        problems = introspection_problems(context.spec, report["facts"])
        if not problems:
            return GateResult(
                self.name,
                GateStatus.PASS,
                "shape, name, side effect and I/O models match the spec",
                result.stderr,
                isolation=isolation,
            )
        return GateResult(
            self.name,
            GateStatus.FAIL,
            problems[0],
            "\n".join(problems),
            isolation=isolation,
            facts={"problems": problems},
        )
