"""The policy gate: a static scan that a candidate names only what its side-effect class allows.

The scanner walks the whole syntax tree of the skill file **and of its test file**. The test file
obeys the same side-effect class as the skill: a READ_ONLY skill's tests may not write files either
(not even under pytest's ``tmp_path``), because generated tests run with the power the class
declares and no more. This is the simplest rule that is safe; a FILE_WRITE skill's tests may of
course write. A test file may also import pytest and the skill's own module, nothing else extra.

How the scan resists evasion
----------------------------
* **Names are resolved, not matched.** Every import binds a local name to a dotted name
  (``import os as o`` binds ``o`` to ``os``, ``from os import system as s`` binds ``s`` to
  ``os.system``); an attribute chain on a bound name resolves to ``os.system`` whatever the alias.
  Bindings are file-wide and never forgotten, so a name bound to two modules is judged as both.
* **Every reference is judged, not only calls.** ``x = os.system; x()`` fails at ``os.system``.
* **Modules may not travel as values, nor be changed.** ``f(os)``, ``[os]``, ``x = sys`` are
  refused for modules with effects (:data:`~kavi.gates.policy_rules.GATEWAY_MODULES`), so a module
  cannot reach a place where its name is unknown; ``json.loads = ...`` is refused for every module.
  An attribute named like such a module is re-rooted there on *any* receiver:
  ``os.path.os.system`` and ``whatever.os.system`` are both ``os.system``.
* **Imports are deny-by-default** (see :mod:`kavi.gates.policy_rules`). Private members of modules
  and of objects the file did not define (``tempfile._os``, ``handler._style``) are refused, and so
  are special methods on foreign objects (``f.__init__("x", "w")`` reopens a file).
* **No string becomes a name or code.** ``__import__``, importlib, ``eval``/``exec``/``compile``,
  ``getattr``-family calls with a non-literal name, ``globals()``/``vars()``, ``str.format`` on a
  non-literal template, and dunder or frame attributes are refused whatever the class. String
  constants that parse as expressions are scanned too.
* **Annotations are code.** pydantic evaluates annotations, and a *string* reaching one (through a
  name, a concatenation, a class attribute) is evaluated as Python. Every annotation, generic base
  (``RootModel[T]``) and type argument (``TypeAdapter(T)``) must therefore be a plain type
  expression: classes, imports, builtin types, aliases of those, subscripts, ``|`` unions and string
  forward references that parse as such (rule ``annotation``).
* **No class factories.** ``type(x)`` may be compared or named (``type(x).__name__``), not called:
  ``type(f.buffer.raw)("x", "w")`` would be ``io.FileIO`` opened for writing.
* **Literal targets must be declared.** A literal program (``["git", ...]``) must be one of the
  spec's ``executables`` and never a shell (``shell=True``); a literal URL's host one of its
  ``allow_hosts``; a literal write target (``open("notes/a.md", "w")``, ``Path("notes") / "a"``)
  must lie under a ``write_roots`` folder, without ``..``; a SECRET_READ skill reads only its
  declared ``secrets``, by literal name (``os.environ["API_TOKEN"]``), never the whole environment.
* **Methods of unknown receivers are judged by name** (``Path(p).write_text``,
  ``loop.subprocess_exec``), since the receiver's type is unknown statically.
* **The scan sees what Python runs.** A coding declaration other than UTF-8 is refused (``utf-7``
  can hide a line inside a comment); a file that does not parse, or is nested too deeply to walk, is
  a ``syntax-error`` finding, never a crash.

Local names that shadow a refused builtin (a function named ``compile``) are refused too: rename
them. Rule ids: forbidden-import, kavi-internal, dynamic-import, eval-exec, introspection,
dunder-access, private-access, getattr-string, format-string, module-value, module-patch,
annotation, file-write, env-read, network, subprocess, process-control, ctypes, pickle,
device-file, forbidden-member, source-encoding, syntax-error, missing-file.

What it cannot see: values computed at run time (a path built by concatenation, a write root
escaped with ``..``). Those are the run-time enforcement's job (audit hook, sandbox); this gate
removes the easy and the clever static routes so that the run-time layer is a second line, not the
only one.
"""

from __future__ import annotations

import ast
import builtins
import re
import string
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar
from urllib.parse import urlsplit

from kavi.builders.base import FailureKind
from kavi.gates.base import GateContext, GateResult, GateStatus, timed
from kavi.gates.policy_rules import (
    BUILTIN_RULES,
    DEVICE_PREFIXES,
    DUNDER_ALLOWED,
    DUNDER_DATA,
    FIXTURE_RULES,
    GATEWAY_MODULES,
    INTROSPECTION_ATTRIBUTES,
    METHOD_RULES,
    MODULE_NAMES,
    MODULE_RULES,
    PROCESS_CALLS,
    PUBLIC_SUNDERS,
    SHELL_CALLS,
    TEST_MODULE_RULES,
    URL_CALLS,
    Allow,
    Effect,
    NameLookup,
    OpenLike,
    Rule,
    classify,
)
from kavi.side_effects import SideEffect
from kavi.spec import SkillSpec

__all__ = ["Finding", "PolicyGate", "scan_source", "skill_type_names"]

_WRITE_MODE_CHARS = frozenset("wax+")
_BUILTIN_TYPES = frozenset(n for n in dir(builtins) if isinstance(getattr(builtins, n), type))
_TYPE_FACTORIES = ("TypeVar", "NewType", "ParamSpec", "TypeVarTuple")
_FILE_WRITE = Effect("file-write", "writes to the file system", frozenset({SideEffect.FILE_WRITE}))


@dataclass(frozen=True)
class Finding:
    """One violation, located in one file."""

    rule: str
    message: str
    filename: str
    line: int
    col: int


@dataclass
class _Bindings:
    """Local names bound by imports, file-wide: name -> the dotted names it may stand for."""

    names: dict[str, set[str]] = field(default_factory=dict)

    def bind(self, name: str, qualname: str) -> None:
        self.names.setdefault(name, set()).add(qualname)


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _literal_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _fix(effect: Effect, declared: SideEffect) -> str:
    """The second half of a message: who may do this, and what to change."""
    if not effect.allowed_by:
        return "no side-effect class allows it (remove it)"
    allowed = " or ".join(sorted(str(e) for e in effect.allowed_by))
    return f"{declared} skills may not (declare {allowed})"


