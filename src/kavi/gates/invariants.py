"""The invariants gate: the candidate has the shape kavi can govern.

* The module body holds only imports, definitions and constants, so importing it does nothing.
  "Nothing" means no effects, not no calls: a constant may be made by a pure call of
  :data:`PURE_CALLS` (``re.compile(...)``, ``Path("notes")``) on constant arguments, and a
  definition may carry a decorator of :data:`PURE_DECORATORS` (``@dataclass``).
* Exactly one class subclasses ``Skill``; it is named as the spec says and declares the spec's name and
  side-effect class.
* Its I/O models describe exactly the spec's schema, constraints included: the isolated child reports the
  live models' own JSON Schema and this process compares it with the spec's.
"""

from __future__ import annotations

import ast
from typing import ClassVar

from kavi.analysis import Bindings
from kavi.builders.base import FailureKind
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


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Calls that build a value and do nothing else, by the dotted name they resolve to (imports are
#: resolved; a name the file also binds itself is not trusted). Builtins are listed bare.
PURE_CALLS = _words(
    """re.compile pathlib.Path pathlib.PurePath pathlib.PurePosixPath decimal.Decimal
    fractions.Fraction datetime.timedelta datetime.timezone datetime.date datetime.time
    typing.TypeVar typing.NewType typing.ParamSpec typing_extensions.TypeVar collections.namedtuple
    typing.NamedTuple typing.TypedDict dataclasses.field pydantic.Field pydantic.ConfigDict
    string.Template uuid.UUID ipaddress.ip_address ipaddress.ip_network types.MappingProxyType
    logging.getLogger frozenset tuple set list dict int float str bytes bool complex range len
    sorted min max sum abs round"""
)

#: Decorators that only mark or rebuild the class or function they decorate.
PURE_DECORATORS = _words(
    """dataclasses.dataclass functools.total_ordering typing.final typing.overload
    typing.runtime_checkable typing_extensions.final typing_extensions.overload enum.unique"""
)

#: Methods of a literal string that a constant may call (``"a,b".split(",")``).
_STRING_METHODS = _words("split rsplit join strip lstrip rstrip lower upper casefold replace encode")


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


class _Purity:
    """Whether module-level expressions are constants or pure calls, with the file's imports."""

    def __init__(self, tree: ast.Module) -> None:
        self.bindings = Bindings.of(tree)
        # Names the file binds itself (re = Fake(), def compile): a call through one is unknown.
        self.own = {
            target.id for node in ast.walk(tree) for target in _bound_names(node) if isinstance(target, ast.Name)
        }

    def callee(self, func: ast.expr) -> set[str]:
        """The dotted names a callee may be; a name the file binds itself is unknown (empty)."""
        root: ast.expr = func
        while isinstance(root, ast.Attribute):
            root = root.value
        if not isinstance(root, ast.Name) or root.id in self.own:
            return set()
        resolved = self.bindings.resolve(func)
        if resolved:
            return resolved
        return {func.id} if isinstance(func, ast.Name) else set()

    def is_pure_call(self, node: ast.Call) -> bool:
        args = [*node.args, *(k.value for k in node.keywords)]
        if not all(self.is_pure(arg) for arg in args):
            return False
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Constant):
            return isinstance(func.value.value, str | bytes) and func.attr in _STRING_METHODS
        names = self.callee(func)
        return bool(names) and names <= PURE_CALLS

    def is_pure(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Call):
            return self.is_pure_call(node)
        if isinstance(node, ast.Starred):
            return self.is_pure(node.value)
        if _is_constant(node):
            return True
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return all(self.is_pure(item) for item in node.elts)
        if isinstance(node, ast.Dict):
            return all(self.is_pure(item) for item in [*node.values, *(k for k in node.keys if k is not None)])
        if isinstance(node, ast.BinOp):
            return self.is_pure(node.left) and self.is_pure(node.right)
        return False

    def is_pure_decorator(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Call):
            args = [*node.args, *(k.value for k in node.keywords)]
            spelled = all(k.arg is not None for k in node.keywords) and not any(
                isinstance(arg, ast.Starred) for arg in node.args
            )
            return spelled and all(_is_constant(arg) for arg in args) and self.is_pure_decorator(node.func)
        names = self.callee(node)
        return bool(names) and names <= PURE_DECORATORS


def _bound_names(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [ast.Name(id=node.name)]
    if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
        return [node]
    return []


def _module_body_problems(tree: ast.Module) -> list[tuple[ast.stmt, str]]:
    problems: list[tuple[ast.stmt, str]] = []
    purity = _Purity(tree)
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not all(
                purity.is_pure_decorator(decorator) for decorator in node.decorator_list
            ):
                problems.append(
                    (node, f"{node.name} is decorated: decorators other than @dataclass run code at import")
                )
            if isinstance(node, ast.ClassDef) and (node.keywords or any(not _is_constant(b) for b in node.bases)):
                problems.append((node, f"class {node.name} has computed bases or keywords"))
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and index == 0:
            continue  # the module docstring
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None and purity.is_pure(node.value):
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
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_INVARIANT
    may_be_unmeasured: ClassVar[bool] = False

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
