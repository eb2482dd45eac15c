"""The dependency direction is enforced: the core never imports typer, rich or the CLI, the hot run path
stays free of the heavy libraries it cannot afford at start-up, and no module of kavi imports itself back
through others (no import circle, counting imports inside functions and under TYPE_CHECKING)."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import kavi

CORE_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(kavi.__path__, "kavi.")
    if not info.name.startswith(("kavi.cli", "kavi.demo_replays")) and info.name != "kavi.__main__"
)


def _imported_by(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    try:\n        importlib.import_module(name)\n"
        "    except ImportError as exc:\n        if 'torch' not in str(exc) and 'triton' not in str(exc): raise\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(output))


def test_the_core_never_imports_typer_rich_or_the_cli() -> None:
    assert len(CORE_MODULES) > 20
    loaded = _imported_by(CORE_MODULES)
    assert not {name for name in loaded if name.split(".")[0] in ("typer", "rich")}
    assert not {name for name in loaded if name.startswith("kavi.cli")}


def test_the_run_path_imports_no_orm_no_pydantic_and_no_cli() -> None:
    loaded = _imported_by(["kavi.stages.run", "kavi.cli.running"])
    heavy = {name.split(".")[0] for name in loaded} & {"sqlalchemy", "sqlmodel", "pydantic", "typer", "rich"}
    assert heavy == set()


SOURCE = Path(kavi.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Every kavi module -> the kavi modules it names in any import statement anywhere in its body (module
    level, inside functions, under TYPE_CHECKING). ``from a import b`` names ``a.b`` when that is a module."""
    files = {_module_name(path): path for path in SOURCE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            graph[name] |= {target for target in targets if target in files and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_is_read_from_every_kind_of_import_statement() -> None:
    graph = _import_graph()
    assert len(graph) > 60
    assert "kavi.kinds" in graph["kavi.stages.verify"]  # module level
    assert "kavi.gates.registry" in graph["kavi.kinds"]  # inside a function
    assert "kavi.gpu.timing" in graph["kavi.gpu.child"]  # inside a function
    assert "kavi.builders.openai_compat" in graph["kavi.research"]  # under TYPE_CHECKING and in a function


def test_no_import_circles_in_kavi() -> None:
    graph = _import_graph()
    circles = [
        " <-> ".join(component)
        + ": "
        + "; ".join(f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component)
        for component in _cycles(graph)
    ]
    assert circles == [], "import circles:\n" + "\n".join(circles)


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _imported_modules(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names (top-level name and dotted), anywhere in its body."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


DATABASE_DRIVERS = ("sqlite3", "psycopg", "psycopg2")


def test_only_the_ledger_package_talks_to_a_database_driver() -> None:
    """Raw SQL has one owner: kavi.ledger (its named queries and its one connection helper). Everything else
    asks it, on either backend; a module that imports sqlite3 or psycopg itself would bypass both."""
    offenders = {
        _module_name(path): sorted(name for name in _imported_modules(path) if name.split(".")[0] in DATABASE_DRIVERS)
        for path in SOURCE.rglob("*.py")
        if not _module_name(path).startswith("kavi.ledger")
    }
    assert {module: names for module, names in offenders.items() if names} == {}
    assert "sqlite3" in _imported_modules(SOURCE / "ledger" / "connection.py")  # the check sees real imports


def test_the_run_path_on_sqlite_does_not_import_psycopg() -> None:
    loaded = _imported_by(["kavi.stages.run", "kavi.cli.running", "kavi.ledger.fast"])
    assert "psycopg" not in {name.split(".")[0] for name in loaded}