class _PolicyVisitor(ast.NodeVisitor):
    """Walks every node of one module and records a finding wherever a name or call breaks the
    policy."""

    def __init__(
        self,
        *,
        filename: str,
        spec: SkillSpec,
        is_test: bool,
        bindings: _Bindings | None = None,
        skill_types: Collection[str] = (),
    ) -> None:
        self.filename = filename
        self.spec = spec
        self.side_effect = spec.side_effect
        self.bindings = bindings if bindings is not None else _Bindings()
        self.extra_rules: dict[str, Rule] = {f"skills.{spec.name}": Allow(), spec.name: Allow()}
        if is_test:
            self.extra_rules.update(TEST_MODULE_RULES)
        self.is_test = is_test
        self.skill_types = frozenset(skill_types)
        self.parents: dict[int, ast.AST] = {}
        self.findings: list[Finding] = []
        self.name_sites: dict[str, list[tuple[str, ast.AST]]] = {}

    # -- entry -------------------------------------------------------------------------------------

    def scan(self, tree: ast.AST) -> list[Finding]:
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[id(child)] = node
        for node in ast.walk(tree):  # bind every import first: a use may come before the import
            if isinstance(node, ast.Import | ast.ImportFrom):
                self._bind_import(node)
            self._collect_binding_sites(node)
        self.visit(tree)
        return self.findings

    def _collect_binding_sites(self, node: ast.AST) -> None:
        """Record where each name gets a value, for the annotation rule: ``("type", node)`` for a
        class, function or import, ``("value", expr)`` for ``name = expr``, ``("other", node)`` for
        any other binding (loop target, parameter, ``with ... as``, walrus, match capture)."""
        sites = self.name_sites
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            sites.setdefault(node.name, []).append(("type", node))
        elif isinstance(node, ast.alias):
            skill_value = self._from_skill_module(node) and node.name not in self.skill_types
            kind = "other" if skill_value else "type"
            sites.setdefault(node.asname or node.name.split(".")[0], []).append((kind, node))
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            parent = self._parent(node)
            value = parent.value if isinstance(parent, ast.Assign | ast.AnnAssign) else None
            if value is not None and (not isinstance(parent, ast.Assign) or node in parent.targets):
                sites.setdefault(node.id, []).append(("value", value))
            elif not isinstance(parent, ast.AnnAssign):
                sites.setdefault(node.id, []).append(("other", node))
        elif isinstance(node, ast.arg):
            sites.setdefault(node.arg, []).append(("other", node))
        else:
            name = getattr(node, "name", None) or getattr(node, "rest", None)
            if isinstance(name, str) and isinstance(
                node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar | ast.MatchMapping
            ):
                sites.setdefault(name, []).append(("other", node))

    def _from_skill_module(self, alias: ast.alias) -> bool:
        parent = self._parent(alias)
        module = parent.module if isinstance(parent, ast.ImportFrom) else alias.name
        own = (f"skills.{self.spec.name}", self.spec.name)
        if module == "skills":
            return alias.name == self.spec.name
        return any(str(module) == m or str(module).startswith(m + ".") for m in own)

    def type_names(self) -> frozenset[str]:
        """The names this file binds to types only (after :meth:`scan`): what a test file may use
        in annotations when it imports them from the skill."""
        return frozenset(n for n in self.name_sites if self._is_type_name(n, frozenset()))

    # -- reporting ---------------------------------------------------------------------------------

    def _report(self, node: ast.AST, rule: str, text: str) -> None:
        line = getattr(node, "lineno", 0)
        col = getattr(node, "col_offset", 0)
        never = "no side-effect class allows it"
        if f"{never}, " not in text:
            text = text.replace(never, f"{never}, {self.side_effect} included", 1)
        if not text.endswith(")"):
            text += " (remove it)"
        self.findings.append(Finding(rule, f"line {line}: {text}", self.filename, line, col))

    def _report_effect(self, node: ast.AST, subject: str, effect: Effect) -> None:
        if effect.allows(self.side_effect):
            return
        self._report(
            node,
            effect.rule,
            f"{subject} {effect.what}; {_fix(effect, self.side_effect)}",
        )

    def _subject(self, node: ast.AST, qualname: str | None = None) -> str:
        text = ast.unparse(node)
        if len(text) > 60:
            text = text[:57] + "..."
        if qualname and qualname != text:
            return f"{text} ({qualname})"
        return text

    # -- name resolution ---------------------------------------------------------------------------

    def _resolve(self, node: ast.AST) -> set[str]:
        """The dotted names a Name or attribute chain may stand for; empty when it is not a module
        chain. An attribute named like a module re-roots the chain there (``json.codecs`` is
        ``codecs``)."""
        if isinstance(node, ast.Name):
            return set(self.bindings.names.get(node.id, ()))
        if isinstance(node, ast.Attribute):
            bases = self._resolve(node.value)
            return self._extend(bases, node.attr)
        return set()

    def _extend(self, bases: set[str], attr: str) -> set[str]:
        if bases:
            joined = {f"{base}.{attr}" for base in bases}
            if attr in MODULE_NAMES and not any(q in MODULE_RULES for q in joined):
                return {attr}
            return joined
        return {attr} if attr in GATEWAY_MODULES else set()

    def _classify(self, qualname: str) -> Rule | None:
        return classify(qualname, self.extra_rules)

    def _parent(self, node: ast.AST) -> ast.AST | None:
        return self.parents.get(id(node))

    def _is_attribute_base(self, node: ast.AST) -> bool:
        parent = self._parent(node)
        return isinstance(parent, ast.Attribute) and parent.value is node

    def _is_callee(self, node: ast.AST) -> bool:
        parent = self._parent(node)
        return isinstance(parent, ast.Call) and parent.func is node

    # -- imports -----------------------------------------------------------------------------------

    def _bind_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.bindings.bind(alias.asname, alias.name)
                else:
                    root = alias.name.split(".")[0]
                    self.bindings.bind(root, root)
            return
        if node.level or node.module is None:
            return
        for alias in node.names:
            if alias.name != "*":
                for qualname in self._extend({node.module}, alias.name):
                    self.bindings.bind(alias.asname or alias.name, qualname)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name, f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self._report(
                node,
                "forbidden-import",
                "a relative import reaches outside the skill's own "
                f"module; {self.side_effect} skills may not (import by absolute name)",
            )
            return
        module = node.module or ""
        for alias in node.names:
            if alias.name == "*":
                self._report(
                    node,
                    "forbidden-import",
                    f"from {module} import * hides which names are "
                    "used; no side-effect class allows it (import the names you need)",
                )
                self._check_module(node, module, f"from {module} import *")
                continue
            subject = f"from {module} import {alias.name}"
            submodule = f"{module}.{alias.name}"
            if submodule not in MODULE_RULES and submodule not in self.extra_rules:
                self._check_module(node, module, subject)  # importing from it runs it
            for qualname in self._extend({module}, alias.name):
                self._check_module(node, qualname, subject)

    def _check_module(self, node: ast.AST, qualname: str, subject: str) -> None:
        rule = self._classify(qualname)
        if rule is None:
            self._report(
                node,
                "forbidden-import",
                f"{subject} is not on the import allowlist; {self.side_effect} skills may not "
                "(use an allowed module: see kavi.gates.policy_rules.MODULE_RULES)",
            )
        elif isinstance(rule, Effect):
            self._report_effect(node, self._subject_for_import(subject, qualname), rule)
        elif isinstance(rule, OpenLike | NameLookup):
            self._judge_reference(node, qualname, rule, subject)

    @staticmethod
    def _subject_for_import(subject: str, qualname: str) -> str:
        return subject if subject.endswith(qualname) else f"{subject} ({qualname})"

    # -- names and attributes ----------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if _is_dunder(name) and name not in DUNDER_ALLOWED:
            self._report(
                node,
                "dunder-access",
                f"{name} reaches interpreter internals; no side-effect class allows it",
            )
        if name in ("pytest_plugins", "conftest") and not isinstance(node.ctx, ast.Load):
            self._report(
                node,
                "dynamic-import",
                f"{name} makes pytest import plugins named by strings; no side-effect class allows it",
            )
        if name == "type" and isinstance(node.ctx, ast.Load):
            self._check_type_name(node)
        builtin = BUILTIN_RULES.get(name)
        if builtin is not None and isinstance(node.ctx, ast.Load):
            self._judge_reference(node, name, builtin, name)
        if isinstance(node.ctx, ast.Load) and not self._is_attribute_base(node):
            for qualname in self._resolve(node):
                self._judge_chain(node, qualname, rerooted=False)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        self._check_attribute_name(node, attr)
        private = attr.startswith("_") and not _is_dunder(attr) and attr not in PUBLIC_SUNDERS
        if private and (self._resolve(node.value) or not self._is_own_receiver(node.value)):
            self._report(
                node,
                "private-access",
                f"{self._subject(node)} is a private member of a module or of an object this "
                "file did not define (a common way to smuggle a module or a class out); no "
                "side-effect class allows it (use self._name, or a public accessor)",
            )
        if (
            attr in DUNDER_ALLOWED
            and attr not in DUNDER_DATA
            and not self._is_own_receiver(node.value, classes_too=True)
        ):
            self._report(
                node,
                "dunder-access",
                f"{self._subject(node)} calls a special method on an object this file did not "
                "define (``file.__init__('x', 'w')`` reopens a file); no side-effect class allows "
                "it (call it on super(), self, cls or a class)",
            )
        if not isinstance(node.ctx, ast.Load) and self._resolve(node.value):
            self._report(
                node,
                "module-patch",
                f"{self._subject(node)} changes a module's attribute, which every other user of "
                "the module then sees; no side-effect class allows it (in tests, use pytest's "
                "monkeypatch)",
            )
        if attr in ("format", "format_map") and not self._is_callee(node):
            self._check_format(node, node.value)
        for qualname in self._resolve(node):
            self._judge_chain(node, qualname, rerooted=qualname == attr)
        method = METHOD_RULES.get(attr)
        if method is not None and (self._is_callee(node) or not method.calls_only):
            self._report_effect(node, self._subject(node), method.effect)
            if method.effect.rule == "file-write" and self._is_callee(node):
                self._check_write_target(node, node.value)
        if attr == "open" and not self._is_callee(node):
            self._report_effect(node, f"{self._subject(node)} used as a value (its mode is unknown)", _FILE_WRITE)
        self.generic_visit(node)

    def _is_own_receiver(self, node: ast.expr, *, classes_too: bool = False) -> bool:
        """Receivers whose private or special members are the file's own business.

        Private members: ``self``, ``cls`` and ``super()``. Special methods (``classes_too``):
        ``super()``, a class this file defines or imports, or a builtin type, but *not* ``self``:
        any function can be called with a foreign object as ``self`` (``A.f(raw_file)``), and
        ``self.__init__("x", "w")`` would then reopen that file. ``super()`` is safe, as it checks
        that ``self`` is an instance of the class."""
        if isinstance(node, ast.Call):  # super(), not super(C, foreign_object)
            return isinstance(node.func, ast.Name) and node.func.id == "super" and not node.args
        if not isinstance(node, ast.Name):
            return False
        if not classes_too:
            return node.id in ("self", "cls")
        sites = self.name_sites.get(node.id, [])
        if not sites:
            return node.id in _BUILTIN_TYPES
        return all(isinstance(site, ast.ClassDef | ast.alias) for _, site in sites)

    def _check_type_call(self, node: ast.Call) -> None:
        """``type(x)`` hands out the class of any object, and calling a class rebuilds what the
        policy refuses (``type(f.buffer.raw)('x', 'w')`` is ``io.FileIO``). It may be compared or
        named (``.__name__``), not called, even on ``self`` (a function can be called with a foreign
        ``self``); the 3-argument form makes a class."""
        if len(node.args) != 1 or node.keywords:
            return
        parent = self._parent(node)
        if isinstance(parent, ast.Compare) or (isinstance(parent, ast.Attribute) and parent.attr in DUNDER_DATA):
            return
        self._report(
            node,
            "introspection",
            f"{self._subject(node)} hands out the class of an object, and calling it can rebuild "
            "what the policy refuses; no side-effect class allows it (use isinstance, or "
            "type(x).__name__)",
        )

    def _check_type_name(self, node: ast.Name) -> None:
        """The builtin ``type`` passed around as a value would escape :meth:`_check_type_call`."""
        parent = self._parent(node)
        if self._is_callee(node) or isinstance(
            parent, ast.Subscript | ast.Compare | ast.BinOp | ast.arg | ast.AnnAssign
        ):
            return
        if isinstance(parent, ast.Tuple):
            parent = self._parent(parent)
        if (
            isinstance(parent, ast.Call)
            and isinstance(parent.func, ast.Name)
            and parent.func.id in ("isinstance", "issubclass")
            and node not in parent.args[:1]
        ):
            return
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef) and parent.returns is node:
            return
        self._report(
            node,
            "introspection",
            "type used as a value can hand out the class of any object; no side-effect class "
            "allows it (use isinstance, or call type(x) where it is compared)",
        )

    def _check_attribute_name(self, node: ast.AST, attr: str) -> None:
        """Rules that hold for an attribute whatever its receiver."""
        if _is_dunder(attr) and attr not in DUNDER_ALLOWED:
            self._report(
                node,
                "dunder-access",
                f".{attr} reaches interpreter internals (type, dict, globals or code); no side-effect class allows it",
            )
        if attr in INTROSPECTION_ATTRIBUTES:
            self._report(
                node,
                "introspection",
                f".{attr} reaches frames, code or closures; no side-effect class allows it",
            )

    def _judge_chain(self, node: ast.AST, qualname: str, *, rerooted: bool) -> None:
        """Judge a resolved module chain used at ``node``."""
        rule = self._classify(qualname)
        if rule is None:
            if rerooted:
                self._report(
                    node,
                    "forbidden-import",
                    f"{self._subject(node, qualname)} reaches a module "
                    "that is not on the import allowlist; no side-effect class allows it",
                )
            return
        if isinstance(rule, Effect):
            self._report_effect(node, self._subject(node, qualname), rule)
            if rule.rule == "env-read" and self.side_effect is SideEffect.SECRET_READ:
                self._check_secret_name(node, qualname)
            parent = self._parent(node)
            if rule.rule == "file-write" and isinstance(parent, ast.Call) and parent.func is node:
                self._check_write_target(parent, _write_target(qualname, parent.args))
        elif isinstance(rule, OpenLike | NameLookup):
            self._judge_reference(node, qualname, rule, self._subject(node, qualname))
        if qualname in GATEWAY_MODULES and not self._is_attribute_base(node):
            self._report(
                node,
                "module-value",
                f"{self._subject(node, qualname)} passes a module with "
                "effects around as a value; no side-effect class allows it (call its functions "
                "directly)",
            )

    def _check_secret_name(self, node: ast.AST, qualname: str) -> None:
        """A SECRET_READ skill reads its declared secrets by literal name, nothing else:
        ``os.environ["TOKEN"]``, ``os.environ.get("TOKEN")``, ``os.getenv("TOKEN")``."""
        parent = self._parent(node)
        key: ast.expr | None = None
        if qualname in ("os.environ", "os.environb"):
            if isinstance(parent, ast.Subscript) and parent.value is node:
                key = parent.slice
            elif isinstance(parent, ast.Attribute) and parent.attr == "get":
                call = self._parent(parent)
                if isinstance(call, ast.Call) and call.func is parent and call.args:
                    key = call.args[0]
        elif qualname in ("os.getenv", "os.getenvb") and isinstance(parent, ast.Call):
            key = parent.args[0] if parent.func is node and parent.args else None
        else:
            return  # putenv, dotenv ...: the class allows them
        name = _literal_str(key)
        if name is None or name not in self.spec.secrets:
            what = f"the secret {name!r}" if name else "the environment by a computed name or whole"
            self._report(
                node,
                "env-read",
                f"{self._subject(node)} reads {what}; SECRET_READ skills may read only "
                f"{list(self.spec.secrets)}, by literal name (os.environ['NAME'])",
            )

    def _judge_reference(self, node: ast.AST, name: str, rule: Rule, subject: str) -> None:
        """A builtin or module member: effects are judged here; checked calls are judged in
        visit_Call, and referenced without a call they count as their worst case."""
        if isinstance(rule, Effect):
            self._report_effect(node, subject, rule)
        elif not self._is_callee(node):
            if isinstance(rule, OpenLike):
                self._report_effect(node, f"{subject} used as a value (its mode is unknown)", _FILE_WRITE)
            elif isinstance(rule, NameLookup):
                self._report(
                    node,
                    "getattr-string",
                    f"{subject} used as a value looks attributes up by "
                    "run-time strings; no side-effect class allows it",
                )

    # -- calls -------------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        rule = self._call_rule(node.func)
        if isinstance(rule, OpenLike):
            self._check_open(node, node.args, rule.mode_index)
        elif isinstance(rule, NameLookup):
            self._check_name_lookup(node, rule.name_index)
        elif isinstance(node.func, ast.Attribute):
            self._check_method_call(node, node.func)
        self._check_type_arguments(node)
        if isinstance(node.func, ast.Name) and node.func.id == "type":
            self._check_type_call(node)
        self._check_declared_targets(node)
        self.generic_visit(node)

    def _check_declared_targets(self, node: ast.Call) -> None:
        """Where a call names its target literally, it must be one the spec declares: a program in
        ``executables`` (and never a shell), a host in ``allow_hosts``. Computed targets are left
        to the run-time enforcement."""
        names = {q.rsplit(".", 1)[-1] for q in self._resolve(node.func)}
        if isinstance(node.func, ast.Attribute):
            names.add(node.func.attr)
        if self.side_effect is SideEffect.SUBPROCESS and names & PROCESS_CALLS:
            shell = next((k.value for k in node.keywords if k.arg == "shell"), None)
            if names & SHELL_CALLS or not (shell is None or _is_false(shell)):
                self._report(
                    node,
                    "subprocess",
                    f"{self._subject(node)} runs a shell, which can start any program; no "
                    "side-effect class allows it (pass an argument list, shell=False)",
                )
            program = _literal_program(node.args[0]) if node.args else None
            if program is not None and program not in self.spec.executables:
                self._report(
                    node,
                    "subprocess",
                    f"{self._subject(node)} runs {program!r}, which the spec does not declare; "
                    f"SUBPROCESS skills may run only {list(self.spec.executables)} (propose "
                    f"with --allow-exec {program})",
                )
        if self.side_effect is SideEffect.NETWORK and names & URL_CALLS and node.args:
            host = _literal_host(node.args[0])
            allowed = self.spec.allow_hosts
            if host is not None and host not in allowed and host.split(":")[0] not in allowed:
                self._report(
                    node,
                    "network",
                    f"{self._subject(node)} connects to {host!r}, which the spec does not "
                    f"declare; NETWORK skills may reach only {list(self.spec.allow_hosts)} "
                    f"(propose with --allow-host {host})",
                )

    def _call_rule(self, func: ast.expr) -> Rule | None:
        if isinstance(func, ast.Name) and func.id in BUILTIN_RULES:
            return BUILTIN_RULES[func.id]
        for qualname in self._resolve(func):
            rule = self._classify(qualname)
            if isinstance(rule, OpenLike | NameLookup):
                return rule
        return None

    def _check_open(
        self,
        node: ast.Call,
        args: list[ast.expr],
        mode_index: int,
        target: ast.expr | None = None,
    ) -> None:
        mode_node: ast.expr | None = next((k.value for k in node.keywords if k.arg == "mode"), None)
        if mode_node is None and len(args) > mode_index:
            mode_node = args[mode_index]
        if any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in args):
            mode_node = node  # **kwargs or *args: the mode is unknown
        if mode_node is None:
            return
        mode = _literal_str(mode_node)
        if mode is None:
            self._report_effect(
                node,
                f"{self._subject(node)} opens a file with a non-literal mode, which",
                _FILE_WRITE,
            )
        elif _WRITE_MODE_CHARS & set(mode):
            self._report_effect(node, f"{self._subject(node)} (mode {mode!r})", _FILE_WRITE)
        else:
            return
        if target is None and mode_index > 0 and args:
            target = args[0]
        self._check_write_target(node, target)

    def _check_write_target(self, node: ast.AST, target: ast.expr | None) -> None:
        """A FILE_WRITE skill's literal write target must lie under a declared write root."""
        if self.side_effect is not SideEffect.FILE_WRITE or target is None:
            return
        path = self._literal_path(target)
        if path is None:
            return  # computed: the run-time enforcement checks it
        roots = self.spec.write_roots
        parts = PurePosixPath(path).parts
        inside = (
            not PurePosixPath(path).is_absolute()
            and ".." not in parts
            and any(parts[: len(PurePosixPath(root).parts)] == PurePosixPath(root).parts for root in roots)
        )
        if not inside:
            self._report(
                node,
                "file-write",
                f"{self._subject(node)} writes to {path!r}, outside the declared write roots "
                f"{list(roots)}; FILE_WRITE skills may write only there (write under a root, or "
                "propose with another --write-root)",
            )

    def _literal_path(self, node: ast.expr) -> str | None:
        """A path spelled out literally: ``"notes/a.md"``, ``Path("notes", "a.md")``,
        ``Path("notes") / "a.md"``; ``None`` when any part is computed."""
        text = _literal_str(node)
        if text is not None:
            return text
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = self._literal_path(node.left), self._literal_path(node.right)
            return None if left is None or right is None else str(PurePosixPath(left, right))
        if isinstance(node, ast.Call) and not node.keywords and node.args:
            kinds = {q.rsplit(".", 1)[-1] for q in self._resolve(node.func)}
            if kinds & {"Path", "PurePath", "PosixPath", "PurePosixPath"}:
                parts = [self._literal_path(arg) for arg in node.args]
                if all(part is not None for part in parts):
                    return str(PurePosixPath(*[str(part) for part in parts]))
        return None

    def _check_name_lookup(self, node: ast.Call, name_index: int) -> None:
        """``getattr(obj, "name")`` is judged as ``obj.name``; ``attrgetter("a.b")`` as ``.a.b``. A
        non-literal name, or a module or the builtins as the object, is refused outright."""
        args = node.args
        subject = self._subject(node)
        if any(isinstance(a, ast.Starred) for a in args) or any(k.arg is None for k in node.keywords):
            args = []  # *args / **kwargs: nothing is literal any more
        names = [_literal_str(a) for a in args[name_index:]]
        if not names or names[0] is None:
            self._report(
                node,
                "getattr-string",
                f"{subject} looks an attribute up by a non-literal name; "
                "no side-effect class allows it (write obj.name)",
            )
            return
        if name_index == 0:
            # attrgetter("a", "b.c") looks every argument up; methodcaller only the first
            looked_up = names if _is_attrgetter(node) else names[:1]
            if any(name is None for name in looked_up):
                self._report(
                    node,
                    "getattr-string",
                    f"{subject} looks an attribute up by a non-literal name; no side-effect class allows it",
                )
            self._judge_attribute_names(node, [name for name in looked_up if name is not None])
            return
        target = args[0]
        if self._resolve(target) or (isinstance(target, ast.Name) and target.id == "__builtins__"):
            self._report(
                node,
                "getattr-string",
                f"{subject} looks an attribute of a module up by name; "
                "no side-effect class allows it (write module.name)",
            )
        synthetic = ast.Attribute(value=target, attr=str(names[0]), ctx=ast.Load())
        ast.copy_location(synthetic, node)
        self.parents[id(synthetic)] = node
        self._judge_attribute_names(node, [synthetic.attr], receiver=synthetic)

    def _judge_attribute_names(
        self, node: ast.AST, dotted_names: list[str], receiver: ast.Attribute | None = None
    ) -> None:
        for dotted in dotted_names:
            for attr in dotted.split("."):
                self._check_attribute_name(node, attr)
                if attr in GATEWAY_MODULES:
                    self._report(
                        node,
                        "module-value",
                        f"{self._subject(node)} fetches the module {attr}; no side-effect class allows it",
                    )
                if attr in ("format", "format_map"):
                    self._report(
                        node,
                        "format-string",
                        f"{self._subject(node)} calls .{attr} on a template it cannot see; no "
                        "side-effect class allows it",
                    )
                method = METHOD_RULES.get(attr)
                if method is not None:
                    self._report_effect(node, f"{self._subject(node)} (.{attr})", method.effect)
        if receiver is not None:
            for qualname in self._resolve(receiver):
                self._judge_chain(node, qualname, rerooted=qualname == receiver.attr)

    def _check_method_call(self, node: ast.Call, func: ast.Attribute) -> None:
        """Calls on receivers of unknown type whose meaning depends on their arguments."""
        attr, args = func.attr, node.args
        if attr == "open":
            first = _literal_str(args[0]) if args else None
            is_mode = first is not None and set(first) <= set("rwxabtU+")
            method_style = not args or is_mode or first is None
            self._check_open(node, args, 0 if method_style else 1, func.value if method_style else None)
        elif attr == "replace" and len(args) == 1 and not node.keywords:
            self._report_effect(
                node,
                f"{self._subject(node)} (Path.replace/os.replace: str.replace takes two arguments)",
                _FILE_WRITE,
            )
        elif (
            attr in ("setattr", "delattr")
            and args
            and (
                _literal_str(args[0]) is not None
                or (attr == "setattr" and len(args) == 2)
                or (attr == "delattr" and len(args) == 1)
            )
        ):
            self._report(
                node,
                "dynamic-import",
                f"{self._subject(node)} patches a target named by a "
                "string, which imports it; no side-effect class allows it (pass the object)",
            )
        elif attr in ("setattr", "delattr") and args and self._resolve(args[0]):
            if attr == "delattr" or len(args) < 3 or not self._is_own_callable(args[2]):
                self._report(
                    node,
                    "module-patch",
                    f"{self._subject(node)} changes an attribute of a module or library class to "
                    "something other than a function of this file; no side-effect class allows it "
                    "(patch it with a def or lambda)",
                )
        elif attr == "getfixturevalue":
            fixture = _literal_str(args[0]) if args else None
            effect = FIXTURE_RULES.get(fixture or "")
            if fixture is None:
                self._report(
                    node,
                    "getattr-string",
                    f"{self._subject(node)} requests a fixture by a non-literal name; no "
                    "side-effect class allows it (take the fixture as a parameter)",
                )
            elif effect is not None:
                self._report_effect(node, f"the fixture {fixture}", effect)
        elif attr in ("format", "format_map"):
            self._check_format(node, func.value)

    def _is_own_callable(self, node: ast.expr) -> bool:
        """A lambda, or a name bound only to functions or classes of this file: a fake that a test
        may put into a module (``monkeypatch.setattr(urllib.request, "urlopen", fake)``)."""
        if isinstance(node, ast.Lambda):
            return True
        sites = self.name_sites.get(node.id, []) if isinstance(node, ast.Name) else []
        return bool(sites) and all(kind == "type" and not isinstance(site, ast.alias) for kind, site in sites)

    def _check_format(self, node: ast.expr, template: ast.expr) -> None:
        text = _literal_str(template)
        if text is None:
            self._report(
                node,
                "format-string",
                f"{self._subject(node)} formats a non-literal template, "
                "whose fields can read attributes; no side-effect class allows it (use an "
                "f-string or a literal template)",
            )
            return
        for attr in _format_field_attributes(text):
            if attr.startswith("_") or attr in INTROSPECTION_ATTRIBUTES or attr in GATEWAY_MODULES:
                self._report(
                    node,
                    "format-string",
                    f"the format field attribute .{attr} reaches internals; no side-effect class allows it",
                )

    # -- annotations: pydantic and typing evaluate them, strings included ------------------------

    def _check_annotation(self, node: ast.expr | None) -> None:
        if node is not None and not self._is_type_expression(node, frozenset()):
            self._report(
                node,
                "annotation",
                f"{self._subject(node)} is not a plain type expression, and pydantic evaluates "
                "annotations (a string reaching one runs as code); no side-effect class allows it "
                "(write the type itself, or a class or alias defined in this file)",
            )

    def _is_type_expression(self, node: ast.AST, seen: frozenset[str]) -> bool:
        """Whether ``node`` can only evaluate to a type: names of classes, imports, builtin types
        and aliases of those, subscripts, ``|`` unions, and strings that parse as such."""
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, str):
                return True
            try:
                parsed = ast.parse(node.value.strip(), mode="eval").body
            except (SyntaxError, ValueError):
                return True  # not code: it fails to resolve and runs nothing
            return self._is_type_expression(parsed, seen)
        if isinstance(node, ast.Name):
            return self._is_type_name(node.id, seen)
        if isinstance(node, ast.Attribute):
            root: ast.expr = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if not isinstance(root, ast.Name) or not self.bindings.names.get(root.id):
                return False  # own classes' attributes may hold strings: only library chains
            return all(
                isinstance(site, ast.alias) and not self._from_skill_module(site)
                for _, site in self.name_sites.get(root.id, [])
            )
        if isinstance(node, ast.Subscript):
            return self._is_type_subscript(node, seen)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self._is_type_expression(node.left, seen) and self._is_type_expression(node.right, seen)
        if isinstance(node, ast.Tuple | ast.List):
            return all(self._is_type_expression(item, seen) for item in node.elts)
        if isinstance(node, ast.Starred):
            return self._is_type_expression(node.value, seen)
        if isinstance(node, ast.Call):
            return self._is_type_factory(node.func)
        return False

    def _is_type_subscript(self, node: ast.Subscript, seen: frozenset[str]) -> bool:
        if not self._is_type_expression(node.value, seen):
            return False
        kinds = {
            q.rsplit(".", 1)[-1] for q in self._resolve(node.value) if q.startswith(("typing.", "typing_extensions."))
        }
        if "Literal" in kinds:
            return True  # Literal's arguments are values, never evaluated as types
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if "Annotated" in kinds:
            items = items[:1]  # metadata are objects (Field(...)), judged by the ordinary rules
        return all(self._is_type_expression(item, seen) for item in items)

    def _is_type_name(self, name: str, seen: frozenset[str]) -> bool:
        if name in seen:
            return True
        sites = self.name_sites.get(name)
        if not sites:  # unbound here: a builtin type, or a module global such as __doc__ (a str)
            return name in _BUILTIN_TYPES
        for kind, site in sites:
            if kind == "other":
                return False
            if kind == "value" and not self._is_type_expression(site, seen | {name}):
                return False
        return True

    def _is_type_factory(self, func: ast.expr) -> bool:
        return any(
            q.startswith(("typing.", "typing_extensions.")) and q.rsplit(".", 1)[-1] in _TYPE_FACTORIES
            for q in self._resolve(func)
        )

    def _check_type_arguments(self, node: ast.Call) -> None:
        """Arguments that calls turn into types: ``TypeAdapter(T)``, ``cast(T, x)``,
        ``NewType("N", T)``, ``TypeVar("T", A, bound=B)``, ``TypeAliasType("A", T)``, the fields of
        ``NamedTuple("N", [("a", T)])`` and ``TypedDict("D", {"a": T})``, and any ``bound=``,
        ``return_type=`` (``computed_field``) or ``annotation=`` keyword."""
        kinds = {q.rsplit(".", 1)[-1] for q in self._resolve(node.func)}
        args = [k.value for k in node.keywords if k.arg in ("bound", "return_type", "annotation")]
        if kinds & {"TypeAdapter", "cast", "from_annotation"}:
            args += node.args[:1]
        elif kinds & {"NewType", "TypeAliasType"}:
            args += node.args[1:2]
        elif kinds & {"TypeVar"}:
            args += node.args[1:]
        elif kinds & {"NamedTuple", "TypedDict"}:
            args += [_field_types(arg) for arg in node.args[1:]]
            args += [k.value for k in node.keywords if k.arg not in ("total", "bound")]
        for arg in args:
            self._check_annotation(arg)

    def visit_arg(self, node: ast.arg) -> None:
        self._check_annotation(node.annotation)
        fixture = FIXTURE_RULES.get(node.arg) if self.is_test else None
        if fixture is not None:
            self._report_effect(node, f"the parameter {node.arg}", fixture)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check_annotation(node.returns)
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._check_annotation(node.returns)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_annotation(node.annotation)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:  # class M(RootModel[T]) evaluates T like an annotation
            if isinstance(base, ast.Subscript):
                self._check_annotation(base)
        self.generic_visit(node)

    # -- statements and patterns the generic walk would under-judge --------------------------------

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:  # case C(__class__=x) reads x.__class__
            self._check_attribute_name(node, attr)
            if attr in GATEWAY_MODULES:
                self._report(
                    node,
                    "module-value",
                    f"a class pattern reads .{attr}; no side-effect class allows it",
                )
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            if node.value.startswith(DEVICE_PREFIXES) or node.value.rstrip("/") in (
                "/proc",
                "/sys",
                "/dev",
            ):
                self._report(
                    node,
                    "device-file",
                    f"{node.value[:40]!r} names a kernel interface (/dev, /proc, /sys); no side-effect class allows it",
                )
            self._scan_embedded(node)

    def _scan_embedded(self, node: ast.Constant) -> None:
        """Scan a string that parses as an expression: pydantic and typing evaluate string
        annotations."""
        text = str(node.value)
        if not any(c in text for c in ".([_"):
            return
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, ValueError):
            return
        if not any(isinstance(n, ast.Call | ast.Attribute | ast.Subscript) for n in ast.walk(tree)):
            return
        inner = _PolicyVisitor(filename=self.filename, spec=self.spec, is_test=self.is_test, bindings=self.bindings)
        inner.extra_rules = self.extra_rules
        inner.name_sites = self.name_sites
        for finding in inner.scan(tree):
            text_after = finding.message.split(": ", 1)[-1]
            self._report(node, finding.rule, f"in a string that Python may evaluate: {text_after}")


