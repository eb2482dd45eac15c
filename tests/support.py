"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kavi.__main__ import main
from kavi.demo import recording_of

REPO = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str) -> CliResult:
    """Run the real entry point in-process (the same error handler users get)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return CliResult(code, out.getvalue(), err.getvalue())


WORD_COUNT_ARGS = (
    "--name",
    "word_count",
    "--desc",
    "Count words",
    "--side-effect",
    "READ_ONLY",
    "--io-schema-json",
    '{"input": {"text": "str"}, "output": {"count": "int"}}',
    "--examples-json",
    '[{"input": {"text": "a b"}, "output": {"count": 2}}]',
)


def recording(name: str, tmp_path: Path) -> Path:
    """A writable copy of a shipped recording, for tests that alter it."""
    target = tmp_path / f"rec-{name}"
    shutil.copytree(recording_of(name), target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
