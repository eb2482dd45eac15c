"""What the two static scanners share: one reading of the source, one name resolution, one finding.

The policy gate (:mod:`kavi.gates.policy`) and the kernel screen (:mod:`kavi.gpu.screen`) judge
different things, but both must agree with Python on two questions, and a disagreement on either
is an evasion:

* **Which source runs.** Python decodes a file's *bytes* by its PEP 263 declaration, and the
  declaration may sit behind a form feed (``str.splitlines`` counts ``\\f`` as a line break,
  Python does not). :func:`parse_source` therefore parses the bytes, exactly as the interpreter
  does, and :func:`foreign_encoding` reports any declaration other than UTF-8 (``utf-7`` can hide
  a line of code inside what a UTF-8 reader sees as a comment), found with
  :func:`tokenize.detect_encoding`, the standard library's copy of the interpreter's rule.
* **What a name stands for.** :class:`Bindings` records every import in the file, file-wide and
  never forgotten: a name bound to two modules (``import torch`` at the top,
  ``def _unused(): import math as torch`` further down) stands for both and is judged as both.
  A scanner that kept one binding per name (the last) could be told that ``torch`` is ``math``.

This module imports neither :mod:`kavi.gates` nor :mod:`kavi.gpu`, so both may import it.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "Bindings",
    "Finding",
    "SourceProblem",
    "dotted_name",
    "foreign_encoding",
    "parse_source",
    "source_bytes",
]

#: The spellings of UTF-8 that :func:`tokenize.detect_encoding` returns (it normalises the rest).
_UTF8 = frozenset({"utf-8", "utf-8-sig"})


@dataclass(frozen=True)
class Finding:
    """One rule a file breaks, located in it: ``rule`` is the rule's id (the policy gate's rule or
    the kernel screen's check), ``message`` says what and what to do instead."""

    rule: str
    message: str
    filename: str
    line: int
    col: int = 0

    @property
    def check(self) -> str:
        """The kernel screen's name for :attr:`rule`."""
        return self.rule

    def render(self) -> str:
        return f"{self.filename}:{self.line}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class SourceProblem(Exception):
    """The source cannot be judged: it does not parse, is nested too deeply, or declares an
    encoding other than UTF-8. ``rule`` is ``syntax`` or ``source-encoding``."""

    rule: str
    line: int
    col: int
    message: str


def source_bytes(source: str | bytes) -> bytes:
    """The bytes Python would read: text is what a UTF-8 file holds."""
    return source if isinstance(source, bytes) else source.encode("utf-8", "surrogatepass")


def foreign_encoding(data: bytes) -> tuple[int, str] | None:
    """``(line, name)`` of a coding declaration other than UTF-8, as Python finds it in the bytes;
    ``None`` when Python reads the file as UTF-8. An unknown encoding name is foreign too."""
    try:
        encoding, lines = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        text = str(exc)
        if text.startswith("invalid or missing encoding declaration"):
            return None  # bytes that are not UTF-8, and no declaration: the parse refuses them
        return 1, text.rsplit(":", 1)[-1].strip() or "unknown"  # an unknown name, or a BOM and another
    if encoding in _UTF8:
        return None
    return len(lines), encoding


def parse_source(source: str | bytes, filename: str) -> ast.Module:
    """The syntax tree of what Python runs for ``source``, parsed from its bytes; raises
    :class:`SourceProblem` instead of :class:`SyntaxError`, :class:`RecursionError` or a decoding
    error, so a scanner turns any of them into a finding."""
    data = source_bytes(source)
    foreign = foreign_encoding(data)
    if foreign is not None:
        line, name = foreign
        raise SourceProblem(
            "source-encoding",
            line,
            0,
            f"the coding declaration {name!r} makes Python read other code than a UTF-8 reader "
            "sees (use UTF-8, no declaration)",
        )
    try:
        return ast.parse(data, filename=filename)
    except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None) or 0
        col = getattr(exc, "offset", None) or 0
        raise SourceProblem("syntax", line, col, f"the file does not parse ({getattr(exc, 'msg', exc)})") from exc
    except (RecursionError, MemoryError) as exc:
        raise SourceProblem("syntax", 0, 0, "the file is nested too deeply to judge (simplify it)") from exc


def dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else ``None`` (no resolution)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


Extend = Callable[[set[str], str], set[str]]


def _plain_extend(bases: set[str], attr: str) -> set[str]:
    return {f"{base}.{attr}" for base in bases}


@dataclass
class Bindings:
    """Local names bound by imports, file-wide: name -> every dotted name it may stand for.

    ``extend`` joins a resolved base and an attribute; the policy gate passes one that re-roots
    chains on module names (``shutil.os`` is ``os``), the screen the plain join."""

    names: dict[str, set[str]] = field(default_factory=dict)
    extend: Extend = _plain_extend

    @classmethod
    def of(cls, tree: ast.AST, extend: Extend = _plain_extend) -> Bindings:
        """Every import of ``tree``, wherever it is (a function body, a dead branch)."""
        bindings = cls(extend=extend)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                bindings.bind_import(node)
        return bindings

    def bind(self, name: str, qualname: str) -> None:
        self.names.setdefault(name, set()).add(qualname)

    def bind_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.bind(alias.asname, alias.name)
                else:
                    root = alias.name.split(".")[0]
                    self.bind(root, root)
            return
        if node.level or node.module is None:
            return
        for alias in node.names:
            if alias.name != "*":
                for qualname in self.extend({node.module}, alias.name):
                    self.bind(alias.asname or alias.name, qualname)

    def resolve(self, node: ast.AST) -> set[str]:
        """The dotted names a Name or attribute chain may stand for; empty when its root is not
        an imported name (or ``extend`` gives nothing)."""
        if isinstance(node, ast.Name):
            return set(self.names.get(node.id, ()))
        if isinstance(node, ast.Attribute):
            return self.extend(self.resolve(node.value), node.attr)
        return set()

    def roots(self, node: ast.AST) -> set[str]:
        """The top-level modules the chain may stand for (``{"torch"}`` for ``F.softmax``)."""
        return {qualname.split(".")[0] for qualname in self.resolve(node)}

    def bound(self) -> Iterable[str]:
        return self.names.keys()