def _write_target(qualname: str, args: list[ast.expr]) -> ast.expr | None:
    """The argument a file-system function writes to: the destination of a copy or move, the first
    argument of anything else (``os.remove(path)``)."""
    index = 1 if qualname.rsplit(".", 1)[-1] in ("copy", "copy2", "copyfile", "copytree", "move") else 0
    return args[index] if len(args) > index else None


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value in (False, 0, None)


def _literal_program(node: ast.expr) -> str | None:
    """The program a literal command names: ``["git", ...]`` or ``"git"`` gives ``git``."""
    if isinstance(node, ast.List | ast.Tuple) and node.elts:
        node = node.elts[0]
    text = _literal_str(node)
    if text is None or not text.strip():
        return None
    return text.split()[0].rsplit("/", 1)[-1]


def _literal_host(node: ast.expr) -> str | None:
    """The host of a literal URL (``"https://api.example.com/x"``), or a bare literal host."""
    text = _literal_str(node)
    if text is None:
        return None
    if "://" in text:
        try:
            parts = urlsplit(text)
            host = parts.hostname or ""
            return f"{host}:{parts.port}" if parts.port else host
        except ValueError:
            return text
    return None


def _field_types(node: ast.expr) -> ast.expr:
    """The types of a functional NamedTuple/TypedDict definition, as one tuple to judge: the second
    items of ``[("a", T), ...]`` or the values of ``{"a": T}``; anything else is judged as is."""
    if isinstance(node, ast.List | ast.Tuple) and all(
        isinstance(item, ast.Tuple) and len(item.elts) == 2 for item in node.elts
    ):
        types = [item.elts[1] for item in node.elts if isinstance(item, ast.Tuple)]
        return ast.copy_location(ast.Tuple(elts=types, ctx=ast.Load()), node)
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        return ast.copy_location(ast.Tuple(elts=list(node.values), ctx=ast.Load()), node)
    return node


