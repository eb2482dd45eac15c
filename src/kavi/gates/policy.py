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
* **The scan sees what Python runs.** The file is parsed from its bytes (:mod:`kavi.analysis`,
  shared with the kernel screen), and a coding declaration other than UTF-8 is refused wherever
  Python finds it, behind a form feed included (``utf-7`` can hide a line inside a comment); a
  file that does not parse, or is nested too deeply to walk, is a ``syntax-error`` finding, never a
  crash.
* **No attribute is read by data.** Library features that read attributes named by data (pydantic
  ``from_attributes`` and aliases, format templates, logging formatters, ``attrgetter``) are one
  family table, :data:`~kavi.gates.policy_rules.ATTRIBUTE_BY_DATA` (rule ``attribute-by-data``);
  so are their cousins that evaluate or generate code at run time: ``validate_call``, bare
  ``@f.register``, ``__annotations__``, ``enum.global_enum``, computed field names
  (``generated-fields``) and registries that keep objects alive past the audit hooks
  (``registry``, ``__del__``).
* **The gates stay on.** File-level suppression comments are refused, and a line-level waiver must
  name codes that :data:`~kavi.gates.policy_rules.WAIVABLE` lists (rule ``suppression``). A test
  file may not reach pytest's configuration, plugins or session (rule ``pytest-internals``).

Local names that shadow a refused builtin (a function named ``compile``) are refused too: rename
them. Rule ids: forbidden-import, kavi-internal, dynamic-import, eval-exec, introspection,
dunder-access, private-access, getattr-string, format-string, module-value, module-patch,
annotation, file-write, env-read, network, subprocess, process-control, ctypes, pickle,
device-file, forbidden-member, attribute-by-data, generated-fields, registry, pytest-internals,
suppression, source-encoding, syntax-error, missing-file.

