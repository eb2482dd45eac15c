"""The dependency direction is enforced: the core never imports typer, rich or the CLI, and the hot
run path stays free of the heavy libraries it cannot afford at start-up."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

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