def _is_attrgetter(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name == "attrgetter"


def _format_field_attributes(template: str) -> Iterator[str]:
    """The attribute names that a ``str.format`` template's fields read, nested specs included."""
    try:
        parsed = list(string.Formatter().parse(template))
    except (ValueError, IndexError):
        yield "_unparsable_"
        return
    for _, field_name, spec, _ in parsed:
        if field_name:
            for part in field_name.replace("[", ".").replace("]", ".").split(".")[1:]:
                if part:
                    yield part
        if spec and "{" in spec:
            yield from _format_field_attributes(spec)


def scan_source(
    source: str,
    *,
    filename: str,
    spec: SkillSpec,
    is_test: bool | None = None,
    skill_types: Collection[str] = (),
) -> list[Finding]:
    """Every policy finding in ``source``, judged against ``spec``'s side-effect class, in file
    order.

    ``is_test`` (default: whether ``filename`` is the spec's test path or a ``test_*.py`` file)
    lets the file import pytest and the skill's own module. A file that does not parse yields one
    ``syntax-error`` finding (a verdict, not an exception). ``skill_types`` names the skill file's
    classes and type aliases, which a test file may then use in annotations (see
    :func:`skill_type_names`)."""
    if is_test is None:
        is_test = filename == spec.test_path or Path(filename).name.startswith("test_")
    cookie = _foreign_encoding(source)
    if cookie is not None:
        message = (
            f"line {cookie[0]}: the coding declaration {cookie[1]!r} makes Python read other "
            f"code than this scan sees; no side-effect class allows it, {spec.side_effect} "
            "included (use UTF-8, no declaration)"
        )
        return [Finding("source-encoding", message, filename, cookie[0], 0)]
    try:
        tree = ast.parse(source, filename=filename)
        visitor = _PolicyVisitor(filename=filename, spec=spec, is_test=is_test, skill_types=skill_types)
        findings = visitor.scan(tree)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 0
        col = getattr(exc, "offset", None) or 0
        message = f"line {line}: the file does not parse ({getattr(exc, 'msg', exc)}); fix the syntax"
        return [Finding("syntax-error", message, filename, line, col)]
    except (RecursionError, MemoryError):
        message = "line 0: the file is nested too deeply to judge; simplify it"
        return [Finding("syntax-error", message, filename, 0, 0)]
    unique: dict[tuple[int, int, str], Finding] = {}
    for finding in findings:
        unique.setdefault((finding.line, finding.col, finding.rule), finding)
    return sorted(unique.values(), key=lambda f: (f.line, f.col, f.rule))


def skill_type_names(source: str, *, spec: SkillSpec) -> frozenset[str]:
    """The names a skill file binds to types only (its classes, type aliases); empty if it does
    not parse. A test file may use a name it imports from the skill in an annotation only if it is
    listed here."""
    try:
        visitor = _PolicyVisitor(filename=spec.skill_path, spec=spec, is_test=False)
        visitor.scan(ast.parse(source))
        return visitor.type_names()
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset()


_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def _foreign_encoding(source: str) -> tuple[int, str] | None:
    """A PEP 263 coding declaration other than UTF-8 (line, name): Python would decode the bytes
    differently (``utf-7`` can hide a newline inside a comment), so the scan would judge other
    code."""
    for number, line in enumerate(source.splitlines()[:2], start=1):
        match = _CODING.match(line)
        if match:
            name = match.group(1).lower().replace("_", "-")
            if name not in ("utf-8", "utf8", "utf-8-sig"):
                return number, match.group(1)
            return None
    return None


class PolicyGate:
    """Fails a candidate whose skill or test file names an effect its side-effect class does not
    allow."""

    name: ClassVar[str] = "policy"
    failure_kind: ClassVar[FailureKind] = FailureKind.VERIFY_POLICY
    may_be_unmeasured: ClassVar[bool] = False

    def applies_to(self, spec: SkillSpec) -> bool:
        return True  # which kinds run this gate is their entry in kavi.kinds

    def run(self, context: GateContext) -> GateResult:
        return timed(self.name, lambda: self._run(context))

    def _run(self, context: GateContext) -> GateResult:
        spec = context.spec
        findings: list[Finding] = []
        files = (
            (context.skill_file, spec.skill_path, False),
            (context.test_file, spec.test_path, True),
        )
        skill_types: frozenset[str] = frozenset()
        for path, relative, is_test in files:
            source, problem = _read_source(path, relative)
            if problem is not None:
                findings.append(problem)
                continue
            findings.extend(scan_source(source, filename=relative, spec=spec, is_test=is_test, skill_types=skill_types))
            if not is_test:
                skill_types = skill_type_names(source, spec=spec)
        if not findings:
            return GateResult(
                self.name,
                GateStatus.PASS,
                f"no policy findings in {spec.skill_path} and {spec.test_path} ({spec.side_effect})",
            )
        report = "\n".join(f"{f.filename}:{f.line}:{f.col} {f.rule} {f.message}" for f in findings)
        rules = sorted({f.rule for f in findings})
        return GateResult(
            self.name,
            GateStatus.FAIL,
            f"{len(findings)} policy finding(s) for {spec.side_effect}: {', '.join(rules)}",
            report=report,
            facts={"findings": [asdict(f) for f in findings]},
        )


def _read_source(path: Path, relative: str) -> tuple[str, Finding | None]:
    """The file's text as Python would decode it (UTF-8, an optional BOM), or the finding that
    stands in for it."""
    try:
        return path.read_bytes().decode("utf-8-sig"), None
    except FileNotFoundError:
        message = f"line 0: {relative} is missing; the build must write it"
        return "", Finding("missing-file", message, relative, 0, 0)
    except UnicodeDecodeError as exc:
        message = f"line 0: {relative} is not UTF-8 ({exc.reason}); fix the encoding"
        return "", Finding("syntax-error", message, relative, 0, 0)