What it cannot see: values computed at run time (a path built by concatenation, a write root
escaped with ``..``). Those are the run-time enforcement's job (audit hook, sandbox); this gate
removes the easy and the clever static routes so that the run-time layer is a second line, not the
only one.
"""

from __future__ import annotations

import ast
import builtins
import io
import re
import string
import tokenize
from collections.abc import Collection, Iterator
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import ClassVar
from urllib.parse import urlsplit

from kavi.analysis import Bindings, Finding, SourceProblem, parse_source, source_bytes
from kavi.builders.base import FailureKind
from kavi.gates.base import GateContext, GateResult, GateStatus, timed
from kavi.gates.policy_rules import (
    BUILTIN_RULES,
    DATA_ATTRIBUTE_KEYWORDS,
    DEVICE_PREFIXES,
    DUNDER_ALLOWED,
    DUNDER_DATA,
    FILE_SUPPRESSIONS,
    FIXTURE_RULES,
    GATEWAY_MODULES,
    INTROSPECTION_ATTRIBUTES,
    METHOD_RULES,
    MODULE_NAMES,
    MODULE_RULES,
    PROCESS_CALLS,
    PUBLIC_SUNDERS,
    PYTEST_INTERNALS,
    SHELL_CALLS,
    TEST_MODULE_RULES,
    URL_CALLS,
    WAIVABLE,
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


def _extend(bases: set[str], attr: str) -> set[str]:
    """Join a resolved chain and an attribute. An attribute named like a module re-roots the chain
    there (``json.codecs`` is ``codecs``), and on an unknown receiver an attribute named like a
    module with effects is that module (``whatever.os`` is ``os``)."""
    if bases:
        joined = {f"{base}.{attr}" for base in bases}
        # socket.socket, select.select, time.time: a member named like its own module is a member
        own_name = any(base.rsplit(".", 1)[-1] == attr for base in bases)
        if attr in MODULE_NAMES and not own_name and not any(q in MODULE_RULES for q in joined):
            return {attr}
        return joined
    return {attr} if attr in GATEWAY_MODULES else set()


def _extend_bound(bases: set[str], attr: str) -> set[str]:
    """:func:`_extend` for chains whose root this file imported only (inside strings)."""
    return _extend(bases, attr) if bases else set()


_BINDABLE_DUNDERS = frozenset({"__all__", "__slots__", "__match_args__", "__version__", "__doc__"})
_ALIAS_KEYWORDS = frozenset({"alias", "validation_alias", "serialization_alias"})
_CONFIG_CALLS = frozenset(
    {"ConfigDict", "with_config", "model_validate", "validate_python", "validate_json", "validate_strings", "Field"}
)
_FIELD_MODULES = frozenset({"collections", "typing", "typing_extensions", "enum"})
_FIELD_FACTORIES = frozenset(
    {"namedtuple", "NamedTuple", "TypedDict", "Enum", "IntEnum", "StrEnum", "Flag", "IntFlag", "ReprEnum"}
)
_FINALIZERS = frozenset({"__del__"})
_DICT_MUTATORS = frozenset({"update", "setdefault", "__setitem__", "__ior__", "pop", "popitem", "clear"})
_CONFIG_MUTATION = (
    "changing model_config after it is written can add from_attributes under a computed key; no "
    "side-effect class allows it (write every setting in ConfigDict(...))"
)


def _mentions(node: ast.AST, name: str) -> bool:
    """Whether ``name`` appears as a name or attribute anywhere in ``node`` (``M.model_config``)."""
    return any(
        (isinstance(sub, ast.Name) and sub.id == name) or (isinstance(sub, ast.Attribute) and sub.attr == name)
        for sub in ast.walk(node)
    )


def _is_identifier(node: ast.expr) -> bool:
    text = _literal_str(node)
    return text is not None and text.isidentifier()


def _literal_field_names(node: ast.expr) -> bool:
    """Field names written out: ``"a b"``, ``"a,b"``, ``["a", "b"]``, ``[("a", T), ...]``,
    ``{"a": T}`` (types and values are judged elsewhere)."""
    text = _literal_str(node)
    if text is not None:
        return all(part.isidentifier() for part in text.replace(",", " ").split())
    if isinstance(node, ast.List | ast.Tuple):
        return all(
            _is_identifier(item.elts[0] if isinstance(item, ast.Tuple | ast.List) and item.elts else item)
            for item in node.elts
        )
    if isinstance(node, ast.Dict):
        return all(key is not None and _is_identifier(key) for key in node.keys)
    return False


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
        bindings: Bindings | None = None,
        skill_types: Collection[str] = (),
    ) -> None:
        self.filename = filename
        self.spec = spec
        self.side_effect = spec.side_effect
        self.bindings = bindings if bindings is not None else Bindings(extend=_extend)
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
                self.bindings.bind_import(node)
            self._collect_binding_sites(node)
        self.visit(tree)
        for name, sites in self.name_sites.items():
            if name.startswith("pytest_"):  # pytest_plugins or a hook, bound by any statement or pattern
                for _, site in sites:
                    self._report(
                        site,
                        "pytest-internals",
                        f"binding {name} makes pytest load a plugin or run a hook this file chose; no "
                        "side-effect class allows it (rename it)",
                    )
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
        chain (see :func:`_extend`)."""
        return self.bindings.resolve(node)

    def _extend(self, bases: set[str], attr: str) -> set[str]:
        return _extend(bases, attr)

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

    def visit_alias(self, node: ast.alias) -> None:
        if node.asname == "pytest_plugins" or node.name == "pytest_plugins":
            self._report(
                node,
                "pytest-internals",
                "an import bound to pytest_plugins makes pytest load plugins; no side-effect class allows it",
            )

    def visit_Import(self, node: ast.Import) -> None:
        self.generic_visit(node)
        for alias in node.names:
            self._check_module(node, alias.name, f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.generic_visit(node)
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
        private = [part for part in qualname.split(".")[1:] if part.startswith("_") and not _is_dunder(part)]
        if private:
            self._report(
                node,
                "private-access",
                f"{subject} reaches the private submodule or member {private[0]} (pydantic._internal "
                "holds import_string); no side-effect class allows it (use the public API)",
            )
            return
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
        if not isinstance(node.ctx, ast.Load):
            self._check_bound_name(node, name)
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

    def _check_bound_name(self, node: ast.AST, name: str) -> None:
        """Names that mean something to a library when a file binds them."""
        family = DATA_ATTRIBUTE_KEYWORDS.get(name)
        if family is not None:  # class Config: orm_mode = True
            self._report(node, "attribute-by-data", f"{name} {family.what}; no side-effect class allows it")
        if name in DUNDER_DATA and name not in _BINDABLE_DUNDERS:  # other dunders: refused when named
            self._report(
                node,
                "dunder-access",
                f"assigning {name} changes what a library believes about this code (enum.global_enum "
                "and pickle follow __module__); no side-effect class allows it",
            )

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        self._check_attribute_name(node, attr)
        if not isinstance(node.ctx, ast.Load):
            self._check_bound_name(node, attr)
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
        if self.is_test and attr in PYTEST_INTERNALS:
            self._report(
                node,
                "pytest-internals",
                f".{attr} reaches pytest's configuration, plugins or session, where a test could "
                "decide other tests' outcomes; no side-effect class allows it",
            )
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
        if qualname in GATEWAY_MODULES and not self._is_attribute_base(node) and not self._is_fixture_patch(node):
            self._report(
                node,
                "module-value",
                f"{self._subject(node, qualname)} passes a module with "
                "effects around as a value; no side-effect class allows it (call its functions "
                "directly)",
            )

    def _is_fixture_patch(self, node: ast.AST) -> bool:
        """``monkeypatch.setattr(httpx, "get", fake)`` in a test: the module goes to pytest's
        fixture, which sets one literal attribute to a function or class of this file and restores
        it afterwards (the pattern a test of a ``urllib.request`` skill uses, for any module)."""
        call = self._parent(node)
        if not self.is_test or not isinstance(call, ast.Call) or not call.args or call.args[0] is not node:
            return False
        func = call.func
        return (
            isinstance(func, ast.Attribute)
            and func.attr == "setattr"
            and isinstance(func.value, ast.Name)
            and func.value.id == "monkeypatch"
            and len(call.args) == 3
            and not call.keywords
            and _literal_str(call.args[1]) is not None
            and self._is_own_callable(call.args[2])
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
        self._check_data_attributes(node)
        self._check_generated_fields(node)
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

    def _check_register_call(self, node: ast.Call) -> None:
        """``f.register(impl)`` (singledispatch's call form) reads ``impl``'s annotations at run time,
        like the bare decorator; ``f.register(int, impl)`` and ``ABC.register(Class)`` name a type."""
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr == "register" and len(node.args) == 1):
            return
        if self._resolve(func):
            return  # a module function (codecs.register, atexit.register): judged by its name
        arg = node.args[0]
        sites = self.name_sites.get(arg.id, []) if isinstance(arg, ast.Name) else []
        is_function = isinstance(arg, ast.Lambda) or any(
            isinstance(site, ast.FunctionDef | ast.AsyncFunctionDef) for _, site in sites
        )
        if is_function:
            self._report(
                node,
                "annotation",
                f"{self._subject(node)} evaluates the function's annotations at run time; no side-effect "
                "class allows it (name the type: f.register(int, impl))",
            )

    def _check_config_arguments(self, node: ast.Call, names: set[str]) -> None:
        if "with_config" in names and node.args:
            self._check_config_value(node.args[0])
        for keyword in node.keywords:
            if keyword.arg == "config":
                self._check_config_value(keyword.value)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _DICT_MUTATORS and _mentions(func.value, "model_config"):
            self._report(node, "attribute-by-data", _CONFIG_MUTATION)

    def _check_data_attributes(self, node: ast.Call) -> None:
        """Keywords that make a library read attributes named by data (:data:`ATTRIBUTE_BY_DATA`),
        aliases that name private attributes, and ``**kwargs`` (which could carry either) into a
        pydantic configuration or validation call."""
        names = {q.rsplit(".", 1)[-1] for q in self._resolve(node.func)}
        if isinstance(node.func, ast.Attribute):
            names.add(node.func.attr)
        self._check_config_arguments(node, names)
        self._check_register_call(node)
        for keyword in node.keywords:
            family = DATA_ATTRIBUTE_KEYWORDS.get(keyword.arg or "")
            if family is not None:
                self._report(
                    keyword.value,
                    "attribute-by-data",
                    f"{keyword.arg}= {family.what}; no side-effect class allows it",
                )
            alias = _literal_str(keyword.value)
            if keyword.arg in _ALIAS_KEYWORDS and alias is not None and alias.startswith("__"):
                self._report(
                    keyword.value,
                    "attribute-by-data",
                    f"{keyword.arg}={alias!r} names an interpreter attribute; no side-effect class allows it",
                )
            if keyword.arg is None and names & _CONFIG_CALLS:
                self._report(
                    node,
                    "attribute-by-data",
                    f"{self._subject(node)} passes settings by **kwargs, which may switch on "
                    "from_attributes; no side-effect class allows it (spell each keyword)",
                )

    def _check_generated_fields(self, node: ast.Call) -> None:
        """Classes built from field names (functional namedtuple, NamedTuple, TypedDict, Enum):
        the names become generated code, attributes and module globals, so they must be literal
        identifiers, and ``module=`` / ``qualname=`` may not claim another module."""
        kinds = {q.rsplit(".", 1)[-1] for q in self._resolve(node.func) if q.split(".")[0] in _FIELD_MODULES}
        if not kinds & _FIELD_FACTORIES and not self._is_own_enum(node.func):
            return
        is_enum = not kinds & {"namedtuple", "NamedTuple", "TypedDict"}
        if is_enum and len(node.args) < 2 and not any(k.arg == "names" for k in node.keywords):
            return  # E(value) looks a member up
        fields = [*node.args[1:2], *(k.value for k in node.keywords if k.arg in ("names", "field_names", "fields"))]
        literal = all(_literal_field_names(f) for f in fields) and (not node.args or _is_identifier(node.args[0]))
        claims = [k.arg for k in node.keywords if k.arg in ("module", "qualname", "rename") or k.arg is None]
        if not literal or claims or any(isinstance(a, ast.Starred) for a in node.args):
            what = f"claims {claims[0]}=" if claims else "takes names computed at run time"
            self._report(
                node,
                "generated-fields",
                f"{self._subject(node)} {what}; field names become generated code and module "
                "globals, so no side-effect class allows it (write a class statement, or literal names)",
            )

    def _is_own_enum(self, func: ast.expr) -> bool:
        """A class of this file that subclasses an enum class (its functional API makes enums)."""
        if not isinstance(func, ast.Name):
            return False
        for _, site in self.name_sites.get(func.id, []):
            if isinstance(site, ast.ClassDef) and any(
                q.startswith("enum.") for base in site.bases for q in self._resolve(base)
            ):
                return True
        return False

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

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._check_annotation(node.returns)
        self._check_function_name(node)
        self._check_dispatch_registration(node)
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.visit_FunctionDef(node)

    def _check_function_name(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name.startswith("pytest_"):
            self._report(
                node,
                "pytest-internals",
                f"{node.name} is a pytest hook name (a plugin that defines it can decide outcomes); "
                "no side-effect class allows it (rename it)",
            )
        if node.name in _FINALIZERS:
            self._report(
                node,
                "registry",
                f"{node.name} runs when the object is collected, possibly after the audit hooks are "
                "gone; no side-effect class allows it (release resources with a with-statement)",
            )

    def _check_dispatch_registration(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """``@f.register`` with no type reads the type from the annotations at run time, evaluating
        string annotations (``functools.singledispatch``): name the type (``@f.register(int)``)."""
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Attribute) and decorator.attr == "register":
                self._report(
                    decorator,
                    "annotation",
                    f"@{self._subject(decorator)} evaluates the function's annotations at run time; "
                    "no side-effect class allows it (name the type: @f.register(int))",
                )

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_annotation(node.annotation)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:  # class M(RootModel[T]) evaluates T like an annotation
            if isinstance(base, ast.Subscript):
                self._check_annotation(base)
        for keyword in node.keywords:  # class M(BaseModel, from_attributes=True)
            family = DATA_ATTRIBUTE_KEYWORDS.get(keyword.arg or "")
            if family is not None or keyword.arg is None:
                what = family.what if family is not None else "may switch on from_attributes"
                self._report(
                    node,
                    "attribute-by-data",
                    f"the class keyword {keyword.arg or '**'} {what}; no side-effect class allows it",
                )
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == "model_config":
                self._check_config_value(node.value)
            elif isinstance(target, ast.Subscript | ast.Attribute) and _mentions(target, "model_config"):
                self._report(target, "attribute-by-data", _CONFIG_MUTATION)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if _mentions(node.target, "model_config"):
            self._report(node, "attribute-by-data", _CONFIG_MUTATION)
        self.generic_visit(node)

    def _check_config_value(self, value: ast.expr) -> None:
        """A pydantic configuration is spelled out where it is used: a ``ConfigDict(...)`` call with
        literal keywords or a dict literal with literal keys, so ``from_attributes`` cannot be
        added under a computed key (``cfg["from_" + "attributes"] = True``)."""
        spelled = (
            isinstance(value, ast.Call)
            and {q.rsplit(".", 1)[-1] for q in self._resolve(value.func)} == {"ConfigDict"}
            and not value.args
            and all(k.arg is not None for k in value.keywords)
        ) or (isinstance(value, ast.Dict) and all(k is not None and _literal_str(k) is not None for k in value.keys))
        if not spelled:
            self._report(
                value,
                "attribute-by-data",
                f"{self._subject(value)} is a pydantic configuration built elsewhere, which may carry "
                "from_attributes; no side-effect class allows it (write ConfigDict(...) with literal keywords)",
            )

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
            family = DATA_ATTRIBUTE_KEYWORDS.get(node.value)
            if family is not None:  # ConfigDict(**{"from_attributes": True}), model_config = {...}
                self._report(node, "attribute-by-data", f"{node.value!r} {family.what}; no side-effect class allows it")
            if node.value == "pytest_plugins":
                self._report(
                    node,
                    "pytest-internals",
                    "'pytest_plugins' names pytest's plugin list; no side-effect class allows it",
                )
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
        # Only names this file imports are resolved inside a string: "a@b.io" and "api.example.io"
        # are text, not the io module (nothing in the string was imported by it).
        bindings = Bindings(names=self.bindings.names, extend=_extend_bound)
        inner = _PolicyVisitor(filename=self.filename, spec=self.spec, is_test=self.is_test, bindings=bindings)
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
    source: str | bytes,
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
    try:
        tree = parse_source(source, filename)
        visitor = _PolicyVisitor(filename=filename, spec=spec, is_test=is_test, skill_types=skill_types)
        findings = visitor.scan(tree)
        findings += suppression_findings(source_bytes(source), filename=filename, spec=spec)
    except SourceProblem as problem:
        return [_source_finding(problem, filename, spec)]
    except (RecursionError, MemoryError):
        return [_source_finding(SourceProblem("syntax", 0, 0, "the file is nested too deeply"), filename, spec)]
    unique: dict[tuple[int, int, str], Finding] = {}
    for finding in findings:
        unique.setdefault((finding.line, finding.col, finding.rule), finding)
    return sorted(unique.values(), key=lambda f: (f.line, f.col, f.rule))


def skill_type_names(source: str | bytes, *, spec: SkillSpec) -> frozenset[str]:
    """The names a skill file binds to types only (its classes, type aliases); empty if it does
    not parse. A test file may use a name it imports from the skill in an annotation only if it is
    listed here."""
    try:
        visitor = _PolicyVisitor(filename=spec.skill_path, spec=spec, is_test=False)
        visitor.scan(parse_source(source, spec.skill_path))
        return visitor.type_names()
    except (SourceProblem, RecursionError, MemoryError):
        return frozenset()


_WAIVER = re.compile(r"#\s*(noqa|type:\s*ignore)\b\s*(?::\s*([\w\s,-]*)|\[([\w\s,-]*)\])?", re.IGNORECASE)


def suppression_findings(data: bytes, *, filename: str, spec: SkillSpec) -> list[Finding]:
    """Comments that switch checks off (rule ``suppression``): every file-level directive of
    :data:`~kavi.gates.policy_rules.FILE_SUPPRESSIONS`, and line-level waivers other than those
    :data:`~kavi.gates.policy_rules.WAIVABLE` lists. Comments are found with :mod:`tokenize`, so a
    string that contains ``# noqa`` is not one."""
    findings: list[Finding] = []
    code_seen = False
    code_lines: set[int] = set()
    try:
        tokens = list(tokenize.tokenize(io.BytesIO(data).readline))
    except (tokenize.TokenError, SyntaxError):
        return findings  # the parse already judged it
    skip = (tokenize.ENCODING, tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)
    for token in tokens:
        if token.type not in skip and token.type != tokenize.ENDMARKER:
            code_lines.add(token.start[0])
    for token in tokens:
        if token.type not in skip:
            code_seen = code_seen or token.type != tokenize.STRING  # a docstring is not code yet
            continue
        if token.type != tokenize.COMMENT:
            continue
        line = token.start[0]
        problem = _suppression_problem(token.string, trailing=line in code_lines, top=not code_seen)
        if problem is not None:
            text = (
                f"line {line}: the comment {token.string.strip()[:50]!r} {problem}; no side-effect class "
                f"allows it, {spec.side_effect} included (remove it, or fix what it hides)"
            )
            findings.append(Finding("suppression", text, filename, line, token.start[1]))
    return findings


def _suppression_problem(comment: str, *, trailing: bool, top: bool) -> str | None:
    body = comment.lower()
    for segment in body.split("#")[1:]:  # a directive may follow other text in the comment
        for prefix, what in FILE_SUPPRESSIONS.items():
            if segment.strip().startswith(prefix):
                return f"switches off {what}"
    waivers = list(_WAIVER.finditer(comment))
    for match in waivers:
        kind = "noqa" if match.group(1).lower() == "noqa" else "type: ignore"
        codes = _waived_codes(match.group(2) or match.group(3) or "", bracketed=match.group(3) is not None)
        if kind == "type: ignore" and (top or not trailing):
            return "before the first statement makes mypy ignore the whole file" if top else "waives nothing here"
        if not codes:
            return f"waives every {'lint rule' if kind == 'noqa' else 'type error'} on its line"
        refused = sorted(codes - WAIVABLE[kind])
        if refused:
            allowed = ", ".join(sorted(WAIVABLE[kind]))
            return f"waives {', '.join(refused)}, which is not waivable (waivable: {allowed})"
    return None


_RULE_CODE = re.compile(r"[A-Z]+[0-9]+")


def _waived_codes(text: str, *, bracketed: bool) -> set[str]:
    """The codes a waiver names, read as the tool reads them: ``# noqa: BLE001 - why`` waives BLE001 only
    (ruff stops at the first word that is not a rule code); ``# type: ignore[a, b]`` waives what the brackets
    hold."""
    codes: set[str] = set()
    for token in re.split(r"[\s,]+", text.strip()):
        if not token:
            continue
        if not bracketed and not _RULE_CODE.fullmatch(token):
            break
        codes.add(token)
    return codes


def _source_finding(problem: SourceProblem, filename: str, spec: SkillSpec) -> Finding:
    """The one finding that stands for a file the scan cannot judge as Python would run it."""
    rule = "syntax-error" if problem.rule == "syntax" else problem.rule
    text = problem.message
    if rule == "source-encoding":
        text = text.replace(" (use", f"; no side-effect class allows it, {spec.side_effect} included (use", 1)
    elif not text.endswith(")"):
        text += "; fix the syntax"
    return Finding(rule, f"line {problem.line}: {text}", filename, problem.line, problem.col)


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


def _read_source(path: Path, relative: str) -> tuple[bytes, Finding | None]:
    """The file's bytes (the scan decodes them as Python does), or the finding that stands in for
    a missing file."""
    try:
        return path.read_bytes(), None
    except FileNotFoundError:
        message = f"line 0: {relative} is missing; the build must write it"
        return b"", Finding("missing-file", message, relative, 0, 0)
